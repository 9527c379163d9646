package format

import (
	"context"
	"os"
	"testing"
)

func benchDoc(b *testing.B) ([]byte, *Schema, *JQ) {
	doc, err := os.ReadFile("../../examples/quickstart/order.json")
	if err != nil {
		b.Fatal(err)
	}
	sch, _ := os.ReadFile("../../examples/quickstart/order.schema.json")
	s, err := CompileSchema("order", sch)
	if err != nil {
		b.Fatal(err)
	}
	src, _ := os.ReadFile("../../examples/quickstart/transform.jq")
	q, err := CompileJQ(string(src))
	if err != nil {
		b.Fatal(err)
	}
	return doc, s, q
}

// BenchmarkIngestPath is the per-message CPU of ingest: decode once, validate, extract id and key.
func BenchmarkIngestPath(b *testing.B) {
	doc, s, _ := benchDoc(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		v, err := Decode(doc)
		if err != nil {
			b.Fatal(err)
		}
		if vs := s.Validate(v); vs != nil {
			b.Fatal(vs)
		}
		LookupString(v, "/id")
		LookupString(v, "/customer/id")
	}
}

func BenchmarkDecode(b *testing.B) {
	doc, _, _ := benchDoc(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	doc, s, _ := benchDoc(b)
	v, _ := Decode(doc)
	b.ReportAllocs()
	for b.Loop() {
		s.Validate(v)
	}
}

// BenchmarkProcessPath is the process stage's per-message CPU: decode, jq, encode.
func BenchmarkProcessPath(b *testing.B) {
	doc, _, q := benchDoc(b)
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		v, _ := Decode(doc)
		out, err := q.Run(ctx, v, Vars{ID: "x", ReceivedAt: "2026-01-01T00:00:00Z"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Encode(out); err != nil {
			b.Fatal(err)
		}
	}
}
