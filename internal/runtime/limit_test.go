package runtime_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/runtime"
)

// A peer whose latency does not depend on load gets all the concurrency allowed.
func TestAdaptiveLimitGrowsWhileLatencyHolds(t *testing.T) {
	l := runtime.NewAdaptiveLimit(1, 64)
	for range 200 {
		l.Observe(10*time.Millisecond, l.Limit(), false)
	}
	if l.Limit() != 64 {
		t.Fatalf("limit %d, want 64", l.Limit())
	}
	// A limit that does not hold calls back is not raised.
	l = runtime.NewAdaptiveLimit(1, 64)
	for range 200 {
		l.Observe(10*time.Millisecond, 2, false)
	}
	if l.Limit() != 8 {
		t.Fatalf("limit %d, want the start (8)", l.Limit())
	}
}

// A peer that queues beyond 20 calls (latency grows with the calls in flight) settles near its
// capacity, well below the maximum.
func TestAdaptiveLimitFindsCapacity(t *testing.T) {
	const capacity = 20
	l := runtime.NewAdaptiveLimit(1, 500)
	for range 5000 {
		n := l.Limit()
		took := 10 * time.Millisecond * time.Duration(max(n, capacity)) / capacity
		l.Observe(took, n, false)
	}
	if got := l.Limit(); got < capacity/2 || got > 5*capacity/2 {
		t.Fatalf("limit %d, want about %d (at most 2.5 times)", got, capacity)
	}
}

// Transient failures (timeouts, 429, 5xx) cut the limit down to its minimum, never below.
func TestAdaptiveLimitBacksOffOnFailures(t *testing.T) {
	l := runtime.NewAdaptiveLimit(2, 64)
	for range 100 {
		l.Observe(10*time.Millisecond, l.Limit(), false)
	}
	for range 100 {
		l.Observe(10*time.Millisecond, l.Limit(), true)
	}
	if l.Limit() != 2 {
		t.Fatalf("limit %d after failures, want the minimum 2", l.Limit())
	}
}

type fixedLimit int

func (f fixedLimit) Limit() int                     { return int(f) }
func (fixedLimit) Observe(time.Duration, int, bool) {}

// The stage never runs more handler calls than the limiter allows, whatever Workers says.
func TestStageHonoursTheLimiter(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	fill(t, l, "lim", 200, 50)
	rec := newRecorder(200)
	var in, most atomic.Int32
	var mu sync.Mutex
	h := func(_ context.Context, recs []buffer.Record) []error {
		n := in.Add(1)
		mu.Lock()
		most.Store(max(most.Load(), n))
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		in.Add(-1)
		for _, r := range recs {
			rec.add(r)
		}
		return nil
	}
	stop := run(t, l, runtime.Config{Name: "lim", Topic: "lim", Group: "g", Workers: 8, BatchSize: 1, Limiter: fixedLimit(2)}, h)
	wait(t, rec.done)
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if m := most.Load(); m > 2 || m < 1 {
		t.Fatalf("%d handler calls at once, limit 2", m)
	}
}

// A peer that became slower for good (at any concurrency) is not held at the minimum forever:
// at the minimum its latency becomes the baseline and the limit grows again.
func TestAdaptiveLimitRecoversFromASlowerPeer(t *testing.T) {
	l := runtime.NewAdaptiveLimit(1, 64)
	for range 100 {
		l.Observe(10*time.Millisecond, l.Limit(), false)
	}
	for range 1000 {
		l.Observe(50*time.Millisecond, l.Limit(), false)
	}
	if l.Limit() != 64 {
		t.Fatalf("limit %d after the peer settled at 50ms, want 64", l.Limit())
	}
}

// Stats.InFlight counts the records fetched and not finished, and returns to zero.
func TestStatsCountInFlight(t *testing.T) {
	l := openLog(t, t.TempDir())
	defer l.Close()
	fill(t, l, "st", 10, 10)
	release := make(chan struct{})
	rec := newRecorder(10)
	h := func(_ context.Context, recs []buffer.Record) []error {
		<-release
		for _, r := range recs {
			rec.add(r)
		}
		return nil
	}
	st := &runtime.Stats{}
	stop := run(t, l, runtime.Config{Name: "st", Topic: "st", Group: "g", Workers: 2, BatchSize: 1, Stats: st}, h)
	deadline := time.Now().Add(10 * time.Second)
	for st.InFlight.Load() != 10 {
		if time.Now().After(deadline) {
			t.Fatalf("in flight %d, want 10", st.InFlight.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wait(t, rec.done)
	for st.InFlight.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("in flight %d after all finished", st.InFlight.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
