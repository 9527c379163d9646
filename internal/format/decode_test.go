package format

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func stdDecode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, &SyntaxError{Msg: "trailing"}
	}
	return v, nil
}

func depthOf(b []byte) int {
	d, max := 0, 0
	in := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == '[' || c == '{'):
			d++
			max = maxInt(max, d)
		case !in && (c == ']' || c == '}'):
			d--
		}
	}
	return max
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

var decodeSeeds = []string{
	`{}`, `[]`, `null`, `true`, ` false `, `0`, `-0.5e+10`, `1E3`, `"a\"b\\c\/d\b\f\n\r\t"`,
	`"\u00e9\ud83d\ude00\ud800x"`, `{"a":[1,{"b":null}],"c":"d"}`, "\"caf\xc3\xa9\"", "\"bad\xff\"",
	`{"a":1,"a":2}`, `[1,]`, `{"a" 1}`, `01`, `1.`, `-`, `"\x"`, `"abc`, `[1 2]`, `{"a":1}x`, `tru`,
	"\"ctl\x01\"", `{"n":12345678901234567890123}`,
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, s := range decodeSeeds {
		checkDecode(t, []byte(s))
	}
	if _, err := Decode([]byte(strings.Repeat("[", 100_000))); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("nesting bomb: %v", err)
	}
	if _, err := Decode([]byte(`{"a":1} {"b":2}`)); err == nil {
		t.Fatal("second document accepted")
	}
}

func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	want, werr := stdDecode(b)
	got, gerr := Decode(b)
	if depthOf(b) > MaxDepth {
		return
	}
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: encoding/json err %v, Decode err %v", b, werr, gerr)
	}
	if werr == nil && !reflect.DeepEqual(want, got) {
		t.Fatalf("%q: encoding/json %#v, Decode %#v", b, want, got)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecode(t, b) })
}
