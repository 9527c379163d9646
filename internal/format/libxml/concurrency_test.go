//go:build cgo

package libxml

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// orderDoc returns a document of about 1 KB carrying mark (an XML name unique to one call) of
// one of four kinds: 0 valid, 1 invalid (qty, on line 4, is mark), 2 malformed (an unclosed
// <mark>), 3 valid but refused by checked.xsl.
func orderDoc(kind int, mark string) []byte {
	qty, extra, fail := "2", "", ""
	items := strings.Repeat("  <item sku=\"ABC-1\">1.25</item>\n", 20)
	switch kind {
	case 1:
		qty = mark
	case 2:
		extra = "<" + mark + ">"
	case 3:
		fail = ` fail="yes"`
	}
	return fmt.Appendf(nil, "<?xml version=\"1.0\"?>\n<order version=\"1\"%s>\n  <id>%s</id>\n  <qty>%s</qty>\n"+
		"  <currency>USD</currency>%s\n%s</order>\n", fail, mark, qty, extra, items)
}

var markRE = regexp.MustCompile(`m-g\d+-i\d+`)

// cycle runs one parse+validate+transform of a document of kind and checks that every result
// and every error is about this document and no other.
func cycle(sc *Schema, st *Stylesheet, kind int, mark string) error {
	own := func(what string, err error) error {
		if err == nil {
			return fmt.Errorf("%s %s: no error", mark, what)
		}
		if marks := markRE.FindAllString(err.Error(), -1); len(marks) == 0 || strings.Join(marks, ",") != strings.Repeat(","+mark, len(marks))[1:] {
			return fmt.Errorf("%s %s: the error is not (only) about this document: %v", mark, what, err)
		}
		return nil
	}
	d, err := Parse(orderDoc(kind, mark))
	if kind == 2 {
		return own("parse", err)
	}
	if err != nil {
		return fmt.Errorf("%s parse: %v", mark, err)
	}
	defer d.Free()
	if kind != 3 {
		err := sc.Validate(d)
		if kind == 1 {
			if e := own("validate", err); e != nil {
				return e
			}
			if ps := err.(*Error).Problems; len(ps) != 1 || ps[0].Line != 4 {
				return fmt.Errorf("%s validate: problems %v, want one on line 4", mark, ps)
			}
		} else if err != nil {
			return fmt.Errorf("%s validate: %v", mark, err)
		}
	}
	out, err := st.Transform(d)
	if kind == 3 {
		return own("transform", err)
	}
	if want := `<done id="` + mark + `" items="20"/>`; err != nil || !strings.Contains(string(out), want) {
		return fmt.Errorf("%s transform = %q, %v; want %s", mark, out, err, want)
	}
	if id, err := d.XPathString("/order/id", 0); err != nil || id != mark {
		return fmt.Errorf("%s xpath = %q, %v", mark, id, err)
	}
	return nil
}

// TestConcurrentUse: one Schema and one Stylesheet shared by 16 goroutines; valid, invalid,
// malformed and refused documents interleave, and each error names only its own document.
func TestConcurrentUse(t *testing.T) {
	sc := mustSchema(t, "testdata/xsd/order.xsd")
	st := mustStylesheet(t, "testdata/xslt/checked.xsl", Limits{})
	const goroutines, total = 16, 2000
	errs := make(chan error, total)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range total / goroutines {
				if err := cycle(sc, st, (g+i)%4, fmt.Sprintf("m-g%d-i%d", g, i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 10 {
			t.Error(err)
		}
	}
	if n > 10 {
		t.Errorf("... %d errors in all", n)
	}
}
