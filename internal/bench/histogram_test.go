package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	check := func(v uint64) {
		i := histIndex(v)
		if i < prev {
			t.Fatalf("index(%d) = %d after %d: not monotonic", v, i, prev)
		}
		prev = i
		if i >= histBuckets {
			t.Fatalf("index(%d) = %d, only %d buckets", v, i, histBuckets)
		}
		hi := histHigh(i)
		if hi < v || float64(hi-v) > float64(v)/histHalf {
			t.Fatalf("value %d in bucket %d reported as %d: error over 1/%d", v, i, hi, histHalf)
		}
	}
	for v := uint64(0); v < 100_000; v++ {
		check(v)
	}
	for v := uint64(100_000); v < histMaxValue; v = v*17/16 + 1 {
		check(v)
	}
	check(histMaxValue)
	if i := histIndex(histMaxValue * 4); i != histBuckets-1 {
		t.Fatalf("huge values land in bucket %d, want the last (%d)", i, histBuckets-1)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	rng := rand.New(rand.NewPCG(1, 2))
	var values []time.Duration
	for range 100_000 {
		d := time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond))
		values = append(values, d)
		h.record(d)
	}
	slices.Sort(values)
	var s histSnapshot
	h.addTo(&s)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := values[int(q*float64(len(values)))-1]
		got := s.quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/histHalf+1 {
			t.Errorf("p%v = %v, exact %v", q*100, got, exact)
		}
	}
	l := s.latency()
	if l.Count != int64(len(values)) || l.Max != values[len(values)-1] {
		t.Fatalf("count %d max %v, want %d %v", l.Count, l.Max, len(values), values[len(values)-1])
	}
	var empty histSnapshot
	if got := empty.latency(); got != (Latency{}) {
		t.Fatalf("empty histogram: %+v", got)
	}
}
