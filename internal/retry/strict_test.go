package retry_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/retry"
	"github.com/weirhq/weir/internal/runtime"
	"github.com/weirhq/weir/internal/state"
)

// A stage running the retry hooks over the embedded log, as the app wires it.
type strictRig struct {
	log   *embedded.Log
	store *state.Store
	r     *retry.Retries

	mu      sync.Mutex
	handled []string // ids in the order they succeeded
	tries   map[string]int
	failN   map[string]int // id → attempts that fail before it succeeds
}

const strictTopic = "deliver.p"

func newStrictRig(t *testing.T, dir string, failN map[string]int) *strictRig {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := embedded.Open(embedded.Config{Dir: dir, Logger: quiet, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.EnsureTopic(context.Background(), buffer.TopicConfig{Name: strictTopic, Partitions: 2, Groups: []string{strictTopic}}); err != nil {
		t.Fatal(err)
	}
	st, err := state.New(l)
	if err != nil {
		t.Fatal(err)
	}
	rg := &strictRig{log: l, store: st, tries: map[string]int{}, failN: failN}
	rg.r = retry.New(retry.Config{Store: st, Logger: quiet, Rand: func() float64 { return 0.5 }},
		func(topic string) bool { return topic == strictTopic })
	return rg
}

func (rg *strictRig) handler(_ context.Context, recs []buffer.Record) []error {
	errs := make([]error, len(recs))
	failed := false
	rg.mu.Lock()
	defer rg.mu.Unlock()
	for i, rec := range recs {
		m, _ := message.Decode(rec.Value)
		rg.tries[m.ID]++
		if rg.tries[m.ID] <= rg.failN[m.ID] {
			errs[i], failed = errors.New("partner down"), true
			continue
		}
		rg.handled = append(rg.handled, m.ID)
	}
	if !failed {
		return nil
	}
	return errs
}

func (rg *strictRig) run(t *testing.T, strict bool) (stop func()) {
	t.Helper()
	st := retry.Stage{Topic: strictTopic, Name: "deliver", Endpoint: "p",
		Policy: func(string) retry.Policy {
			return retry.Policy{Schedule: []time.Duration{150 * time.Millisecond, 150 * time.Millisecond, 150 * time.Millisecond}}
		}}
	if strict {
		st.Strict = func(typ string) bool { return typ == "order" }
	}
	fh, err := rg.r.For(st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		runtime.Run(ctx, rg.log, runtime.Config{Name: "s", Topic: strictTopic, Group: strictTopic, Workers: 2, BatchSize: 4,
			Fail: fh.Fail, Hold: fh.Hold, Done: fh.Done}, rg.handler)
	}()
	go func() {
		defer wg.Done()
		rg.r.Run(ctx)
	}()
	return func() { cancel(); wg.Wait() }
}

func (rg *strictRig) send(t *testing.T, ids ...string) {
	t.Helper()
	var msgs []buffer.Message
	for _, id := range ids {
		key := id[:1] // "a1" → key "a"
		// One fixed acceptance time: sending an id again is the same message again (a redelivery).
		m := message.Message{ID: id, Client: "c", Type: "order", Key: key, ReceivedAt: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)}
		msgs = append(msgs, buffer.Message{Key: []byte(key), Value: m.Encode()})
	}
	if err := rg.log.Append(context.Background(), strictTopic, msgs); err != nil {
		t.Fatal(err)
	}
}

func (rg *strictRig) waitHandled(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		rg.mu.Lock()
		got := slices.Clone(rg.handled)
		rg.mu.Unlock()
		if len(got) >= n {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("handled %v, want %d messages", rg.handled, n)
	return nil
}

func indexOf(ids []string, id string) int { return slices.Index(ids, id) }

// With strict order, the later messages of a key wait behind the one that waits for a retry,
// while other keys go on; without it, they pass it.
func TestStrictOrderWaitsBehindRetry(t *testing.T) {
	for _, strict := range []bool{true, false} {
		name := map[bool]string{true: "strict", false: "key"}[strict]
		t.Run(name, func(t *testing.T) {
			rg := newStrictRig(t, t.TempDir(), map[string]int{"a1": 2})
			stop := rg.run(t, strict)
			defer func() { stop(); rg.log.Close() }()
			rg.send(t, "a1", "a2", "b1", "a3", "b2")
			got := rg.waitHandled(t, 5)
			// Other keys never wait for a1's retries.
			if indexOf(got, "b1") > indexOf(got, "a1") || indexOf(got, "b2") > indexOf(got, "a1") {
				t.Errorf("key b waited for key a: %v", got)
			}
			inOrder := indexOf(got, "a1") < indexOf(got, "a2") && indexOf(got, "a2") < indexOf(got, "a3")
			if strict && !inOrder {
				t.Errorf("strict order broken: %v", got)
			}
			if !strict && indexOf(got, "a2") > indexOf(got, "a1") {
				t.Errorf("per-key order: a2 should pass a1 that waits for its retry: %v", got)
			}
			time.Sleep(300 * time.Millisecond) // nothing runs twice, nothing is left behind
			rg.mu.Lock()
			defer rg.mu.Unlock()
			if len(rg.handled) != 5 {
				t.Errorf("handled %v, want each once", rg.handled)
			}
			if holds, _ := rg.store.Holds(strictTopic); len(holds) != 0 {
				t.Errorf("holds left: %v", holds)
			}
		})
	}
}

// A message that is dead-lettered releases the ones behind it; a hold survives a restart.
func TestStrictOrderReleaseAfterDeadLetterAndRestart(t *testing.T) {
	dir := t.TempDir()
	rg := newStrictRig(t, dir, map[string]int{"a1": 100}) // a1 always fails: 4 attempts, then dead
	stop := rg.run(t, true)
	rg.send(t, "a1", "a2")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if holds, _ := rg.store.Holds(strictTopic); len(holds) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no hold on key a")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Restart while a1 waits: the hold and the parked a2 survive.
	stop()
	rg.log.Close()
	rg2 := newStrictRig(t, dir, map[string]int{"a1": 100})
	rg2.tries["a1"] = 1
	stop2 := rg2.run(t, true)
	defer func() { stop2(); rg2.log.Close() }()
	rg2.send(t, "a3")
	got := rg2.waitHandled(t, 2)
	if !slices.Equal(got, []string{"a2", "a3"}) {
		t.Errorf("handled %v after a1 was dead-lettered, want [a2 a3]", got)
	}
	ds, err := rg2.store.DeadLetters(state.LetterFilter{})
	if err != nil || len(ds) != 1 || ds[0].MessageID != "a1" || ds[0].Reason != state.ReasonExhausted {
		t.Fatalf("dead letters %+v, %v", ds, err)
	}
}

// A record of a held key handled again after a crash (its failure already recorded) neither runs
// nor parks: its chain of retries goes on, and the message is handled once, in order.
func TestStrictOrderRedeliveredHolderRunsOnce(t *testing.T) {
	rg := newStrictRig(t, t.TempDir(), map[string]int{"a1": 2})
	stop := rg.run(t, true)
	defer func() { stop(); rg.log.Close() }()
	rg.send(t, "a1")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if holds, _ := rg.store.Holds(strictTopic); len(holds) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no hold on key a")
		}
		time.Sleep(5 * time.Millisecond)
	}
	rg.send(t, "a1", "a2") // a1 again, as a crash before the commit would redeliver it
	got := rg.waitHandled(t, 2)
	time.Sleep(500 * time.Millisecond)
	rg.mu.Lock()
	defer rg.mu.Unlock()
	if !slices.Equal(rg.handled, []string{"a1", "a2"}) || !slices.Equal(got[:2], []string{"a1", "a2"}) {
		t.Fatalf("handled %v, want [a1 a2]", rg.handled)
	}
	if rg.tries["a1"] != 3 {
		t.Errorf("a1 tried %d times, want 3 (two failures, one success)", rg.tries["a1"])
	}
}
