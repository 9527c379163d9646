//go:build cgo

package libxml

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// addSeeds adds every XML document, stylesheet and schema under testdata, and a few generated
// documents, to the seed corpus.
func addSeeds(f *testing.F) {
	for _, pattern := range []string{"testdata/*/*.xml", "testdata/*/*.xsl", "testdata/*/*.xsd", "testdata/*/inc/*"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add(utf16LE(string(readHostile("xxe_file.xml"))))
	f.Add(nested(255))
	f.Add(nested(257))
	f.Add(orderDoc(0, "m-g0-i0"))
	f.Add(orderDoc(2, "m-g0-i0"))
	f.Add([]byte(`<a xmlns="urn:a" xmlns:p="urn:p" p:x="1"><![CDATA[c]]><!--c--><?pi d?><b xmlns="">&amp;&#x10FFFF;</b></a>`))
}

func isXMLError(err error, op string) bool {
	var e *Error
	return errors.As(err, &e) && e.Op == op && len(e.Problems) > 0
}

// FuzzParse: any bytes parse or fail with an *Error; a parsed document answers XPath and frees.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			if !isXMLError(err, "parse") {
				t.Fatalf("Parse error %#v is not a parse *Error with problems", err)
			}
			return
		}
		if _, err := d.XPathString("/*", 0); err != nil {
			t.Errorf("XPathString(/*): %v", err)
		}
		d.Free()
		d.Free() // twice is harmless
	})
}

// FuzzTransform: an identity-like stylesheet over any parsed document succeeds and its output
// parses again.
func FuzzTransform(f *testing.F) {
	addSeeds(f)
	st, err := CompileStylesheet("testdata/xslt/fuzz.xsl", Limits{Timeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		defer d.Free()
		out, err := st.Transform(d)
		if err != nil {
			if !isXMLError(err, "transform") {
				t.Fatalf("Transform error %#v is not a transform *Error with problems", err)
			}
			t.Fatalf("identity transform failed: %v", err)
		}
		d2, err := Parse(out)
		if err != nil {
			t.Fatalf("the output does not parse: %v\n%q", err, out)
		}
		d2.Free()
	})
}
