package state

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
)

// benchStoreOpen opens the embedded log in dir with a topic for the benchmark's records, and a
// store on it.
func benchStoreOpen(b *testing.B, dir string) (*embedded.Log, *Store) {
	b.Helper()
	l, err := embedded.Open(embedded.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if err := l.EnsureTopic(context.Background(), buffer.TopicConfig{Name: "process", Partitions: 8}); err != nil {
		b.Fatal(err)
	}
	s, err := New(l)
	if err != nil {
		b.Fatal(err)
	}
	return l, s
}

// benchID is the n-th id of a run, shaped like weir bench's ("b-<seed>-<n>").
func benchID(seed, n int) string { return "b-" + strconv.Itoa(seed) + "-" + strconv.Itoa(n) }

// benchFill remembers ids 1..n of seed 1, the way ingest does: one record and one receipt per
// id, appended in big batches.
func benchFill(b *testing.B, s *Store, n int) {
	b.Helper()
	const batch = 5000
	hash := sha256.Sum256([]byte("body"))
	at := time.Now()
	for first := 1; first <= n; first += batch {
		last := min(first+batch-1, n)
		msgs := make([]buffer.Message, 0, last-first+1)
		accepts := make([]Accept, 0, last-first+1)
		for i := first; i <= last; i++ {
			id := benchID(1, i)
			msgs = append(msgs, buffer.Message{Key: []byte("cust-" + strconv.Itoa(i%1000)), Value: []byte(id)})
			accepts = append(accepts, Accept{Client: "demo", Type: "order", ID: id, Receipt: Receipt{BodyHash: hash, AcceptedAt: at}})
		}
		if err := s.Append(context.Background(), "process", msgs, accepts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceipt is the dedup lookup ingest makes for every message (Store.Receipt), with
// none or a million ids remembered. The store is filled, flushed, compacted and reopened before
// timing, so the receipts are in sstables as after a restart (reopening also times the filter's
// rebuild).
//
//	go test -run '^$' -bench Receipt -benchtime 2s ./internal/state
func BenchmarkReceipt(b *testing.B) {
	for _, remembered := range []int{0, 1_000_000} {
		dir := b.TempDir()
		l, s := benchStoreOpen(b, dir)
		benchFill(b, s, remembered)
		if err := l.DB().Flush(); err != nil {
			b.Fatal(err)
		}
		if err := l.DB().Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
			b.Fatal(err)
		}
		l.Close()
		start := time.Now()
		l, s = benchStoreOpen(b, dir)
		b.Logf("%d ids remembered: reopening the store (filter rebuilt from every dedup key) took %s", remembered, time.Since(start).Round(time.Millisecond))
		name := "ids=" + strconv.Itoa(remembered)
		// Ids are made before timing: ingest has the id in hand when it looks it up.
		const idMask = 1<<20 - 1
		fresh, old := make([]string, idMask+1), make([]string, idMask+1)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range fresh {
			fresh[i] = benchID(2, i)
			if remembered > 0 {
				old[i] = benchID(1, 1+rng.IntN(remembered))
			}
		}

		// A new id: the filter answers. Every message of weir bench is one.
		b.Run(name+"/miss", func(b *testing.B) {
			n, found := 0, 0
			for b.Loop() {
				n++
				_, ok, err := s.Receipt("demo", "order", fresh[n&idMask])
				if err != nil {
					b.Fatal(err)
				}
				if ok {
					found++
				}
			}
			if found > 0 {
				b.Fatalf("%d of %d new ids found", found, n)
			}
		})
		// A new id looked up in Pebble itself, as without the in-memory filter: what the filter saves.
		b.Run(name+"/miss-without-filter", func(b *testing.B) {
			n := 0
			for b.Loop() {
				n++
				if _, ok, err := s.space.Get(dedupKey("demo", "order", fresh[n&idMask])); err != nil || ok {
					b.Fatal("a new id was found", err)
				}
			}
		})
		if remembered == 0 {
			l.Close()
			continue
		}
		// A resend of a remembered id (random among the million): filter, then a Pebble Get.
		b.Run(name+"/hit", func(b *testing.B) {
			n := 0
			for b.Loop() {
				n++
				_, ok, err := s.Receipt("demo", "order", old[n&idMask])
				if err != nil || !ok {
					b.Fatalf("remembered id not found: %v", err)
				}
			}
		})
		// How often the filter says "maybe" for a new id with a million remembered.
		fp := 0
		const probes = 1_000_000
		for i := range probes {
			if s.seen.mayContain(dedupKey("demo", "order", benchID(3, i))) {
				fp++
			}
		}
		b.Logf("%d ids remembered: filter false positives %d of %d new ids", remembered, fp, probes)
		l.Close()
	}
}
