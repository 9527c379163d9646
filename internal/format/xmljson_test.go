package format

import "testing"

func TestXMLToJSON(t *testing.T) {
	cases := map[string]string{
		`<a>1</a>`: `{"a":"1"}`,
		`<po n="7"><item>x</item><item>y</item><c/></po>`: `{"po":{"@n":"7","c":"","item":["x","y"]}}`,
		`<p:a xmlns:p="urn:x"><p:b k="v">t</p:b></p:a>`:   `{"a":{"b":{"#text":"t","@k":"v"}}}`,
	}
	for in, want := range cases {
		got, err := XMLToJSON([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("XMLToJSON(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{``, `<a>`, `<a></b>`, `text`} {
		if _, err := XMLToJSON([]byte(bad)); err == nil {
			t.Errorf("XMLToJSON(%q) accepted", bad)
		}
	}
}

func FuzzXMLToJSON(f *testing.F) {
	for _, s := range []string{`<a>1</a>`, `<po n="7"><item>x</item><item>y</item></po>`, `<a><b/><b>t</b></a>`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := XMLToJSON(data)
		if err != nil {
			return
		}
		if _, err := Decode(out); err != nil {
			t.Fatalf("XMLToJSON(%q) = %s, not JSON: %v", data, out, err)
		}
	})
}
