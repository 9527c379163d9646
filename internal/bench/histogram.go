package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The latency histogram is HDR-like: values in nanoseconds, exact below 128 ns, and above that
// each power-of-two range split into 64 linear sub-buckets, so any recorded value is reported
// within 1/64 (1.6%) of itself. Memory is fixed (histBuckets counters) whatever the run length.
const (
	histSubBits  = 7
	histSub      = 1 << histSubBits // exact values below this
	histHalf     = histSub / 2      // sub-buckets per power of two above it
	histMaxShift = 40               // largest value ~2^47 ns (39 hours); larger ones are clamped
	histBuckets  = histMaxShift*histHalf + histSub
	histMaxValue = 1<<(histMaxShift+histSubBits) - 1
)

// histIndex returns the bucket of v nanoseconds.
func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	v = min(v, histMaxValue)
	shift := bits.Len64(v) - histSubBits
	return shift*histHalf + int(v>>shift)
}

// histHigh returns the largest value that falls into bucket i.
func histHigh(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := i/histHalf - 1
	m := uint64(i - shift*histHalf)
	return (m+1)<<shift - 1
}

// histogram records latencies from one goroutine while another reads snapshots of it, so its
// counters are atomics; each connection has its own, so the writes never contend.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
}

// record adds one latency. Only one goroutine may call it.
func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histIndex(v)].Add(1)
	h.sum.Add(v)
	if v > h.max.Load() {
		h.max.Store(v)
	}
}

// addTo adds the histogram's current counts to s. It is safe to call while record runs.
func (h *histogram) addTo(s *histSnapshot) {
	for i := range h.counts {
		if c := h.counts[i].Load(); c != 0 {
			s.counts[i] += c
			s.total += c
		}
	}
	s.sum += h.sum.Load()
	s.max = max(s.max, h.max.Load())
}

// histSnapshot is a plain merged copy of histograms, for computing quantiles.
type histSnapshot struct {
	counts [histBuckets]uint64
	total  uint64
	sum    uint64
	max    uint64
}

// quantile returns the latency at or below which a fraction q of the values fall, as the top of
// its bucket (never above the largest value recorded). It is 0 for an empty snapshot.
func (s *histSnapshot) quantile(q float64) time.Duration {
	if s.total == 0 {
		return 0
	}
	rank := uint64(q * float64(s.total))
	if float64(rank) < q*float64(s.total) {
		rank++ // ceil
	}
	rank = max(rank, 1)
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histHigh(i), s.max))
		}
	}
	return time.Duration(s.max)
}

// latency summarises the snapshot.
func (s *histSnapshot) latency() Latency {
	l := Latency{
		Count: int64(s.total),
		P50:   s.quantile(0.50),
		P90:   s.quantile(0.90),
		P99:   s.quantile(0.99),
		P999:  s.quantile(0.999),
		Max:   time.Duration(s.max),
	}
	if s.total > 0 {
		l.Mean = time.Duration(s.sum / s.total)
	}
	return l
}

// minus returns what was recorded between prev and s, two snapshots of the same histograms with
// prev taken first. Its max is the top of the highest bucket in use, capped by s's max.
func (s *histSnapshot) minus(prev *histSnapshot) *histSnapshot {
	d := new(histSnapshot)
	top := -1
	for i := range s.counts {
		if c := s.counts[i] - prev.counts[i]; c != 0 {
			d.counts[i] = c
			d.total += c
			top = i
		}
	}
	d.sum = s.sum - prev.sum
	if top >= 0 {
		d.max = min(histHigh(top), s.max)
	}
	return d
}
