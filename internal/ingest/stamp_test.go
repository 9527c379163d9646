package ingest

import (
	"sync"
	"testing"
)

// Acceptance times are strictly increasing at microsecond precision, across goroutines too, so
// the sinks' "accepted last wins" guard never sees a tie.
func TestStampsStrictlyIncrease(t *testing.T) {
	g := &Gateway{}
	const workers, each = 8, 2000
	got := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				at := g.stamp()
				if at.Nanosecond()%1000 != 0 {
					t.Errorf("stamp %v is finer than a microsecond", at)
				}
				got[w] = append(got[w], at.UnixMicro())
			}
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, ts := range got {
		for i, v := range ts {
			if seen[v] {
				t.Fatalf("stamp %d handed out twice", v)
			}
			seen[v] = true
			if i > 0 && v <= ts[i-1] {
				t.Fatalf("stamps went back: %d after %d", v, ts[i-1])
			}
		}
	}
}
