package embedded_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/buffertest"
	"github.com/weirhq/weir/internal/buffer/embedded"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func openLog(t testing.TB, cfg embedded.Config) *embedded.Log {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.CleanupInterval == 0 {
		cfg.CleanupInterval = -1 // tests call Cleanup themselves
	}
	l, err := embedded.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, buffer.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// diskHarness runs the log on a temporary directory of the real filesystem.
type diskHarness struct{ dir string }

func (h *diskHarness) Open(t *testing.T) buffer.Buffer {
	return openLog(t, embedded.Config{Dir: h.dir})
}

func (h *diskHarness) Reopen(t *testing.T, b buffer.Buffer) buffer.Buffer {
	if err := b.Close(); err != nil {
		t.Fatalf("Close before reopen: %v", err)
	}
	return h.Open(t)
}

// memHarness runs the log on Pebble's crashable in-memory filesystem. Crash keeps
// unsyncedPercent of the writes that were not synced, at random.
type memHarness struct {
	fs              *vfs.MemFS
	unsyncedPercent int
	rng             *rand.Rand
}

func newMemHarness(unsyncedPercent int) *memHarness {
	return &memHarness{
		fs:              vfs.NewCrashableMem(),
		unsyncedPercent: unsyncedPercent,
		rng:             rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)),
	}
}

func (h *memHarness) Open(t *testing.T) buffer.Buffer {
	return openLog(t, embedded.Config{Dir: "/weir", FS: h.fs})
}

func (h *memHarness) Reopen(t *testing.T, b buffer.Buffer) buffer.Buffer {
	if err := b.Close(); err != nil {
		t.Fatalf("Close before reopen: %v", err)
	}
	return h.Open(t)
}

func (h *memHarness) Crash(t *testing.T, b buffer.Buffer) buffer.Buffer {
	crashed := h.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: h.unsyncedPercent, RNG: h.rng})
	// The old instance goes on writing to the old filesystem until closed; the clone is frozen.
	_ = b.Close()
	h.fs = crashed
	return h.Open(t)
}

func TestConformance(t *testing.T) {
	t.Run("Disk", func(t *testing.T) {
		buffertest.Run(t, func(t *testing.T) buffertest.Harness { return &diskHarness{dir: t.TempDir()} })
	})
	t.Run("CrashableMem", func(t *testing.T) {
		buffertest.Run(t, func(t *testing.T) buffertest.Harness { return newMemHarness(0) })
	})
	t.Run("CrashableMemPartialUnsynced", func(t *testing.T) {
		buffertest.Run(t, func(t *testing.T) buffertest.Harness { return newMemHarness(50) })
	})
}

func ensure(t *testing.T, l *embedded.Log, topic string, partitions int, groups ...string) {
	t.Helper()
	if err := l.EnsureTopic(t.Context(), buffer.TopicConfig{Name: topic, Partitions: partitions, Groups: groups}); err != nil {
		t.Fatalf("EnsureTopic: %v", err)
	}
}

func appendN(t *testing.T, l *embedded.Log, topic string, keys []string, n int) {
	t.Helper()
	for i := range n {
		k := keys[i%len(keys)]
		if err := l.Append(t.Context(), topic, []buffer.Message{{Key: []byte(k), Value: []byte(k + "-" + strconv.Itoa(i))}}); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
}

// keyFor returns a key that maps to partition p of n.
func keyFor(p, n int) string {
	for i := 0; ; i++ {
		k := "key" + strconv.Itoa(i)
		if buffer.Partition([]byte(k), n) == p {
			return k
		}
	}
}

func fetch(t *testing.T, c buffer.Consumer, limit int) ([]buffer.Record, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return c.Fetch(ctx, limit)
}

func consume(t *testing.T, l *embedded.Log, topic, group string) buffer.Consumer {
	t.Helper()
	c, err := l.Consume(t.Context(), topic, group)
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// recordKeys returns the stored keys of a topic's records, in order.
func recordKeys(t *testing.T, db *pebble.DB, topic string) [][]byte {
	t.Helper()
	prefix := []byte(embedded.PrefixRecords + topic + "/")
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: append(bytes.Clone(prefix[:len(prefix)-1]), '/'+1)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var keys [][]byte
	for valid := it.First(); valid; valid = it.Next() {
		keys = append(keys, bytes.Clone(it.Key()))
	}
	return keys
}

func TestCorruptValueIsReported(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(key, value []byte) []byte
	}{
		{"FlippedValueBit", func(_, v []byte) []byte { v[len(v)-1] ^= 0x10; return v }},
		{"FlippedChecksum", func(_, v []byte) []byte { v[0] ^= 0x01; return v }},
		{"Truncated", func(_, v []byte) []byte { return v[:2] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openLog(t, embedded.Config{Dir: t.TempDir()})
			ensure(t, l, "orders", 1)
			appendN(t, l, "orders", []string{"a"}, 3)
			keys := recordKeys(t, l.DB(), "orders")
			if len(keys) != 3 {
				t.Fatalf("%d stored records, want 3", len(keys))
			}
			v, closer, err := l.DB().Get(keys[1])
			if err != nil {
				t.Fatal(err)
			}
			damaged := tc.damage(keys[1], bytes.Clone(v))
			_ = closer.Close()
			b := l.DB().NewBatch()
			if err := b.Set(keys[1], damaged, nil); err != nil {
				t.Fatal(err)
			}
			if err := l.Apply(b, true); err != nil {
				t.Fatal(err)
			}
			c := consume(t, l, "orders", "g")
			for range 2 { // reported every time, never skipped
				recs, err := fetch(t, c, 10)
				if !errors.Is(err, buffer.ErrCorrupt) {
					t.Fatalf("Fetch over a damaged record: %d records, %v; want ErrCorrupt", len(recs), err)
				}
			}
			// Records before the damage are readable one at a time; the damaged one stops the rest.
			c2 := consume(t, l, "orders", "g2")
			recs, err := fetch(t, c2, 1)
			if err != nil || len(recs) != 1 || recs[0].Offset != 0 {
				t.Fatalf("first record: %v, %v", recs, err)
			}
			if _, err := fetch(t, c2, 1); !errors.Is(err, buffer.ErrCorrupt) {
				t.Fatalf("second record: %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestValueUnderWrongKeyIsReported(t *testing.T) {
	l := openLog(t, embedded.Config{Dir: t.TempDir()})
	ensure(t, l, "orders", 1)
	appendN(t, l, "orders", []string{"a"}, 3)
	keys := recordKeys(t, l.DB(), "orders")
	v0, closer, err := l.DB().Get(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	v0 = bytes.Clone(v0)
	_ = closer.Close()
	b := l.DB().NewBatch()
	_ = b.Set(keys[2], v0, nil) // a valid value, at the wrong offset
	if err := l.Apply(b, true); err != nil {
		t.Fatal(err)
	}
	c := consume(t, l, "orders", "g")
	if _, err := fetch(t, c, 10); !errors.Is(err, buffer.ErrCorrupt) {
		t.Fatalf("Fetch: %v, want ErrCorrupt", err)
	}
}

func TestMissingRecordIsReported(t *testing.T) {
	l := openLog(t, embedded.Config{Dir: t.TempDir()})
	ensure(t, l, "orders", 1)
	appendN(t, l, "orders", []string{"a"}, 5)
	keys := recordKeys(t, l.DB(), "orders")
	b := l.DB().NewBatch()
	_ = b.Delete(keys[2], nil)
	if err := l.Apply(b, true); err != nil {
		t.Fatal(err)
	}
	c := consume(t, l, "orders", "g")
	if recs, err := fetch(t, c, 10); !errors.Is(err, buffer.ErrCorrupt) {
		t.Fatalf("Fetch over a gap: %d records, %v; want ErrCorrupt", len(recs), err)
	}
}

// syncFault injects errors into WAL syncs or writes while on.
type syncFault struct {
	on   errorfs.Toggle
	kind string
}

func (f *syncFault) injector() errorfs.Injector {
	return errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !strings.HasSuffix(op.Path, ".log") {
			return nil
		}
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if f.kind == "sync" {
				return f.on.MaybeError(op)
			}
		case errorfs.OpFileWrite, errorfs.OpFileWriteAt:
			if f.kind == "write" {
				return f.on.MaybeError(op)
			}
		}
		return nil
	})
}

// TestCommitFailurePoisons checks R5: after a failed WAL fsync (or a failed write, as on a full
// disk) no append is acknowledged again until the log is reopened, reads of acknowledged records
// go on, and a reopen recovers them.
func TestCommitFailurePoisons(t *testing.T) {
	for _, kind := range []string{"sync", "write"} {
		t.Run(kind, func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			fault := &syncFault{kind: kind}
			fault.on.Injector = errorfs.ErrInjected
			if kind == "write" {
				fault.on.Injector = errorfs.InjectorFunc(func(errorfs.Op) error { return syscall.ENOSPC })
			}
			fs := errorfs.Wrap(mem, fault.injector())
			l, err := embedded.Open(embedded.Config{Dir: "/weir", FS: fs, Logger: testLogger(t), CleanupInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			t.Cleanup(func() {
				if !closed {
					_ = l.Close()
				}
			})
			ensure(t, l, "orders", 2, "g")
			msg := []buffer.Message{{Key: []byte("k"), Value: []byte("acked")}}
			if err := l.Append(t.Context(), "orders", msg); err != nil {
				t.Fatal(err)
			}
			c := consume(t, l, "orders", "g")

			fault.on.On()
			err = l.Append(t.Context(), "orders", []buffer.Message{{Key: []byte("k"), Value: []byte("failed")}})
			if !errors.Is(err, buffer.ErrUnavailable) {
				t.Fatalf("Append with a failing %s: %v, want ErrUnavailable", kind, err)
			}
			if kind == "write" && !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("Append on a full disk: %v, want it to wrap ENOSPC", err)
			}
			fault.on.Off()
			if err := l.Append(t.Context(), "orders", msg); !errors.Is(err, buffer.ErrUnavailable) {
				t.Fatalf("Append after the failure: %v, want ErrUnavailable (poisoned)", err)
			}
			if l.Err() == nil {
				t.Fatal("Err() is nil after a failed commit")
			}
			if err := c.Commit(t.Context(), 0, 0); !errors.Is(err, buffer.ErrUnavailable) {
				t.Fatalf("Commit after the failure: %v, want ErrUnavailable", err)
			}
			// The acknowledged record is still readable; the failed one never becomes visible.
			recs, err := fetch(t, c, 10)
			if err != nil || len(recs) != 1 || string(recs[0].Value) != "acked" {
				t.Fatalf("Fetch after the failure: %v, %v", recs, err)
			}
			closed = true
			_ = l.Close() // may report the WAL error

			l2 := openLog(t, embedded.Config{Dir: "/weir", FS: mem})
			if err := l2.Append(t.Context(), "orders", msg); err != nil {
				t.Fatalf("Append after reopen: %v", err)
			}
			c2 := consume(t, l2, "orders", "g2")
			var vals []string
			for len(vals) < 2 {
				recs, err := fetch(t, c2, 10)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					if string(r.Value) != "failed" {
						vals = append(vals, string(r.Value))
					}
				}
			}
			if vals[0] != "acked" || vals[1] != "acked" {
				t.Fatalf("after reopen: %q", vals)
			}
		})
	}
}

// TestCommitDurableAfterNextAppend checks the documented contract of Commit: written without
// fsync, it is durable once a later Append returned.
func TestCommitDurableAfterNextAppend(t *testing.T) {
	h := newMemHarness(0)
	l := h.Open(t).(*embedded.Log)
	ensure(t, l, "orders", 1, "g")
	appendN(t, l, "orders", []string{"a"}, 10)
	c := consume(t, l, "orders", "g")
	if recs, err := fetch(t, c, 10); err != nil || len(recs) != 10 {
		t.Fatalf("Fetch: %d, %v", len(recs), err)
	}
	if err := c.Commit(t.Context(), 0, 7); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "orders", []string{"a"}, 1)
	l2 := h.Crash(t, l).(*embedded.Log)
	c2 := consume(t, l2, "orders", "g")
	recs, err := fetch(t, c2, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || recs[0].Offset != 7 {
		t.Fatalf("after crash the group resumed at %d with %d records, want 7 with 4", recs[0].Offset, len(recs))
	}
}

func TestFetchSharesLimitAcrossPartitions(t *testing.T) {
	const parts = 4
	l := openLog(t, embedded.Config{Dir: t.TempDir()})
	ensure(t, l, "orders", parts)
	var keys []string
	for p := range parts {
		keys = append(keys, keyFor(p, parts))
	}
	appendN(t, l, "orders", keys, 80)
	c := consume(t, l, "orders", "g")
	recs, err := fetch(t, c, 8)
	if err != nil {
		t.Fatal(err)
	}
	perPart := make(map[int]int)
	for _, r := range recs {
		perPart[r.Partition]++
	}
	for p := range parts {
		if perPart[p] != 2 {
			t.Fatalf("Fetch(8) over %d busy partitions took %v, want 2 each", parts, perPart)
		}
	}
}

func TestCleanup(t *testing.T) {
	const parts = 2
	dir := t.TempDir()
	l := openLog(t, embedded.Config{Dir: dir})
	ensure(t, l, "orders", parts, "fast", "slow")
	keys := []string{keyFor(0, parts), keyFor(1, parts)}
	appendN(t, l, "orders", keys, 40) // 20 per partition, offsets 0-19

	// Nothing is deleted while a declared group has committed nothing.
	fast := consume(t, l, "orders", "fast")
	for p := range parts {
		if err := fast.Commit(t.Context(), p, 20); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(recordKeys(t, l.DB(), "orders")); n != 40 {
		t.Fatalf("%d records after cleanup with an uncommitted group, want 40", n)
	}

	slow := consume(t, l, "orders", "slow")
	if err := slow.Commit(t.Context(), 0, 5); err != nil {
		t.Fatal(err)
	}
	if err := slow.Commit(t.Context(), 1, 12); err != nil {
		t.Fatal(err)
	}
	if err := l.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(recordKeys(t, l.DB(), "orders")); n != 40-5-12 {
		t.Fatalf("%d records after cleanup, want %d", n, 40-5-12)
	}
	// The slow group resumes where it committed; a new group starts at the oldest record left.
	recs, err := fetch(t, consume(t, l, "orders", "slow"), 100)
	if err != nil || len(recs) != 23 {
		t.Fatalf("slow group after cleanup: %d records, %v", len(recs), err)
	}
	recs, err = fetch(t, consume(t, l, "orders", "late"), 100)
	if err != nil || len(recs) != 23 {
		t.Fatalf("new group after cleanup: %d records, %v", len(recs), err)
	}

	// Retiring the slow group (and the late one) lets cleanup catch up with fast, keeping the
	// last record of each partition so that offsets are not reused after a restart.
	for _, g := range []string{"slow", "late"} {
		if err := l.DeleteGroup(t.Context(), "orders", g); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(recordKeys(t, l.DB(), "orders")); n != parts {
		t.Fatalf("%d records after cleanup, want %d", n, parts)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, embedded.Config{Dir: dir})
	ensure(t, l, "orders", parts, "fast")
	appendN(t, l, "orders", keys, 2)
	recs, err = fetch(t, consume(t, l, "orders", "fast"), 100)
	if err != nil || len(recs) != 2 {
		t.Fatalf("after reopen: %d records, %v", len(recs), err)
	}
	for _, r := range recs {
		if r.Offset != 20 {
			t.Fatalf("new record %d/%d after cleanup and reopen, want offset 20", r.Partition, r.Offset)
		}
	}
}

func TestInvalidConfig(t *testing.T) {
	if _, err := embedded.Open(embedded.Config{}); err == nil {
		t.Fatal("Open without Dir succeeded")
	}
	l := openLog(t, embedded.Config{Dir: t.TempDir()})
	for _, tc := range []buffer.TopicConfig{
		{Name: "", Partitions: 1},
		{Name: "a/b", Partitions: 1},
		{Name: "ok", Partitions: 0},
		{Name: "ok", Partitions: 1, Groups: []string{"bad group"}},
	} {
		if err := l.EnsureTopic(t.Context(), tc); err == nil {
			t.Errorf("EnsureTopic(%+v) succeeded", tc)
		}
	}
	if err := l.Append(t.Context(), "nope", []buffer.Message{{Value: []byte("x")}}); !errors.Is(err, embedded.ErrUnknownTopic) {
		t.Errorf("Append to an unknown topic: %v", err)
	}
	if _, err := l.Consume(t.Context(), "nope", "g"); !errors.Is(err, embedded.ErrUnknownTopic) {
		t.Errorf("Consume of an unknown topic: %v", err)
	}
	ensure(t, l, "ok", 2)
	err := l.EnsureTopic(t.Context(), buffer.TopicConfig{Name: "ok", Partitions: 3})
	if !errors.Is(err, embedded.ErrPartitionMismatch) {
		t.Errorf("EnsureTopic with another partition count: %v", err)
	}
}

// TestAppendCancelledWhileQueued checks that an Append abandoned by its context neither loses
// the writer's place nor corrupts later appends.
func TestAppendCancelledWhileQueued(t *testing.T) {
	l := openLog(t, embedded.Config{Dir: t.TempDir()})
	ensure(t, l, "orders", 1)
	for i := range 200 {
		ctx, cancel := context.WithCancel(t.Context())
		if i%2 == 0 {
			cancel()
		}
		done := make(chan error, 1)
		go func() {
			done <- l.Append(ctx, "orders", []buffer.Message{{Key: []byte("k"), Value: []byte(fmt.Sprint(i))}})
		}()
		cancel()
		<-done
	}
	appendN(t, l, "orders", []string{"k"}, 1)
	// Whatever was written is contiguous and readable.
	c := consume(t, l, "orders", "g")
	recs, err := fetch(t, c, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.Offset != uint64(i) {
			t.Fatalf("record %d has offset %d", i, r.Offset)
		}
	}
}

// TestCommitFailureUnderLoad fails the WAL fsync while many appenders run, then loses power:
// every append acknowledged before the failure survives, and none is acknowledged after it.
func TestCommitFailureUnderLoad(t *testing.T) {
	mem := vfs.NewCrashableMem()
	fault := &syncFault{kind: "sync"}
	fault.on.Injector = errorfs.ErrInjected
	l, err := embedded.Open(embedded.Config{Dir: "/weir", FS: errorfs.Wrap(mem, fault.injector()), Logger: testLogger(t), CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	const parts = 4
	ensure(t, l, "orders", parts)

	var mu sync.Mutex
	acked := make(map[string]bool)
	failed := 0
	var sawFailure atomic.Bool // an Append has failed: every Append started later must fail
	enough := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				v := fmt.Sprintf("w%d-%d", w, i)
				started := sawFailure.Load()
				err := l.Append(t.Context(), "orders", []buffer.Message{{Key: []byte(v), Value: []byte(v)}})
				mu.Lock()
				if err != nil {
					sawFailure.Store(true)
					failed++
					mu.Unlock()
					if !errors.Is(err, buffer.ErrUnavailable) {
						t.Errorf("Append: %v, want ErrUnavailable", err)
					}
					return
				}
				if started {
					t.Errorf("Append of %s, started after another Append failed, was acknowledged", v)
				}
				acked[v] = true
				if len(acked) == 300 {
					close(enough)
				}
				mu.Unlock()
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(buffertest.Wait):
		t.Fatal("appends not acknowledged")
	}
	fault.on.On()
	wg.Wait()
	if l.Err() == nil {
		t.Fatal("log not poisoned")
	}
	_ = l.Close()

	l2 := openLog(t, embedded.Config{Dir: "/weir", FS: mem.CrashClone(vfs.CrashCloneCfg{})})
	for p := range parts {
		if err := l2.Append(t.Context(), "orders", []buffer.Message{{Key: []byte(keyFor(p, parts)), Value: []byte("marker")}}); err != nil {
			t.Fatal(err)
		}
	}
	c := consume(t, l2, "orders", "check")
	present := make(map[string]bool)
	lastOff := make(map[int]uint64)
	markers := 0
	for markers < parts {
		recs, err := fetch(t, c, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if prev, ok := lastOff[r.Partition]; ok && r.Offset != prev+1 {
				t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
			}
			lastOff[r.Partition] = r.Offset
			if string(r.Value) == "marker" {
				markers++
			}
			present[string(r.Value)] = true
		}
	}
	for v := range acked {
		if !present[v] {
			t.Errorf("acknowledged %s lost", v)
		}
	}
	t.Logf("%d acknowledged, %d failed appenders, %d records after the crash", len(acked), failed, len(present)-1)
}

// eventually polls cond every few milliseconds until it holds, failing after buffertest.Wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(buffertest.Wait)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, buffertest.Wait)
		}
		<-tick.C
	}
}

func TestPeriodicCleanup(t *testing.T) {
	l := openLog(t, embedded.Config{Dir: t.TempDir(), CleanupInterval: 5 * time.Millisecond})
	ensure(t, l, "orders", 1, "g")
	appendN(t, l, "orders", []string{"a"}, 10)
	c := consume(t, l, "orders", "g")
	if err := c.Commit(t.Context(), 0, 10); err != nil {
		t.Fatal(err)
	}
	eventually(t, "consumed records deleted", func() bool { return len(recordKeys(t, l.DB(), "orders")) == 1 })
}
