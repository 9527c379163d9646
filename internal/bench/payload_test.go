package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
)

func decodeObject(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("message is not a JSON object: %v\n%s", err, b)
	}
	return m
}

func TestDefaultPayloadIsTheReferenceOrder(t *testing.T) {
	p := DefaultPayload()
	if len(p) != 512 {
		t.Fatalf("reference order is %d bytes, want 512", len(p))
	}
	p[0] = 'x' // a copy: callers cannot damage the template
	if referenceOrder[0] != '{' {
		t.Fatal("DefaultPayload returned the embedded bytes, not a copy")
	}
}

func TestGeneratorSplicesIDAndKeyOnly(t *testing.T) {
	g, err := newGenerator(referenceOrder, 42, 1000)
	if err != nil {
		t.Fatal(err)
	}
	msg := g.appendMessage(nil, 7)
	if bytes.IndexByte(msg, '\n') >= 0 {
		t.Fatal("message contains a newline: not an NDJSON line")
	}
	got := decodeObject(t, msg)
	want := decodeObject(t, referenceOrder)
	want["id"] = "b-42-7"
	cust := maps.Clone(want["customer"].(map[string]any))
	cust["id"] = got["customer"].(map[string]any)["id"]
	want["customer"] = cust
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("message differs from the template beyond id and customer.id:\n got %v\nwant %v", got, want)
	}
	key, _ := cust["id"].(string)
	if !strings.HasPrefix(key, "cust-") {
		t.Fatalf("customer.id = %q, want cust-<n>", key)
	}
	// Same seed and number, same message: a run is reproducible.
	if again := g.appendMessage(nil, 7); !bytes.Equal(again, msg) {
		t.Fatalf("not deterministic:\n%s\n%s", msg, again)
	}
}

func TestGeneratorKeysSpread(t *testing.T) {
	g, err := newGenerator(referenceOrder, 3, 50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]int{}
	for n := uint64(1); n <= 5000; n++ {
		k := g.key(n)
		if k >= 50 {
			t.Fatalf("key %d out of range", k)
		}
		seen[k]++
	}
	if len(seen) != 50 {
		t.Fatalf("%d of 50 keys drawn in 5000 messages", len(seen))
	}
}

func TestGeneratorTemplates(t *testing.T) {
	tests := []struct {
		name, template string
		want           string // message 5 with seed 1 and a single key
		wantErr        bool
	}{
		{name: "no id gets one", template: `{"a": 1}`, want: `{"id":"b-1-5","a":1}`},
		{name: "empty object", template: `{}`, want: `{"id":"b-1-5"}`},
		{name: "numeric key stays a number", template: `{"customer":{"id":17},"id":9}`, want: `{"customer":{"id":0},"id":"b-1-5"}`},
		{name: "ids inside arrays are left alone", template: `{"items":[{"id":"x"}],"id":"y"}`, want: `{"items":[{"id":"x"}],"id":"b-1-5"}`},
		{name: "escaped strings", template: `{"id":"a\"b","note":"\u00e9\n"}`, want: `{"id":"b-1-5","note":"\u00e9\n"}`},
		{name: "not an object", template: `[1,2]`, wantErr: true},
		{name: "not JSON", template: `{"id":`, wantErr: true},
		{name: "id is an object", template: `{"id":{"x":1}}`, wantErr: true},
		{name: "duplicate id", template: `{"id":1,"id":2}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := newGenerator([]byte(tt.template), 1, 1)
			if tt.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(g.appendMessage(nil, 5)); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func FuzzGenerator(f *testing.F) {
	f.Add(referenceOrder)
	f.Add([]byte(`{"customer":{"id":1},"items":[{"id":2}],"x":{"id":[]}}`))
	f.Add([]byte(`{"id":null,"customer":"c"}`))
	f.Fuzz(func(t *testing.T, template []byte) {
		g, err := newGenerator(template, 1, 10)
		if err != nil {
			return
		}
		msg := g.appendMessage(nil, 5)
		m := decodeObject(t, msg)
		if m["id"] != "b-1-5" {
			t.Fatalf("id = %v in %s", m["id"], msg)
		}
		if bytes.IndexByte(msg, '\n') >= 0 {
			t.Fatalf("newline in %q", msg)
		}
	})
}

func BenchmarkAppendMessage(b *testing.B) {
	g, err := newGenerator(referenceOrder, 1, 1000)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = g.appendMessage(buf[:0], uint64(i))
	}
	b.SetBytes(int64(len(buf)))
}

func TestXMLTemplate(t *testing.T) {
	g, err := newGenerator([]byte(`<po number="{{id}}"><customer>{{key}}</customer></po>`), 7, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := string(g.appendMessage(nil, 3))
	want := fmt.Sprintf(`<po number="B-7-3"><customer>cust-%d</customer></po>`, g.key(3))
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	for _, bad := range []string{`<po/>`, `<po a="{{id}}" b="{{id}}"/>`, `<po a="{{id}}">{{key}}{{key}}</po>`} {
		if _, err := newGenerator([]byte(bad), 1, 1); err == nil {
			t.Errorf("template %s accepted", bad)
		}
	}
}
