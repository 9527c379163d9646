//go:build cgo

package libxml

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// TestNothingOnStderr: libxml2 and libxslt print nothing for bad input, from any thread; every
// message ends up in the call's error.
func TestNothingOnStderr(t *testing.T) {
	s := newSandbox(t)
	sc := mustSchema(t, "testdata/xsd/order.xsd")
	checked := mustStylesheet(t, "testdata/xslt/checked.xsl", Limits{})
	var sheets []*Stylesheet
	for _, name := range []string{"document_file.xsl", "document_http.xsl", "write_exsl.xsl", "recursion.xsl", "identity.xsl"} {
		sheets = append(sheets, mustStylesheet(t, filepath.Join(s.sheets, name), Limits{MaxOutput: 10}))
	}
	noisy := filepath.Join(s.sheets, "noisy.xsl")
	must(t, os.WriteFile(noisy, []byte(`<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
	  <xsl:template match="/"><xsl:message>a message</xsl:message><xsl:value-of select="1 div 0"/><out/></xsl:template>
	</xsl:stylesheet>`), 0o644))
	sheets = append(sheets, mustStylesheet(t, noisy, Limits{}))
	var hostile [][]byte
	for _, tc := range hostileDocs {
		if tc.gen == nil {
			hostile = append(hostile, s.render(readHostile(tc.name)))
		}
	}
	hostile = append(hostile, nested(1000), []byte("<a>\x00</a>"), []byte("<a b='1' b='2'/>"),
		[]byte("<p:a/>"), []byte("<?xml version='1.0' encoding='bogus'?><a/>"), []byte("\xff\xfe<\x00"),
		[]byte("<a>&#0;</a>"), []byte("<a>&nope;</a>"), []byte("<a></b>"), []byte("text"))

	badCalls := func() {
		for _, data := range hostile {
			if d, err := Parse(data); err == nil {
				d.Free()
			}
		}
		for i := range 8 {
			cycle(sc, checked, i%4, "m-g0-i0")
		}
		d, err := Parse([]byte(`<r><a/></r>`))
		if err != nil {
			t.Error(err)
			return
		}
		defer d.Free()
		for _, st := range sheets {
			st.Transform(d)
		}
		sc.Validate(d)
		d.XPathString("///", 0)
		d.XPathString("count(//a[count(//a[count(//a) > 0]) > 0])", 1)
		d.XPathString("unknown-function()", 0)
		CheckXPath("a[")
		CheckXPath("$undefined + ")
		for _, name := range []string{"include_outside.xsl", "doctype.xsl", "doctype_bomb.xsl", "include_outside.xsd",
			"import_http.xsd", "doctype.xsd", "doctype_bomb.xsd", "missing.xsl", "missing.xsd"} {
			CompileStylesheet(filepath.Join(s.sheets, name), Limits{})
			CompileSchema(filepath.Join(s.sheets, name))
		}
	}

	got := captureStderr(t, func() {
		badCalls()
		var wg sync.WaitGroup // and from other threads
		for range 8 {
			wg.Go(badCalls)
		}
		wg.Wait()
	})
	if len(got) > 0 {
		t.Errorf("%d bytes written to stderr:\n%.2000s", len(got), got)
	}
}

// captureStderr runs f with file descriptor 2 redirected to a pipe and returns what was written.
func captureStderr(t *testing.T, f func()) []byte {
	t.Helper()
	r, w, err := os.Pipe()
	must(t, err)
	saved, err := syscall.Dup(2)
	must(t, err)
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		io.Copy(&buf, r)
		close(done)
	}()
	must(t, syscall.Dup2(int(w.Fd()), 2))
	func() {
		defer func() {
			syscall.Dup2(saved, 2)
			syscall.Close(saved)
			w.Close()
		}()
		f()
	}()
	<-done
	r.Close()
	return buf.Bytes()
}
