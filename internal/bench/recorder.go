package bench

import (
	"sync"
	"time"
)

// Recorder is a latency histogram that any number of goroutines may record into, for latencies
// measured outside Run: `weir bench --self` records there the end-to-end latency of every
// message its in-process partner accepts (from weir's ingest to the verified delivery).
type Recorder struct {
	mu sync.Mutex
	h  histogram
}

// Record adds one latency.
func (r *Recorder) Record(d time.Duration) {
	r.mu.Lock()
	r.h.record(d)
	r.mu.Unlock()
}

// Latency summarises what was recorded so far.
func (r *Recorder) Latency() Latency {
	var s histSnapshot
	r.mu.Lock()
	r.h.addTo(&s)
	r.mu.Unlock()
	return s.latency()
}
