//go:build cgo

package libxml

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// weir:json-string writes any text as a JSON string that decodes back to the same text.
func TestJSONStringFunction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "js.xsl")
	os.WriteFile(path, []byte(`<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:weir="https://weir.dev/xslt" exclude-result-prefixes="weir">
  <xsl:output method="text"/>
  <xsl:template match="/">{"v":<xsl:value-of select="weir:json-string(/a)"/>}</xsl:template>
</xsl:stylesheet>`), 0o600)
	st, err := CompileStylesheet(path, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"", "plain", `quote " backslash \ slash /`, "tab\tcr\rlf\n", "ünïcødé € 𝄞", "&lt;&amp;"} {
		d, err := Parse([]byte("<a>" + xmlEscape(text) + "</a>"))
		if err != nil {
			t.Fatal(err)
		}
		out, err := st.Transform(d)
		d.Free()
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ V string }
		if err := json.Unmarshal(out, &got); err != nil || got.V != text {
			t.Errorf("%q: output %s decodes to %q, %v", text, out, got.V, err)
		}
	}
}

func xmlEscape(s string) string {
	var b []byte
	for _, r := range s {
		switch r {
		case '<':
			b = append(b, "&lt;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '\r':
			b = append(b, "&#13;"...)
		default:
			b = append(b, string(r)...)
		}
	}
	return string(b)
}
