package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirhq/weir/examples/quickstart"
	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/format"
	"github.com/weirhq/weir/internal/ingest"
	"github.com/weirhq/weir/internal/state"
)

// openIngestStore opens an embedded log in dir with the quickstart's process topic and a state
// store on it.
func openIngestStore(b *testing.B, dir string) (*embedded.Log, *state.Store) {
	b.Helper()
	l, err := embedded.Open(embedded.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	for _, topic := range []string{"process", "fill"} {
		if err := l.EnsureTopic(context.Background(), buffer.TopicConfig{Name: topic, Partitions: 8, Groups: []string{topic}}); err != nil {
			b.Fatal(err)
		}
	}
	s, err := state.New(l)
	if err != nil {
		b.Fatal(err)
	}
	return l, s
}

// rememberIDs makes the store remember n ids of client demo's orders, as n accepted messages (in
// a topic of their own, away from the one the benchmark appends to), then compacts the whole
// database so that every benchmark starts from a settled store, as after a restart.
func rememberIDs(b *testing.B, s *state.Store, gen *generator, n int) {
	b.Helper()
	at := time.Now()
	var body []byte
	const batch = 5000
	for first := 1; first <= n; first += batch {
		last := min(first+batch-1, n)
		msgs := make([]buffer.Message, 0, batch)
		accepts := make([]state.Accept, 0, batch)
		for i := first; i <= last; i++ {
			body = gen.appendMessage(body[:0], uint64(i))
			id := "b-" + strconv.FormatInt(gen.seed, 10) + "-" + strconv.Itoa(i)
			msgs = append(msgs, buffer.Message{Key: []byte("cust-1"), Value: []byte(id)})
			accepts = append(accepts, state.Accept{Client: "demo", Type: "order", ID: id,
				Receipt: state.Receipt{BodyHash: sha256.Sum256(body), AcceptedAt: at}})
		}
		if err := s.Append(context.Background(), "fill", msgs, accepts); err != nil {
			b.Fatal(err)
		}
	}
}

// settle flushes and compacts the whole database, so that no background work left from filling
// it runs during the timing.
func settle(b *testing.B, l *embedded.Log) {
	b.Helper()
	if err := l.DB().Flush(); err != nil {
		b.Fatal(err)
	}
	if err := l.DB().Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
}

// newGateway is the quickstart's ingest gateway (client demo, type order with its schema) on s.
func newGateway(b *testing.B, s *state.Store) *ingest.Gateway {
	b.Helper()
	schemaDoc, err := quickstart.Files.ReadFile("order.schema.json")
	if err != nil {
		b.Fatal(err)
	}
	schema, err := format.CompileSchema("order", schemaDoc)
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
	return g
}

// BenchmarkIngestBatch is the gateway's work for NDJSON batches of 500 orders, as in
// `weir bench --self --hold --mode batch --batch 500 -c 4`: decoding, schema validation, dedup,
// envelopes and the fsync'd append with receipts, four requests at once, without net/http's
// connection handling. Reported per message (docs/performance.md).
//
//	go test -run '^$' -bench IngestBatch -benchtime 200x ./internal/bench
func BenchmarkIngestBatch(b *testing.B) {
	l, s := openIngestStore(b, b.TempDir())
	defer l.Close()
	g := newGateway(b, s)
	gen, err := newGenerator(referenceOrder, 3, 1000)
	if err != nil {
		b.Fatal(err)
	}
	const lines = 500
	bodies := make([][]byte, b.N) // made before the timing: the handler's work alone
	for i := range bodies {
		for j := range lines {
			bodies[i] = append(gen.appendMessage(bodies[i], uint64(i*lines+j+1)), '\n')
		}
	}
	var next atomic.Int64
	b.SetParallelism(2) // 4 requests in flight on two cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bodies[next.Add(1)-1]
			req, _ := http.NewRequest(http.MethodPost, "http://weir/v1/messages/order/batch", bytes.NewReader(body))
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

// BenchmarkIngestHandler is the ingest gateway's work for one message posted alone, as in
// `weir bench --self --hold`: authentication, decoding, JSON Schema validation (the quickstart's
// order schema), the dedup lookup, and the fsync'd append with its receipt (group commit across
// 64 concurrent requests), without net/http's connection handling or a load generator. New
// messages (a dedup miss) run with no id remembered and with a million; resends of remembered
// messages (a hit: answered from the receipt, nothing appended) with a million. cpu-ns/op is the
// process's CPU time (user + system, Pebble's background work included) per message.
//
//	go test -run '^$' -bench IngestHandler -benchtime 100000x ./internal/bench
func BenchmarkIngestHandler(b *testing.B) {
	old, err := newGenerator(referenceOrder, 1, 1000) // the remembered messages
	if err != nil {
		b.Fatal(err)
	}
	fresh, err := newGenerator(referenceOrder, 2, 1000) // new messages
	if err != nil {
		b.Fatal(err)
	}
	for _, remembered := range []int{0, 1_000_000} {
		dir := b.TempDir()
		l, s := openIngestStore(b, dir)
		rememberIDs(b, s, old, remembered)
		settle(b, l)
		l.Close()
		l, s = openIngestStore(b, dir)
		g := newGateway(b, s)
		var seq atomic.Uint64
		post := func(b *testing.B, gen *generator, number func() uint64, want int) {
			u0, s0, ok := ProcessCPU()
			b.SetParallelism(32) // 64 requests in flight on two cores, like weir bench -c 64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var body []byte
				for pb.Next() {
					body = gen.appendMessage(body[:0], number())
					req, _ := http.NewRequest(http.MethodPost, "http://weir/v1/messages/order", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.SetBasicAuth("demo", "demo-token")
					w := httptest.NewRecorder()
					g.ServeHTTP(w, req)
					if w.Code != want {
						b.Errorf("status %d, want %d: %s", w.Code, want, w.Body)
						return
					}
				}
			})
			b.StopTimer()
			if u1, s1, ok1 := ProcessCPU(); ok && ok1 {
				b.ReportMetric(float64(u1+s1-u0-s0)/float64(b.N), "cpu-ns/op")
			}
		}
		// A new message: the dedup lookup misses, the message and its receipt are appended.
		b.Run("new/ids="+strconv.Itoa(remembered), func(b *testing.B) {
			post(b, fresh, func() uint64 { return seq.Add(1) }, http.StatusAccepted)
		})
		if remembered > 0 {
			// A resend of a remembered message (same body): the lookup hits and nothing is
			// appended; the answer is the original receipt.
			var n atomic.Uint64
			b.Run("resend/ids="+strconv.Itoa(remembered), func(b *testing.B) {
				post(b, old, func() uint64 { return 1 + splitmix64(n.Add(1))%uint64(remembered) }, http.StatusOK)
			})
		}
		l.Close()
	}
}
