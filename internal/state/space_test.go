package state_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/pgpool/pgtest"
	"github.com/weirhq/weir/internal/state"
)

// Runs are listed by state, in pages, and move between states as they are saved.
func testWorkflowRuns(t *testing.T) {
	s := open(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var runs []*state.Run
	for i := range 5 {
		id := fmt.Sprint("m", i)
		r := &state.Run{ID: state.RunID("a", "order", id), Workflow: "ship", Client: "a", Type: "order", MessageID: id,
			State: state.RunRunning, StartedAt: base.Add(time.Duration(i) * time.Second), Deadline: base.Add(time.Hour),
			Steps: []state.StepRun{{Name: "reserve", Status: state.StepPending}}}
		if err := s.SaveRun(r, i%2 == 0); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	runs[1].State, runs[1].Steps[0].Status = state.RunCompleted, state.StepSucceeded
	if err := s.SaveRun(runs[1], true); err != nil {
		t.Fatal(err)
	}
	page, next, err := s.Runs(state.RunFilter{State: state.RunRunning, Limit: 3})
	if err != nil || len(page) != 3 || next == "" || page[0].MessageID != "m0" || page[1].MessageID != "m2" {
		t.Fatalf("first page: %+v %q %v", page, next, err)
	}
	rest, next, err := s.Runs(state.RunFilter{State: state.RunRunning, Limit: 3, After: next})
	if err != nil || len(rest) != 1 || next != "" || rest[0].MessageID != "m4" {
		t.Fatalf("second page: %+v %q %v", rest, next, err)
	}
	if n, err := s.CountRuns(state.RunCompleted); err != nil || n != 1 {
		t.Fatalf("%d completed runs, %v", n, err)
	}
	got, err := s.WorkflowRun(runs[1].ID)
	if err != nil || got.State != state.RunCompleted || got.Steps[0].Status != state.StepSucceeded {
		t.Fatalf("run: %+v %v", got, err)
	}
	if err := s.DeleteRun(runs[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WorkflowRun(runs[1].ID); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("deleted run: %v", err)
	}
	if n, _ := s.CountRuns(state.RunCompleted); n != 0 {
		t.Fatalf("%d completed runs after delete", n)
	}
}

// A held key's parked messages are released one at a time, in log order, then the hold ends.
func testHolds(t *testing.T) {
	l, s := openWithLog(t)
	h := state.Hold{Topic: "in", Type: "order", Key: "k1", Holder: "first"}
	if err := s.Failures(state.Failures{Holds: []state.Hold{h}}); err != nil {
		t.Fatal(err)
	}
	for i, off := range []uint64{9, 3} { // parked out of order: released by offset
		if err := s.Park(h, []byte(fmt.Sprint("v", off)), 0, off); err != nil {
			t.Fatal(err, i)
		}
	}
	if held, err := s.Holds("in"); err != nil || held["order\x00k1"] != "first" {
		t.Fatalf("holds: %v %v", held, err)
	}
	mark := func(v []byte) []byte { return append([]byte("released:"), v...) }
	holder := func(v []byte) string { return string(v) }
	for _, want := range []string{"v3", "v9", ""} {
		next, err := s.Release(context.Background(), h, mark, holder)
		if err != nil || next != want {
			t.Fatalf("release: %q %v, want %q", next, err, want)
		}
	}
	if held, _ := s.Holds("in"); len(held) != 0 {
		t.Fatalf("holds after the queue emptied: %v", held)
	}
	recs := consumeN(t, l, 2)
	if string(recs[0].Value) != "released:v3" || string(recs[1].Value) != "released:v9" {
		t.Fatalf("released: %q %q", recs[0].Value, recs[1].Value)
	}
}

// openPostgres returns a PostgreSQL space on a schema of the test's own, with a log as buffer.
func openPostgres(t *testing.T) *state.Postgres {
	t.Helper()
	l := openLog(t, t.TempDir())
	t.Cleanup(func() { l.Close() })
	p, err := state.OpenPostgres(t.Context(), pgtest.Schema(t), l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Leases go to one holder at a time; a holder that lost its lease cannot write under it.
func TestPostgresLeases(t *testing.T) {
	p := openPostgres(t)
	ctx := t.Context()
	a, ok, err := p.Acquire(ctx, "partition/1", "a", 300*time.Millisecond)
	if err != nil || !ok || a.Token != 1 {
		t.Fatalf("a: %+v %v %v", a, ok, err)
	}
	if _, ok, _ := p.Acquire(ctx, "partition/1", "b", time.Second); ok {
		t.Fatal("b took a running lease")
	}
	if renewed, ok, _ := p.Acquire(ctx, "partition/1", "a", 300*time.Millisecond); !ok || renewed.Token != a.Token {
		t.Fatalf("renewal changed hands: %+v", renewed)
	}
	write := func(f *state.Lease, key string) error {
		return p.Write(ctx, state.Batch{Ops: []state.Op{{Key: []byte(key), Value: []byte("x")}}, Fence: f})
	}
	if err := write(&a, "t/a1"); err != nil {
		t.Fatal(err)
	}
	if held, err := p.Held(ctx, "partition/"); err != nil || len(held) != 1 || held[0].Holder != "a" {
		t.Fatalf("held: %+v %v", held, err)
	}
	time.Sleep(400 * time.Millisecond) // a stops renewing: paused, or dead
	b, ok, err := p.Acquire(ctx, "partition/1", "b", time.Minute)
	if err != nil || !ok || b.Token != a.Token+1 {
		t.Fatalf("b after expiry: %+v %v %v", b, ok, err)
	}
	if err := write(&a, "t/a2"); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("stale holder wrote: %v", err)
	}
	if err := p.AppendWith(ctx, "in", []buffer.Message{{Key: []byte("k"), Value: []byte("v")}}, state.Batch{Fence: &a}); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("stale holder appended: %v", err)
	}
	if _, ok, _ := p.Get([]byte("t/a2")); ok {
		t.Fatal("a fenced write landed")
	}
	if err := write(&b, "t/b1"); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(ctx, "partition/1", "b"); err != nil {
		t.Fatal(err)
	}
	if held, _ := p.Held(ctx, "partition/"); len(held) != 0 {
		t.Fatalf("released lease still held: %+v", held)
	}
	c, ok, _ := p.Acquire(ctx, "partition/1", "a", time.Second)
	if !ok || c.Token != b.Token+1 {
		t.Fatalf("token after release and re-acquire: %+v", c)
	}
}

// Instances racing for one lease: exactly one wins each round.
func TestPostgresLeaseRace(t *testing.T) {
	l := openLog(t, t.TempDir())
	t.Cleanup(func() { l.Close() })
	url := pgtest.Schema(t)
	var spaces []*state.Postgres
	for range 4 {
		p, err := state.OpenPostgres(t.Context(), url, l) // the first migrates; the rest find it done
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		spaces = append(spaces, p)
	}
	for round := range 5 {
		name := fmt.Sprint("race/", round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i, p := range spaces {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, ok, err := p.Acquire(t.Context(), name, fmt.Sprint("i", i), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					won++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("round %d: %d winners", round, won)
		}
	}
}

// A run's writes under a partition lease another instance took over do not land.
func TestPostgresRunFenced(t *testing.T) {
	p := openPostgres(t)
	s, err := state.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	stale, _, _ := p.Acquire(t.Context(), "partition/0", "a", 100*time.Millisecond)
	r := &state.Run{ID: state.RunID("a", "order", "m1"), Workflow: "ship", State: state.RunRunning,
		Steps: []state.StepRun{{Name: "reserve", Status: state.StepPending}}}
	r.Fence(&stale)
	if err := s.SaveRun(r, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	fresh, ok, _ := p.Acquire(t.Context(), "partition/0", "b", time.Minute)
	if !ok {
		t.Fatal("b could not take the expired lease")
	}
	r.Steps[0].Status = state.StepSucceeded
	if err := s.SaveRun(r, true); !errors.Is(err, state.ErrFenced) {
		t.Fatalf("stale save: %v", err)
	}
	got, err := s.WorkflowRun(r.ID)
	if err != nil || got.Steps[0].Status != state.StepPending {
		t.Fatalf("after a fenced save: %+v %v", got, err)
	}
	got.Fence(&fresh)
	got.State = state.RunCompleted
	if err := s.SaveRun(got, true); err != nil {
		t.Fatal(err)
	}
}
