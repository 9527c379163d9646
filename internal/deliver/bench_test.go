package deliver_test

import (
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/weirhq/weir/internal/deliver"
)

// BenchmarkDeliver measures signed deliveries to a local partner that accepts everything, from
// many goroutines at once (like a pool of deliver workers), over pooled keep-alive connections.
// It reports deliveries/s; the partner runs in the same process, so the figure is the client's
// and the partner's cost together on this machine.
func BenchmarkDeliver(b *testing.B) {
	srv := newServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	c := newClient(b, deliver.Config{AllowPrivate: true})
	ep := &deliver.Endpoint{
		Name:    "bench",
		URL:     srv.URL + "/hook",
		Secrets: [][]byte{mustSecret(b, deliver.GenerateSecret())},
	}
	body := []byte(`{"id":"ord_123","customer":"c_42","amount":1999,"currency":"EUR","items":[{"sku":"A1","qty":2}]}`)
	var seq, failed atomic.Int64

	b.SetParallelism(16) // 16 × GOMAXPROCS workers
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := "msg_" + strconv.FormatInt(seq.Add(1), 10)
			if res := c.Deliver(b.Context(), ep, id, body); !res.Delivered() {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d deliveries failed", n)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
