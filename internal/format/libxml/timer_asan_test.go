//go:build cgo && asan

package libxml

import (
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestTimerAfterTransform reproduces a use after free, visible only under AddressSanitizer
// (go test -asan -run TimerAfterTransform): weir_transform frees the transform context before
// Transform marks it done, so a timer that fires in between calls weir_stop on freed memory.
// A busy goroutine on a single P delays the return from cgo and widens that window from
// microseconds to a scheduler time slice.
func TestTimerAfterTransform(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.xsl")
	must(t, os.WriteFile(p, []byte(`<xsl:stylesheet version="1.0"
	    xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:str="http://exslt.org/strings">
	  <xsl:variable name="n" select="str:tokenize(str:padding(200, 'a'), '')"/>
	  <xsl:template match="/"><out><xsl:for-each select="$n"><xsl:for-each select="$n">
	    <xsl:if test="false()">x</xsl:if></xsl:for-each></xsl:for-each></out></xsl:template>
	</xsl:stylesheet>`), 0o644))
	d := mustParse(t, []byte(`<r/>`))
	defer d.Free()
	start := time.Now()
	mustStylesheet(t, p, Limits{}).Transform(d)
	dur := time.Since(start)

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var stop atomic.Bool
	defer stop.Store(true)
	go func() {
		for !stop.Load() {
		}
	}()
	for i := range 200 {
		// Timeouts from just under to well over the transform's duration.
		st := mustStylesheet(t, p, Limits{Timeout: dur + time.Duration(i%20)*dur/20})
		st.Transform(d)
	}
}
