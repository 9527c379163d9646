package format

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func quickstart(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../examples/quickstart/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSchemaListsEveryViolation(t *testing.T) {
	s, err := CompileSchema("order", quickstart(t, "order.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	good, err := Decode(quickstart(t, "order.json"))
	if err != nil {
		t.Fatal(err)
	}
	if v := s.Validate(good); v != nil {
		t.Fatalf("sample order invalid: %v", v)
	}
	bad, _ := Decode([]byte(`{"id":"x","customer":{"id":"c","email":"not-an-email"},"currency":"euro","items":[{"sku":"a","qty":0,"price":1}],"shipping":{}}`))
	v := s.Validate(bad)
	got := map[string]bool{}
	for _, x := range v {
		got[x.Pointer] = true
	}
	for _, want := range []string{"/customer/email", "/currency", "/items/0/qty", "/shipping"} {
		if !got[want] {
			t.Errorf("no violation at %s in %v", want, v)
		}
	}
}

func TestSchemaRefusesExternalRefs(t *testing.T) {
	if _, err := CompileSchema("x", []byte(`{"$ref":"http://127.0.0.1:1/other.json"}`)); err == nil {
		t.Fatal("external $ref compiled")
	}
}

func TestDecode(t *testing.T) {
	if _, err := Decode([]byte(`{"a":1} {"b":2}`)); err == nil {
		t.Error("trailing document accepted")
	}
	if _, err := Decode([]byte(strings.Repeat("[", 1_000_000))); err == nil {
		t.Error("nesting bomb accepted")
	}
	v, err := Decode([]byte(`{"n":12345678901234567890}`))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := LookupString(v, "/n"); s != "12345678901234567890" {
		t.Errorf("number not kept exact: %s", s)
	}
}

func TestLookup(t *testing.T) {
	v, _ := Decode([]byte(`{"a":{"b/c":[10,{"d~e":"x"}]},"t":true,"o":{}}`))
	cases := map[string]string{"/a/b~1c/0": "10", "/a/b~1c/1/d~0e": "x", "/t": "true"}
	for ptr, want := range cases {
		if got, ok := LookupString(v, ptr); !ok || got != want {
			t.Errorf("LookupString(%s) = %q, %v; want %q", ptr, got, ok, want)
		}
	}
	for _, ptr := range []string{"/o", "/missing", "/a/b~1c/9", "nope"} {
		if _, ok := LookupString(v, ptr); ok {
			t.Errorf("LookupString(%s) found a key", ptr)
		}
	}
}

func TestQuickstartTransform(t *testing.T) {
	q, err := CompileJQ(string(quickstart(t, "transform.jq")))
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := Decode(quickstart(t, "order.json"))
	out, err := q.Run(context.Background(), doc, Vars{ID: "ord-1", ReceivedAt: "2026-11-21T00:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Encode(out)
	var m struct {
		Currency string  `json:"currency"`
		Total    float64 `json:"total"`
		Count    int     `json:"item_count"`
		Ingested string  `json:"ingested_at"`
		Customer struct{ Email string }
		Shipping struct{ Country string }
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	// 2×12.5 + 1×99.99 + 5×3.2 = 140.99
	if m.Currency != "EUR" || m.Total != 140.99 || m.Count != 3 || m.Ingested != "2026-11-21T00:00:00Z" ||
		m.Customer.Email != "alice.example@example.com" || m.Shipping.Country != "US" {
		t.Fatalf("transform output: %s", b)
	}
}

func TestJQErrors(t *testing.T) {
	if _, err := CompileJQ(".a |||"); err == nil {
		t.Error("bad program compiled")
	}
	q, _ := CompileJQ(".[]")
	if _, err := q.Run(context.Background(), []any{1, 2}, Vars{}); err == nil {
		t.Error("two outputs accepted")
	}
	q, _ = CompileJQ("empty")
	if _, err := q.Run(context.Background(), 1, Vars{}); err != ErrNoOutput {
		t.Errorf("err = %v", err)
	}
	q, _ = CompileJQ(`error("boom")`)
	if _, err := q.Run(context.Background(), 1, Vars{}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("err = %v", err)
	}
}
