//go:build cgo

package libxml

import (
	"fmt"
	"testing"
)

// TestSoak: 20,000 parse+validate+transform+Free cycles, a quarter of them failing at each
// step, leave the resident set where a warm-up of 2,000 cycles left it (within 32 MiB; a leak
// of one document a cycle would be hundreds of MiB).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test")
	}
	sc := mustSchema(t, "testdata/xsd/order.xsd")
	st := mustStylesheet(t, "testdata/xslt/checked.xsl", Limits{})
	run := func(from, to int) {
		for i := from; i < to; i++ {
			if err := cycle(sc, st, i%4, fmt.Sprintf("m-g0-i%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(0, 2000)
	before := settle(t)
	run(2000, 22000)
	after := settle(t)
	t.Logf("RSS %d MiB after the warm-up, %d MiB after 20,000 more cycles", before>>20, after>>20)
	if after-before > 32<<20 {
		t.Errorf("RSS grew by %d MiB over 20,000 cycles, want < 32 MiB", (after-before)>>20)
	}
}
