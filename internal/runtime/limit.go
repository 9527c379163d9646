package runtime

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/weirhq/weir/internal/fault"
)

// Limiter adapts how many handler calls a stage runs at once. The stage's dispatcher goroutine
// calls both methods; Limit is the bound on calls in flight (never above Config.Workers).
type Limiter interface {
	Limit() int
	// Observe is told how one handler call went: how long it took, how many calls were in
	// flight when it started, and whether it failed transiently (a sign of an overloaded peer).
	Observe(took time.Duration, inflight int, overloaded bool)
}

// AdaptiveLimit is an AIMD concurrency limit, after Netflix's concurrency-limits: it raises the
// limit by one while the limit is what holds calls back and latency stays near its baseline, and
// cuts it by a tenth when calls fail transiently (timeouts, 429, 5xx) or latency passes Tolerance
// times the baseline — a peer that slows down as it is given more work gets less, before it
// starts failing.
//
// Latency is smoothed (an exponential average over about twenty calls), since calls differ in
// length on their own; the baseline is the lowest smoothed latency seen, drifting up very slowly
// so that our own queueing never becomes it. A peer that became slower for good drives the limit
// to its minimum, where the latency observed is the peer's own: it becomes the new baseline.
type AdaptiveLimit struct {
	Min, Max  int
	Tolerance float64 // smoothed latency over Tolerance × baseline backs off (default 2)

	limit    float64
	smoothed float64      // ns
	baseline float64      // ns
	current  atomic.Int64 // the limit, for readers on other goroutines (metrics)
}

// NewAdaptiveLimit starts at min(max, 8) and moves between min and max.
func NewAdaptiveLimit(min, max int) *AdaptiveLimit {
	min = max1(min)
	if max < min {
		max = min
	}
	l := &AdaptiveLimit{Min: min, Max: max, Tolerance: 2, limit: float64(clamp(8, min, max))}
	l.current.Store(int64(l.limit))
	return l
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }

// Limit is the current limit.
func (l *AdaptiveLimit) Limit() int { return int(l.limit) }

// Current is Limit for other goroutines.
func (l *AdaptiveLimit) Current() int { return int(l.current.Load()) }

// Observe adapts the limit to one call's outcome.
func (l *AdaptiveLimit) Observe(took time.Duration, inflight int, overloaded bool) {
	t := float64(took)
	if l.smoothed == 0 {
		l.smoothed = t
	} else {
		l.smoothed += (t - l.smoothed) / 20
	}
	switch {
	case l.baseline == 0 || l.smoothed < l.baseline:
		l.baseline = l.smoothed
	case int(l.limit) <= l.Min:
		l.baseline = l.smoothed
	default:
		l.baseline += (l.smoothed - l.baseline) / 100_000
	}
	switch {
	case overloaded, l.smoothed > l.Tolerance*l.baseline:
		l.limit = math.Max(float64(l.Min), l.limit*0.9)
	case inflight >= int(l.limit): // the limit held calls back and latency is fine: try more
		l.limit = math.Min(float64(l.Max), l.limit+1)
	}
	l.current.Store(int64(l.limit))
}

// overloaded reports whether a call's errors say its peer is overloaded: a transient failure.
func overloaded(errs []error) bool {
	for _, err := range errs {
		if err != nil && !fault.IsPermanent(err) {
			return true
		}
	}
	return false
}
