package sqlsink

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// eval resolves p in doc as decoded by decodeJSON: the obvious implementation, against which
// the scanner is checked.
func (p pointer) eval(doc any) (v any, ok bool) {
	v = doc
	for _, tok := range p {
		switch n := v.(type) {
		case map[string]any:
			if v, ok = n[tok]; !ok {
				return nil, false
			}
		case []any:
			i, ok := arrayIndex(tok)
			if !ok || i >= len(n) {
				return nil, false
			}
			v = n[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// arrayIndex parses an RFC 6901 array index: 0 or digits without a leading zero.
func arrayIndex(tok string) (int, bool) {
	if tok == "" || len(tok) > 1 && tok[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, false
		}
	}
	i, err := strconv.Atoi(tok)
	return i, err == nil
}

func TestPointer(t *testing.T) {
	// The examples of RFC 6901 §5.
	doc, err := decodeJSON([]byte(`{"foo":["bar","baz"],"":0,"a/b":1,"c%d":2,"e^f":3,"g|h":4,"i\\j":5,"k\"l":6," ":7,"m~n":8}`))
	if err != nil {
		t.Fatal(err)
	}
	for ptr, want := range map[string]any{
		"/foo":   []any{"bar", "baz"},
		"/foo/0": "bar",
		"/":      json.Number("0"),
		"/a~1b":  json.Number("1"),
		"/c%d":   json.Number("2"),
		"/e^f":   json.Number("3"),
		"/g|h":   json.Number("4"),
		"/i\\j":  json.Number("5"),
		"/k\"l":  json.Number("6"),
		"/ ":     json.Number("7"),
		"/m~0n":  json.Number("8"),
	} {
		p, err := parsePointer(ptr)
		if err != nil {
			t.Fatalf("%q: %v", ptr, err)
		}
		if got, ok := p.eval(doc); !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%q = %v, %v; want %v", ptr, got, ok, want)
		}
	}
	for _, ptr := range []string{"/foo/2", "/foo/-", "/foo/01", "/foo/x", "/nope", "/foo/0/deeper"} {
		p, _ := parsePointer(ptr)
		if v, ok := p.eval(doc); ok {
			t.Errorf("%q = %v, want missing", ptr, v)
		}
	}
	if p, _ := parsePointer(""); p != nil {
		t.Error(`"" is not the whole document`)
	}
	for _, bad := range []string{"foo", "/a~", "/a~2"} {
		if _, err := parsePointer(bad); err == nil {
			t.Errorf("parsePointer(%q) accepted", bad)
		}
	}
}

func TestConvert(t *testing.T) {
	num := func(s string) json.Number { return json.Number(s) }
	for _, tc := range []struct {
		in   any
		typ  ColumnType
		want any // nil with ok=false: an error
		ok   bool
	}{
		{nil, Integer, nil, true},
		{"x<&>", Text, "x<&>", true},
		{num("1.50"), Text, "1.50", true},
		{true, Text, "true", true},
		{map[string]any{"a": "<b>"}, Text, `{"a":"<b>"}`, true},
		{num("42"), Integer, int64(42), true},
		{num("-9223372036854775808"), Integer, int64(-9223372036854775808), true},
		{num("1e3"), Integer, int64(1000), true},
		{"17", Integer, int64(17), true},
		{num("1.5"), Integer, nil, false},
		{num("9223372036854775808"), Integer, nil, false},
		{"abc", Integer, nil, false},
		{"0x10", Integer, nil, false},
		{true, Integer, nil, false},
		{num("12.50"), Numeric, "12.50", true},
		{"-0.5e-3", Numeric, "-0.5e-3", true},
		{"NaN", Numeric, nil, false},
		{"Inf", Numeric, nil, false},
		{"01", Numeric, nil, false},
		{"1.", Numeric, nil, false},
		{true, Boolean, true, true},
		{"false", Boolean, false, true},
		{"yes", Boolean, nil, false},
		{num("1"), Boolean, nil, false},
		{"2026-01-01T13:00:00+01:00", Timestamp, time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), true},
		{"2026-01-01", Timestamp, nil, false},
		{num("1767268800"), Timestamp, nil, false},
		{[]any{num("1"), "a"}, JSON, `[1,"a"]`, true},
		{"s", JSON, `"s"`, true},
	} {
		got, err := convert(tc.in, tc.typ)
		if (err == nil) != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("convert(%#v, %s) = %#v, %v; want %#v, ok=%v", tc.in, tc.typ, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzExtract checks the one-pass scanner against decoding the whole payload and walking the
// pointers, and that whatever convert accepts is a value a backend can bind.
func FuzzExtract(f *testing.F) {
	f.Add([]byte(`{"a":{"b":[1,"2",true,null]}}`), "/a/b/1", "/a", "integer")
	f.Add([]byte(`{"m~n":"2026-01-01T00:00:00Z","a":{"b":1},"a":{"c":2}}`), "/m~0n", "/a/b", "timestamp")
	f.Add([]byte(` [ {"x\"y" : "\u00e9"} , [] ] `), "/0/x\"y", "", "text")
	f.Add([]byte(`{"":{"0":[{"k":-1.5e3}]}}`), "//0/0/k", "/", "numeric")
	f.Fuzz(func(t *testing.T, payload []byte, ptr1, ptr2, typ string) {
		p1, err1 := parsePointer(ptr1)
		p2, err2 := parsePointer(ptr2)
		if err1 != nil || err2 != nil || !json.Valid(payload) {
			return
		}
		doc, err := decodeJSON(payload)
		if err != nil {
			t.Fatalf("json.Valid accepted what decodeJSON refuses: %v", err)
		}
		spans := make([][]byte, 2)
		newTrie([]pointer{p1, p2}).extract(payload, spans)
		for i, p := range []pointer{p1, p2} {
			want, ok := p.eval(doc)
			if ok != (spans[i] != nil) {
				t.Fatalf("pointer %q: found=%v by eval, span %q", p, ok, spans[i])
			}
			if !ok {
				continue
			}
			got, err := decodeSpan(spans[i])
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("pointer %q: span %q decodes to %#v, %v; want %#v", p, spans[i], got, err, want)
			}
			out, err := convert(got, ColumnType(typ))
			if err != nil {
				continue
			}
			switch out.(type) {
			case nil, string, int64, bool, time.Time:
			default:
				t.Fatalf("convert returned %T", out)
			}
		}
	})
}
