//go:build cgo

package libxml

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// golden reads a .golden file: one expected problem a line, "<line>\t<message substring>".
func golden(t *testing.T, path string) []Problem {
	t.Helper()
	var want []Problem
	for line := range strings.Lines(string(readFile(t, path))) {
		n, msg, ok := strings.Cut(strings.TrimRight(line, "\n"), "\t")
		l, err := strconv.Atoi(n)
		if !ok || err != nil {
			t.Fatalf("%s: bad line %q", path, line)
		}
		want = append(want, Problem{Line: l, Message: msg})
	}
	return want
}

func checkProblems(t *testing.T, err error, op string, want []Problem) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %d problems", len(want))
	}
	got := xmlError(t, err, op).Problems
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			t.Errorf("missing problem: line %d: %s", want[i].Line, want[i].Message)
		case i >= len(want):
			t.Errorf("unexpected problem: %s", got[i])
		case got[i].Line != want[i].Line || !strings.Contains(got[i].Message, want[i].Message):
			t.Errorf("problem %d = %s\n\twant line %d: ...%s...", i, got[i], want[i].Line, want[i].Message)
		}
	}
}

func TestValidationProblemsHaveLines(t *testing.T) {
	sc := mustSchema(t, "testdata/xsd/order.xsd")

	d := mustParse(t, readFile(t, "testdata/xsd/order_valid.xml"))
	defer d.Free()
	if err := sc.Validate(d); err != nil {
		t.Fatalf("order_valid.xml: %v", err)
	}

	bad := mustParse(t, readFile(t, "testdata/xsd/order_invalid.xml"))
	defer bad.Free()
	checkProblems(t, sc.Validate(bad), "validate", golden(t, "testdata/xsd/order_invalid.golden"))

	_, err := Parse(readFile(t, "testdata/xsd/order_malformed.xml"))
	checkProblems(t, err, "parse", golden(t, "testdata/xsd/order_malformed.golden"))
}

// TestValidationProblemCap: past 32 problems the error says how many more there were.
func TestValidationProblemCap(t *testing.T) {
	sc := mustSchema(t, "testdata/xsd/order.xsd")
	var b bytes.Buffer
	b.WriteString("<order version=\"1\">\n<id>x</id>\n<qty>1</qty>\n<currency>EUR</currency>\n")
	for i := range 40 {
		fmt.Fprintf(&b, "<item sku=\"bad %d\">1</item>\n", i) // lines 5..44
	}
	b.WriteString("</order>\n")
	d := mustParse(t, b.Bytes())
	defer d.Free()
	ps := xmlError(t, sc.Validate(d), "validate").Problems
	if len(ps) != 33 || ps[32].Message != "and 8 more errors" {
		t.Fatalf("got %d problems, the last %v; want 32 and \"and 8 more errors\"", len(ps), ps[len(ps)-1])
	}
	for i, p := range ps[:32] {
		if p.Line != 5+i || !strings.Contains(p.Message, fmt.Sprintf("'bad %d'", i)) {
			t.Errorf("problem %d = %s, want line %d about 'bad %d'", i, p, 5+i, i)
		}
	}
}
