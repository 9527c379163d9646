package embedded_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
)

const benchPartitions = 8

var benchValue = bytes.Repeat([]byte("x"), 500)

func benchLog(b *testing.B) *embedded.Log {
	b.Helper()
	l := openLog(b, embedded.Config{Dir: b.TempDir()})
	if err := l.EnsureTopic(context.Background(), buffer.TopicConfig{Name: "bench", Partitions: benchPartitions}); err != nil {
		b.Fatal(err)
	}
	return l
}

func reportRecords(b *testing.B, records int64) {
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	b.SetBytes(int64(len(benchValue)))
}

// BenchmarkAppend measures fsync'd appends of 500 B records to an 8-partition topic on disk: one
// record per Append from many goroutines (group commit shares the fsyncs), and batches of 100.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	for _, goroutines := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("1PerCall/goroutines=%d", goroutines), func(b *testing.B) {
			l := benchLog(b)
			var id atomic.Int64
			b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				g := id.Add(1)
				msg := []buffer.Message{{Value: benchValue}}
				i := 0
				for pb.Next() {
					msg[0].Key = strconv.AppendInt(msg[0].Key[:0], g*1_000_000+int64(i), 10)
					if err := l.Append(ctx, "bench", msg); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			reportRecords(b, int64(b.N))
		})
	}
	for _, goroutines := range []int{1, 8} {
		b.Run(fmt.Sprintf("100PerCall/goroutines=%d", goroutines), func(b *testing.B) {
			l := benchLog(b)
			b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				msgs := make([]buffer.Message, 100)
				for i := range msgs {
					msgs[i] = buffer.Message{Key: []byte("customer-" + strconv.Itoa(i)), Value: benchValue}
				}
				for pb.Next() {
					if err := l.Append(ctx, "bench", msgs); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportRecords(b, int64(b.N)*100)
		})
	}
}

// BenchmarkFetch measures a consumer reading records that are already durable.
func BenchmarkFetch(b *testing.B) {
	ctx := context.Background()
	l := benchLog(b)
	msgs := make([]buffer.Message, 1000)
	for i := range msgs {
		msgs[i] = buffer.Message{Key: []byte("customer-" + strconv.Itoa(i)), Value: benchValue}
	}
	total := 0
	for total < 200_000 {
		if err := l.Append(ctx, "bench", msgs); err != nil {
			b.Fatal(err)
		}
		total += len(msgs)
	}
	b.SetBytes(500 * int64(len(benchValue)))
	b.ReportAllocs()
	b.ResetTimer()
	read, groups, fetched := 0, 0, 0
	var c buffer.Consumer
	for b.Loop() {
		if c == nil || read+500 > total {
			if c != nil {
				_ = c.Close()
			}
			groups++
			var err error
			if c, err = l.Consume(ctx, "bench", "g"+strconv.Itoa(groups)); err != nil {
				b.Fatal(err)
			}
			read = 0
		}
		recs, err := c.Fetch(ctx, 500)
		if err != nil {
			b.Fatal(err)
		}
		read += len(recs)
		fetched += len(recs)
	}
	b.ReportMetric(float64(fetched)/b.Elapsed().Seconds(), "records/s")
	_ = c.Close()
}

// BenchmarkPebbleBaseline is the bare ceiling to compare BenchmarkAppend with in the same run:
// 64 goroutines each committing one 500 B record straight to Pebble with Sync, sharing fsyncs
// through Pebble's own commit pipeline (the figure DESIGN.md §4 quotes).
func BenchmarkPebbleBaseline(b *testing.B) {
	db, err := pebble.Open(b.TempDir(), &pebble.Options{
		MemTableSize:       64 << 20,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             quietPebbleLogger{},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	var seq atomic.Uint64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := make([]byte, 8)
		for pb.Next() {
			binary.BigEndian.PutUint64(key, seq.Add(1))
			if err := db.Set(key, benchValue, pebble.Sync); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRecords(b, int64(b.N))
}

type quietPebbleLogger struct{}

func (quietPebbleLogger) Infof(string, ...any)           {}
func (quietPebbleLogger) Errorf(string, ...any)          {}
func (quietPebbleLogger) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
