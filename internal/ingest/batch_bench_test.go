package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/weirhq/weir/examples/quickstart"
	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/format"
	"github.com/weirhq/weir/internal/ingest"
	"github.com/weirhq/weir/internal/state"
)

// BenchmarkBatch is the gateway's work for NDJSON batches of 500 orders (the quickstart's schema
// and type), as in `weir bench --self --hold --mode batch --batch 500 -c 4`: decoding, schema
// validation, dedup, envelopes and the fsync'd append with receipts, four requests at once,
// without net/http's connection handling. Reported per message.
//
//	go test -run '^$' -bench Batch -benchtime 200x ./internal/ingest
func BenchmarkBatch(b *testing.B) {
	schemaDoc, err := quickstart.Files.ReadFile("order.schema.json")
	if err != nil {
		b.Fatal(err)
	}
	schema, err := format.CompileSchema("order", schemaDoc)
	if err != nil {
		b.Fatal(err)
	}
	l, err := embedded.Open(embedded.Config{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if err := l.EnsureTopic(context.Background(), buffer.TopicConfig{Name: "process", Partitions: 8}); err != nil {
		b.Fatal(err)
	}
	s, err := state.New(l)
	if err != nil {
		b.Fatal(err)
	}
	g, err := ingest.New(ingest.Config{Topic: "process", Logger: slog.New(slog.DiscardHandler), MaxBody: 64 << 20,
		Clients: []ingest.Client{{ID: "demo", TokenHash: sha256.Sum256([]byte("demo-token")), Types: map[string]bool{"order": true}}},
		Types: []ingest.Type{{Name: "order", Schema: schema, KeyPointer: "/customer/id", IDPointer: "/id",
			Expect: []string{"persist", "deliver:demo-partner"}}}}, s)
	if err != nil {
		b.Fatal(err)
	}
	const lines = 500
	bodies := make(chan []byte, 8)
	go func() {
		for n := 0; ; n++ {
			var buf bytes.Buffer
			for i := range lines {
				fmt.Fprintf(&buf, `{"id":"o-%d-%d","customer":{"id":"c-%d","email":"buyer%d@example.com"},"currency":"eur","items":[{"sku":"SKU-%03d","qty":2,"price":19.99},{"sku":"SKU-%03d","qty":1,"price":5.5}],"shipping":{"country":"de","city":"Berlin","street":"Unter den Linden 1"}}`+"\n",
					n, i, i%1000, i, i%997, i%991)
			}
			select {
			case bodies <- buf.Bytes():
			case <-b.Context().Done():
				return
			}
		}
	}()
	b.SetParallelism(2) // 4 requests in flight on two cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, "http://weir/v1/messages/order/batch", bytes.NewReader(<-bodies))
			req.Header.Set("Content-Type", "application/x-ndjson")
			req.SetBasicAuth("demo", "demo-token")
			w := httptest.NewRecorder()
			g.ServeHTTP(w, req)
			if w.Code != http.StatusAccepted {
				b.Errorf("status %d: %.300s", w.Code, w.Body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*lines)/b.Elapsed().Seconds(), "msg/s")
}
