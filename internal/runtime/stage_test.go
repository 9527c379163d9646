package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/runtime"
)

func openLog(t *testing.T, dir string) *embedded.Log {
	t.Helper()
	l, err := embedded.Open(embedded.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fill appends n records over keys, each value "key:seq".
func fill(t *testing.T, l buffer.Buffer, topic string, n, keys int) {
	t.Helper()
	ctx := context.Background()
	if err := l.EnsureTopic(ctx, buffer.TopicConfig{Name: topic, Partitions: 2, Groups: []string{"g"}}); err != nil {
		t.Fatal(err)
	}
	var msgs []buffer.Message
	for i := range n {
		k := fmt.Sprintf("k%d", i%keys)
		msgs = append(msgs, buffer.Message{Key: []byte(k), Value: []byte(fmt.Sprintf("%s:%d", k, i/keys))})
	}
	if err := l.Append(ctx, topic, msgs); err != nil {
		t.Fatal(err)
	}
}

type recorder struct {
	mu    sync.Mutex
	seen  map[string][]string // key → values in handling order
	count int
	done  chan struct{}
	want  int
}

func newRecorder(want int) *recorder {
	return &recorder{seen: map[string][]string{}, done: make(chan struct{}), want: want}
}

func (r *recorder) add(rec buffer.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[string(rec.Key)] = append(r.seen[string(rec.Key)], string(rec.Value))
	r.count++
	if r.count == r.want {
		close(r.done)
	}
}

func run(t *testing.T, l buffer.Buffer, cfg runtime.Config, h runtime.Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- runtime.Run(ctx, l, cfg, h) }()
	return func() error { cancel(); return <-errc }
}

func wait(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatal("timed out")
	}
}

// Records of one key are handled in order, even with many workers, random handler latency
// and transient failures on the way.
func TestPerKeyOrderWithRetries(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	const n, keys = 2000, 37
	fill(t, l, "in", n, keys)
	rec := newRecorder(n)
	var mu sync.Mutex
	failed := map[string]bool{}
	h := func(ctx context.Context, recs []buffer.Record) []error {
		seenKeys := map[string]bool{}
		errs := make([]error, len(recs))
		for i, r := range recs {
			if seenKeys[string(r.Key)] {
				t.Errorf("batch holds key %s twice", r.Key)
			}
			seenKeys[string(r.Key)] = true
			mu.Lock()
			first := !failed[string(r.Value)]
			failed[string(r.Value)] = true
			mu.Unlock()
			if first && rand.IntN(10) == 0 {
				errs[i] = errors.New("transient")
				continue
			}
			rec.add(r)
		}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		return errs
	}
	stop := run(t, l, runtime.Config{Name: "t", Topic: "in", Group: "g", Workers: 8, BatchSize: 16, Window: 256,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, h)
	wait(t, rec.done)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for k, vals := range rec.seen {
		for i, v := range vals {
			if want := fmt.Sprintf("%s:%d", k, i); v != want {
				t.Fatalf("key %s: position %d holds %s, want %s", k, i, v, want)
			}
		}
	}
}

// A record that keeps failing blocks only its own key; others flow, and the commit point stays
// before it, so a new consumer gets it again.
func TestStuckRecordBlocksOnlyItsKey(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	fill(t, l, "in", 300, 10)
	rec := newRecorder(300 - 30)
	h := func(ctx context.Context, recs []buffer.Record) []error {
		errs := make([]error, len(recs))
		for i, r := range recs {
			if string(r.Key) == "k3" {
				errs[i] = errors.New("partner down")
				continue
			}
			rec.add(r)
		}
		return errs
	}
	stop := run(t, l, runtime.Config{Name: "t", Topic: "in", Group: "g", Workers: 2, BatchSize: 8,
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, CommitEvery: time.Millisecond}, h)
	wait(t, rec.done)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Every k3 record is redelivered to the next consumer of the group; nothing was skipped.
	again := newRecorder(30)
	stop = run(t, l, runtime.Config{Name: "t2", Topic: "in", Group: "g", Workers: 2}, func(ctx context.Context, recs []buffer.Record) []error {
		for _, r := range recs {
			if string(r.Key) == "k3" {
				again.add(r)
			}
		}
		return nil
	})
	wait(t, again.done)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for i, v := range again.seen["k3"] {
		if v != fmt.Sprintf("k3:%d", i) {
			t.Fatalf("redelivered k3 out of order: %v", again.seen["k3"])
		}
	}
	l.Close()
}

// Permanent failures and panics finish the record (reported once) instead of retrying forever.
func TestPermanentAndPanic(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	fill(t, l, "in", 50, 50)
	var mu sync.Mutex
	perm := map[string]error{}
	all := make(chan struct{})
	h := func(ctx context.Context, recs []buffer.Record) []error {
		for _, r := range recs {
			if string(r.Value) == "k7:0" {
				panic("boom")
			}
		}
		errs := make([]error, len(recs))
		for i, r := range recs {
			if string(r.Value) == "k9:0" {
				errs[i] = fault.Permanent(errors.New("bad data"))
			}
		}
		return errs
	}
	var done int
	cfg := runtime.Config{Name: "t", Topic: "in", Group: "g", Workers: 2, BatchSize: 1,
		OnPermanent: func(r buffer.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if _, dup := perm[string(r.Value)]; dup {
				t.Errorf("%s reported twice", r.Value)
			}
			perm[string(r.Value)] = err
			done++
			if done == 2 {
				close(all)
			}
		}}
	stop := run(t, l, cfg, h)
	wait(t, all)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !fault.IsPermanent(perm["k7:0"]) || !fault.IsPermanent(perm["k9:0"]) {
		t.Fatalf("permanent errors: %v", perm)
	}
}

// The committed offset only covers the contiguous prefix of finished records: a slow early
// record holds the commit back even when later ones are done.
func TestCommitsOnlyContiguousPrefix(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	ctx := context.Background()
	if err := l.EnsureTopic(ctx, buffer.TopicConfig{Name: "in", Partitions: 1, Groups: []string{"g"}}); err != nil {
		t.Fatal(err)
	}
	var msgs []buffer.Message
	for i := range 20 {
		msgs = append(msgs, buffer.Message{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))})
	}
	l.Append(ctx, "in", msgs)
	release := make(chan struct{})
	others := newRecorder(19)
	stop := run(t, l, runtime.Config{Name: "t", Topic: "in", Group: "g", Workers: 4, BatchSize: 1, CommitEvery: time.Millisecond},
		func(ctx context.Context, recs []buffer.Record) []error {
			if string(recs[0].Value) == "0" {
				<-release
				return []error{errors.New("never finished before shutdown")}
			}
			others.add(recs[0])
			return nil
		})
	wait(t, others.done)
	close(release)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Record 0 never succeeded, so all 20 come back.
	again := newRecorder(20)
	stop = run(t, l, runtime.Config{Name: "t2", Topic: "in", Group: "g"}, func(ctx context.Context, recs []buffer.Record) []error {
		for _, r := range recs {
			again.add(r)
		}
		return nil
	})
	wait(t, again.done)
	stop()
	l.Close()
}

// A record that fails forever does not stop other keys once Window records went past it: they
// finish and free their slots; only the commit point (and Span) waits for it.
func TestPoisonRecordDoesNotStopTheStage(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	const n = 2000
	fill(t, l, "in", n, 400)
	rec := newRecorder(n - n/400)
	stop := run(t, l, runtime.Config{Name: "t", Topic: "in", Group: "g", Workers: 2, BatchSize: 8, Window: 64,
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond},
		func(ctx context.Context, recs []buffer.Record) []error {
			errs := make([]error, len(recs))
			for i, r := range recs {
				if string(r.Key) == "k0" {
					errs[i] = errors.New("poison")
					continue
				}
				rec.add(r)
			}
			return errs
		})
	wait(t, rec.done)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// A clean stop finishes the records already fetched (within DrainTimeout) and commits them, so
// the next consumer of the group sees each record once: handled before the stop or after it,
// never both.
func TestCleanStopRepeatsNothing(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	const n = 300
	fill(t, l, "in", n, 7) // keys repeat: records wait behind their key while others finish
	var mu sync.Mutex
	seen := map[string]int{}
	handle := func(ctx context.Context, recs []buffer.Record) []error {
		time.Sleep(200 * time.Microsecond)
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			seen[string(r.Value)]++
		}
		return nil
	}
	cfg := runtime.Config{Name: "t", Topic: "in", Group: "g", Workers: 3, BatchSize: 5, Window: 20, DrainTimeout: 20 * time.Second}
	stop := run(t, l, cfg, handle)
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		k := len(seen)
		mu.Unlock()
		if k >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing handled")
		}
		time.Sleep(time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(seen) == n {
		t.Fatal("the first consumer handled everything: the test needs a smaller window")
	}
	mu.Unlock()
	cfg.Name = "t2"
	stop = run(t, l, cfg, handle)
	for {
		mu.Lock()
		k := len(seen)
		mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d records handled", k, n)
		}
		time.Sleep(time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for v, c := range seen {
		if c != 1 {
			t.Fatalf("%s handled %d times", v, c)
		}
	}
}

// With a Fail hook, failed records are handed over once and count as finished: the commit moves
// past them, and the next consumer of the group does not see them again.
func TestFailHookFinishesFailedRecords(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	const n = 100
	fill(t, l, "in", n, 10)
	var mu sync.Mutex
	var handed []string
	ok := newRecorder(n - n/10)
	stop := run(t, l, runtime.Config{Name: "t", Topic: "in", Group: "g", Workers: 2, BatchSize: 8, CommitEvery: time.Millisecond,
		Fail: func(recs []buffer.Record, errs []error) error {
			mu.Lock()
			defer mu.Unlock()
			for i, r := range recs {
				if errs[i] == nil {
					t.Errorf("Fail got a record without an error: %s", r.Value)
				}
				handed = append(handed, string(r.Value))
			}
			return nil
		}},
		func(ctx context.Context, recs []buffer.Record) []error {
			errs := make([]error, len(recs))
			for i, r := range recs {
				if string(r.Key) == "k3" {
					errs[i] = errors.New("partner down")
					continue
				}
				ok.add(r)
			}
			return errs
		})
	wait(t, ok.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := len(handed)
		mu.Unlock()
		if got == n/10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Fail got %d records, want %d", got, n/10)
		}
		time.Sleep(time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(handed) != n/10 {
		t.Fatalf("Fail got %v, want each k3 record once", handed)
	}
	// Everything was finished: a new consumer of the group finds nothing.
	c, err := l.Consume(context.Background(), "in", "g")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if recs, _ := c.Fetch(ctx, 10); len(recs) != 0 {
		t.Fatalf("after the stop, %d records came back, first %s", len(recs), recs[0].Value)
	}
}

// When the Fail hook cannot record the failures, the stage stops with its error and does not
// commit past the failed records.
func TestFailHookErrorStopsTheStage(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	fill(t, l, "in", 10, 10)
	errc := make(chan error, 1)
	go func() {
		errc <- runtime.Run(context.Background(), l, runtime.Config{Name: "t", Topic: "in", Group: "g", BatchSize: 1,
			Fail: func([]buffer.Record, []error) error { return errors.New("disk full") }},
			func(ctx context.Context, recs []buffer.Record) []error {
				if string(recs[0].Key) == "k5" {
					return []error{errors.New("boom")}
				}
				return nil
			})
	}()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("Run = %v, want the Fail hook's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stage kept running")
	}
	again := newRecorder(1)
	stop := run(t, l, runtime.Config{Name: "t2", Topic: "in", Group: "g"}, func(ctx context.Context, recs []buffer.Record) []error {
		for _, r := range recs {
			if string(r.Key) == "k5" {
				again.add(r)
			}
		}
		return nil
	})
	wait(t, again.done) // k5 comes back: its failure was never recorded
	stop()
}

type gate chan struct{}

func (g gate) Paused() bool {
	select {
	case <-g:
		return false
	default:
		return true
	}
}

func (g gate) Wait(ctx context.Context) error {
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A paused stage neither fetches nor hands out work; resuming lets the records through.
func TestPauseHoldsTheStage(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	fill(t, l, "in", 20, 5)
	open := make(gate)
	rec := newRecorder(20)
	stop := run(t, l, runtime.Config{Name: "t", Topic: "in", Group: "g", Pause: open},
		func(ctx context.Context, recs []buffer.Record) []error {
			for _, r := range recs {
				rec.add(r)
			}
			return nil
		})
	time.Sleep(100 * time.Millisecond)
	rec.mu.Lock()
	early := rec.count
	rec.mu.Unlock()
	if early != 0 {
		t.Fatalf("%d records handled while paused", early)
	}
	close(open)
	wait(t, rec.done)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// A rate-limited stage hands its handler no more records than the limit allows, whatever the
// workers: 60 records at 100/s with a burst of 10 take at least half a second.
func TestRateLimitedStage(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	const n = 60
	fill(t, l, "in", n, 7)
	rec := newRecorder(n)
	h := func(_ context.Context, recs []buffer.Record) []error {
		for _, r := range recs {
			rec.add(r)
		}
		return nil
	}
	start := time.Now()
	stop := run(t, l, runtime.Config{Name: "t", Topic: "in", Group: "g", Workers: 8, BatchSize: 10, Window: 256,
		Rate: rate.NewLimiter(100, 10)}, h)
	wait(t, rec.done)
	took := time.Since(start)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The bucket starts full (10), then refills at 100/s: the other 50 need 500 ms at least.
	if took < 450*time.Millisecond {
		t.Fatalf("%d records handled in %v: the limit of 100/s did not hold", n, took)
	}
}

// A stage told to yield runs one handler call at a time, whatever its workers; told no longer,
// it uses them all again.
func TestYieldHoldsOneCall(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	const n = 400
	fill(t, l, "in", n, 50)
	var yield atomic.Bool
	yield.Store(true)
	var running, most atomic.Int64
	rec := newRecorder(n)
	h := func(_ context.Context, recs []buffer.Record) []error {
		now := running.Add(1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		for _, r := range recs {
			rec.add(r)
		}
		running.Add(-1)
		return nil
	}
	stop := run(t, l, runtime.Config{Name: "t", Topic: "in", Group: "g", Workers: 8, BatchSize: 4, Window: 256,
		Yield: yield.Load}, h)
	eventuallyCount := func(want int) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			rec.mu.Lock()
			c := rec.count
			rec.mu.Unlock()
			if c >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d records handled", c, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	eventuallyCount(n / 2)
	if m := most.Load(); m != 1 {
		t.Fatalf("%d handler calls at once while yielding, want 1", m)
	}
	yield.Store(false)
	wait(t, rec.done)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if m := most.Load(); m < 2 {
		t.Fatalf("at most %d call at once after yielding ended: the workers stayed idle", m)
	}
}
