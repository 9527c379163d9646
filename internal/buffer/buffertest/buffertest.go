// Package buffertest is the conformance suite that every buffer.Buffer backend must pass before
// Weir uses it: the embedded Pebble log, NATS JetStream and Kafka run the same test bodies.
//
// A backend's test calls Run with a function that returns a fresh Harness (fresh storage) for each
// subtest. Backends that can close and reopen the same storage implement Reopener; backends whose
// storage can lose unsynced writes on demand (a crashable filesystem) implement Crasher; backends
// whose storage several buffers can use at once (a broker) implement Sharer. Subtests that need a
// capability the harness or the buffer lacks are skipped.
//
// The suite never sleeps to wait: it polls with a deadline. Topic and group names are unique per
// run ("bt-…", [a-z0-9-]) so that backends on a shared broker need no cleanup between subtests.
package buffertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/buffer"
)

// Harness opens buffers on one storage. The suite closes every buffer it opens, directly or
// through Reopen and Crash; the harness cleans up the storage itself (t.Cleanup).
type Harness interface {
	// Open opens a buffer on the harness's storage.
	Open(t *testing.T) buffer.Buffer
}

// Reopener is a Harness that can close a buffer and open its storage again, as a clean restart.
type Reopener interface {
	Harness
	// Reopen closes b and returns a buffer opened on the same storage.
	Reopen(t *testing.T, b buffer.Buffer) buffer.Buffer
}

// Crasher is a Harness that can simulate power loss.
type Crasher interface {
	Harness
	// Crash freezes the storage as a power loss at this instant would leave it, dropping every
	// write that was not synced, then discards b (its later writes go nowhere) and returns a
	// buffer opened on the frozen storage. Crash may be called while other goroutines use b.
	Crash(t *testing.T, b buffer.Buffer) buffer.Buffer
}

// Sharer is a Harness whose storage several buffers can use at once, as Weir instances share a
// broker. Subtests about instances that share a topic then run them on two buffers; on other
// harnesses, on one.
type Sharer interface {
	Harness
	// OpenShared opens another buffer on the storage while the buffers already open stay in use.
	OpenShared(t *testing.T) buffer.Buffer
}

// Wait bounds every wait in the suite. Backends are slow under -race on a loaded machine; a wait
// that passes this bound is a hang, not slowness.
var Wait = 30 * time.Second

// Run runs the conformance suite; newHarness is called once per subtest.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"EnsureTopic", testEnsureTopic},
		{"OrderPerPartitionAndKey", testOrder},
		{"TopicsAreIsolated", testTopicsIsolated},
		{"FetchLimit", testFetchLimit},
		{"FetchBlocksUntilData", testFetchBlocks},
		{"FetchHonoursContext", testFetchContext},
		{"ConsumerCloseUnblocksFetch", testConsumerCloseUnblocks},
		{"RedeliverFromCommit", testRedeliver},
		{"GroupsAreIndependent", testGroupsIndependent},
		{"ConcurrentAppenders", testConcurrentAppenders},
		{"AppendCancelledContext", testAppendCancelled},
		{"AfterClose", testAfterClose},
		{"DurableAcrossReopen", testReopen},
		{"CommitsSurviveReopen", testCommitsSurviveReopen},
		{"CrashKeepsAcknowledged", testCrash},
		{"Lag", testLag},
		{"PartitionConsumers", testPartitionConsumers},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, newHarness(t))
		})
	}
}

// open opens a buffer and closes it when the test ends (if the test did not).
func open(t *testing.T, h Harness) buffer.Buffer {
	t.Helper()
	return track(t, h.Open(t))
}

func track(t *testing.T, b buffer.Buffer) buffer.Buffer {
	t.Cleanup(func() {
		if err := b.Close(); err != nil && !errors.Is(err, buffer.ErrClosed) {
			t.Errorf("close buffer: %v", err)
		}
	})
	return b
}

var seq atomic.Uint64

// name returns a name unique to this run, valid on every backend.
func name(kind string) string {
	return fmt.Sprintf("bt-%s-%x-%d", kind, rand.Uint32(), seq.Add(1))
}

func ensure(t *testing.T, b buffer.Buffer, partitions int, groups ...string) string {
	t.Helper()
	topic := name("topic")
	if err := b.EnsureTopic(ctx(t), buffer.TopicConfig{Name: topic, Partitions: partitions, Groups: groups}); err != nil {
		t.Fatalf("EnsureTopic(%s, %d): %v", topic, partitions, err)
	}
	return topic
}

// ctx returns a context that ends with the test or after Wait.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), Wait)
	t.Cleanup(cancel)
	return c
}

func consume(t *testing.T, b buffer.Buffer, topic, group string) buffer.Consumer {
	t.Helper()
	c, err := b.Consume(ctx(t), topic, group)
	if err != nil {
		t.Fatalf("Consume(%s, %s): %v", topic, group, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func appendOne(t *testing.T, b buffer.Buffer, topic, key, value string) {
	t.Helper()
	if err := b.Append(ctx(t), topic, []buffer.Message{{Key: []byte(key), Value: []byte(value)}}); err != nil {
		t.Fatalf("Append(%s, %s): %v", topic, key, err)
	}
}

// fetchN fetches until it has n records, failing on an error, on more than n records, or after
// Wait.
func fetchN(t *testing.T, c buffer.Consumer, n int) []buffer.Record {
	t.Helper()
	fctx := ctx(t)
	var out []buffer.Record
	for len(out) < n {
		recs, err := c.Fetch(fctx, n-len(out))
		if err != nil {
			t.Fatalf("Fetch after %d of %d records: %v", len(out), n, err)
		}
		if len(recs) == 0 || len(recs) > n-len(out) {
			t.Fatalf("Fetch(max %d) returned %d records", n-len(out), len(recs))
		}
		out = append(out, recs...)
	}
	return out
}

// fetchUntil fetches until done reports true for the records so far, or fails after Wait.
func fetchUntil(t *testing.T, c buffer.Consumer, done func([]buffer.Record) bool) []buffer.Record {
	t.Helper()
	fctx := ctx(t)
	var out []buffer.Record
	for !done(out) {
		recs, err := c.Fetch(fctx, 500)
		if err != nil {
			t.Fatalf("Fetch after %d records: %v", len(out), err)
		}
		out = append(out, recs...)
	}
	return out
}

// expectNothing checks that a Fetch finds nothing before a short deadline.
func expectNothing(t *testing.T, c buffer.Consumer) {
	t.Helper()
	fctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	recs, err := c.Fetch(fctx, 10)
	if err == nil {
		t.Fatalf("Fetch returned %d unexpected records, first %s", len(recs), show(recs[0]))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch on an idle topic: %v, want context.DeadlineExceeded", err)
	}
}

func show(r buffer.Record) string {
	return fmt.Sprintf("%s/%d@%d %q=%q", r.Topic, r.Partition, r.Offset, r.Key, r.Value)
}

// keysForPartitions returns one key per partition: keys[p] maps to p.
func keysForPartitions(n int) []string {
	keys := make([]string, n)
	found := 0
	for i := 0; found < n; i++ {
		k := "pk" + strconv.Itoa(i)
		if p := buffer.Partition([]byte(k), n); keys[p] == "" {
			keys[p] = k
			found++
		}
	}
	return keys
}

// checkRecords verifies the invariants every read must keep: the partition is the key's, and
// offsets within a partition are contiguous and increasing. It returns the records by partition.
func checkRecords(t *testing.T, topic string, partitions int, recs []buffer.Record) map[int][]buffer.Record {
	t.Helper()
	byPart := make(map[int][]buffer.Record)
	for _, r := range recs {
		if r.Topic != topic {
			t.Fatalf("record from topic %q in a consumer of %q: %s", r.Topic, topic, show(r))
		}
		if want := buffer.Partition(r.Key, partitions); r.Partition != want {
			t.Fatalf("record %s in partition %d, key hashes to %d", show(r), r.Partition, want)
		}
		if prev := byPart[r.Partition]; len(prev) > 0 {
			if last := prev[len(prev)-1]; r.Offset != last.Offset+1 {
				t.Fatalf("partition %d: offset %d after %d (gap or reorder)", r.Partition, r.Offset, last.Offset)
			}
		}
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	return byPart
}

func testEnsureTopic(t *testing.T, h Harness) {
	b := open(t, h)
	topic := ensure(t, b, 3)
	if err := b.EnsureTopic(ctx(t), buffer.TopicConfig{Name: topic, Partitions: 3}); err != nil {
		t.Fatalf("EnsureTopic again with the same partitions: %v", err)
	}
	if err := b.EnsureTopic(ctx(t), buffer.TopicConfig{Name: topic, Partitions: 4}); err == nil {
		t.Fatal("EnsureTopic with another partition count succeeded")
	}
	// The topic is intact and usable.
	appendOne(t, b, topic, "k", "v")
	c := consume(t, b, topic, name("g"))
	recs := fetchN(t, c, 1)
	if string(recs[0].Value) != "v" || recs[0].Partition != buffer.Partition([]byte("k"), 3) {
		t.Fatalf("got %s", show(recs[0]))
	}
}

// testOrder appends sequentially, in calls of varying size, and checks that every record comes
// back once, in its key's partition, with contiguous offsets and per-key order.
func testOrder(t *testing.T, h Harness) {
	const parts, keys, total = 4, 13, 300
	b := open(t, h)
	topic := ensure(t, b, parts)
	if err := b.Append(ctx(t), topic, nil); err != nil {
		t.Fatalf("Append of no messages: %v", err)
	}
	sent := 0
	for size := 1; sent < total; size = size%7 + 1 {
		var msgs []buffer.Message
		for i := 0; i < size && sent < total; i++ {
			k := "key-" + strconv.Itoa(sent%keys)
			msgs = append(msgs, buffer.Message{Key: []byte(k), Value: []byte(k + "/" + strconv.Itoa(sent))})
			sent++
		}
		if err := b.Append(ctx(t), topic, msgs); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	c := consume(t, b, topic, name("g"))
	recs := fetchN(t, c, total)
	checkRecords(t, topic, parts, recs)
	lastSeq := make(map[string]int)
	seen := make(map[string]bool)
	for _, r := range recs {
		k, n, ok := strings.Cut(string(r.Value), "/")
		if !ok || k != string(r.Key) {
			t.Fatalf("record %s: value does not belong to key", show(r))
		}
		if seen[string(r.Value)] {
			t.Fatalf("record %s delivered twice", show(r))
		}
		seen[string(r.Value)] = true
		i, _ := strconv.Atoi(n)
		if prev, ok := lastSeq[k]; ok && i <= prev {
			t.Fatalf("key %s: %d after %d (out of order)", k, i, prev)
		}
		lastSeq[k] = i
	}
	expectNothing(t, c)
}

func testTopicsIsolated(t *testing.T, h Harness) {
	b := open(t, h)
	a := ensure(t, b, 2)
	other := ensure(t, b, 2)
	appendOne(t, b, a, "k", "for-a")
	appendOne(t, b, other, "k", "for-other")
	recs := fetchN(t, consume(t, b, other, name("g")), 1)
	if string(recs[0].Value) != "for-other" || recs[0].Topic != other {
		t.Fatalf("consumer of %s got %s", other, show(recs[0]))
	}
	ca := consume(t, b, a, name("g"))
	recs = fetchN(t, ca, 1)
	if string(recs[0].Value) != "for-a" {
		t.Fatalf("consumer of %s got %s", a, show(recs[0]))
	}
	expectNothing(t, ca)
}

func testFetchLimit(t *testing.T, h Harness) {
	const parts = 3
	b := open(t, h)
	topic := ensure(t, b, parts)
	keys := keysForPartitions(parts)
	var msgs []buffer.Message
	for i := range 30 {
		k := keys[i%parts]
		msgs = append(msgs, buffer.Message{Key: []byte(k), Value: []byte(strconv.Itoa(i))})
	}
	if err := b.Append(ctx(t), topic, msgs); err != nil {
		t.Fatal(err)
	}
	c := consume(t, b, topic, name("g"))
	var all []buffer.Record
	for len(all) < 30 {
		recs, err := c.Fetch(ctx(t), 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 || len(recs) > 4 {
			t.Fatalf("Fetch(max 4) returned %d records", len(recs))
		}
		all = append(all, recs...)
	}
	if len(all) != 30 {
		t.Fatalf("got %d records, want 30", len(all))
	}
	checkRecords(t, topic, parts, all)
}

func testFetchBlocks(t *testing.T, h Harness) {
	b := open(t, h)
	topic := ensure(t, b, 2)
	c := consume(t, b, topic, name("g"))
	type result struct {
		recs []buffer.Record
		err  error
	}
	res := make(chan result, 1)
	go func() {
		recs, err := c.Fetch(ctx(t), 10)
		res <- result{recs, err}
	}()
	// The Fetch may or may not have started waiting; either way it must return the record.
	appendOne(t, b, topic, "k", "late")
	select {
	case r := <-res:
		if r.err != nil {
			t.Fatalf("Fetch: %v", r.err)
		}
		if len(r.recs) != 1 || string(r.recs[0].Value) != "late" {
			t.Fatalf("Fetch returned %d records", len(r.recs))
		}
	case <-time.After(Wait):
		t.Fatal("Fetch did not return after an Append")
	}
	// And a Fetch that certainly waits is woken too.
	go func() {
		recs, err := c.Fetch(ctx(t), 10)
		res <- result{recs, err}
	}()
	expectPending(t, res)
	appendOne(t, b, topic, "k", "later")
	select {
	case r := <-res:
		if r.err != nil || len(r.recs) != 1 || string(r.recs[0].Value) != "later" {
			t.Fatalf("Fetch: %d records, %v", len(r.recs), r.err)
		}
	case <-time.After(Wait):
		t.Fatal("blocked Fetch was not woken by an Append")
	}
}

// expectPending checks that nothing arrives on ch for a short while: the operation is blocked.
func expectPending[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("returned while it should block: %+v", v)
	case <-time.After(100 * time.Millisecond):
	}
}

func testFetchContext(t *testing.T, h Harness) {
	b := open(t, h)
	topic := ensure(t, b, 2)
	c := consume(t, b, topic, name("g"))
	expectNothing(t, c) // deadline honoured

	cctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Fetch(cctx, 10)
		errc <- err
	}()
	expectPending(t, errc)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Fetch after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(Wait):
		t.Fatal("Fetch ignored its cancelled context")
	}
	// The consumer still works, and nothing was lost by the cancelled Fetch.
	appendOne(t, b, topic, "k", "v")
	if recs := fetchN(t, c, 1); string(recs[0].Value) != "v" {
		t.Fatalf("got %s", show(recs[0]))
	}
}

func testConsumerCloseUnblocks(t *testing.T, h Harness) {
	b := open(t, h)
	topic := ensure(t, b, 1)
	c := consume(t, b, topic, name("g"))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Fetch(ctx(t), 10)
		errc <- err
	}()
	expectPending(t, errc)
	if err := c.Close(); err != nil {
		t.Fatalf("consumer Close: %v", err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Fetch returned no error after consumer Close")
		}
	case <-time.After(Wait):
		t.Fatal("consumer Close did not unblock Fetch")
	}
	if _, err := c.Fetch(ctx(t), 1); err == nil {
		t.Fatal("Fetch after consumer Close succeeded")
	}
}

// commitHalf commits, per partition, the offset of the middle record seen, and returns the
// records at or after it (those a new consumer of the group must see again).
func commitHalf(t *testing.T, c buffer.Consumer, byPart map[int][]buffer.Record) map[string]bool {
	t.Helper()
	again := make(map[string]bool)
	for p, recs := range byPart {
		mid := len(recs) / 2
		if err := c.Commit(ctx(t), p, recs[mid].Offset); err != nil {
			t.Fatalf("Commit(%d, %d): %v", p, recs[mid].Offset, err)
		}
		for _, r := range recs[mid:] {
			again[string(r.Value)] = true
		}
	}
	return again
}

func appendSpread(t *testing.T, b buffer.Buffer, topic string, n int, tag string) {
	t.Helper()
	for i := range n {
		appendOne(t, b, topic, "k"+strconv.Itoa(i%11), tag+strconv.Itoa(i))
	}
}

func checkRedelivery(t *testing.T, topic string, parts int, recs []buffer.Record, want map[string]bool) {
	t.Helper()
	checkRecords(t, topic, parts, recs)
	for _, r := range recs {
		if !want[string(r.Value)] {
			t.Fatalf("redelivered %s, which was before the commit", show(r))
		}
		delete(want, string(r.Value))
	}
	if len(want) > 0 {
		t.Fatalf("%d records after the commit were not redelivered", len(want))
	}
}

func testRedeliver(t *testing.T, h Harness) {
	const parts, n = 3, 60
	b := open(t, h)
	g := name("g")
	topic := ensure(t, b, parts, g)
	appendSpread(t, b, topic, n, "v")
	c1 := consume(t, b, topic, g)
	byPart := checkRecords(t, topic, parts, fetchN(t, c1, n))
	again := commitHalf(t, c1, byPart)
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := consume(t, b, topic, g)
	want := len(again)
	checkRedelivery(t, topic, parts, fetchN(t, c2, want), again)
	expectNothing(t, c2)
}

func testGroupsIndependent(t *testing.T, h Harness) {
	const parts, n = 2, 20
	b := open(t, h)
	g1, g2 := name("g"), name("g")
	topic := ensure(t, b, parts, g1, g2)
	appendSpread(t, b, topic, n, "v")
	c1 := consume(t, b, topic, g1)
	byPart := checkRecords(t, topic, parts, fetchN(t, c1, n))
	for p, recs := range byPart {
		if err := c1.Commit(ctx(t), p, recs[len(recs)-1].Offset+1); err != nil {
			t.Fatal(err)
		}
	}
	c2 := consume(t, b, topic, g2)
	checkRecords(t, topic, parts, fetchN(t, c2, n))
}

// testConcurrentAppenders checks group commit under contention: every acknowledged record once,
// offsets contiguous per partition.
func testConcurrentAppenders(t *testing.T, h Harness) {
	workers, each := 16, 500
	if testing.Short() {
		each = 100
	}
	const parts = 4
	b := open(t, h)
	topic := ensure(t, b, parts)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		actx := ctx(t)
		wg.Go(func() {
			for i := range each {
				v := fmt.Sprintf("w%d-%d", w, i)
				if err := b.Append(actx, topic, []buffer.Message{{Key: []byte(fmt.Sprintf("w%d-k%d", w, i%5)), Value: []byte(v)}}); err != nil {
					errs <- fmt.Errorf("append %s: %w", v, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := workers * each
	recs := fetchN(t, consume(t, b, topic, name("g")), total)
	checkRecords(t, topic, parts, recs)
	seen := make(map[string]bool, total)
	next := make(map[string]int) // per worker and key: appends of one goroutine stay in order
	for _, r := range recs {
		v := string(r.Value)
		if seen[v] {
			t.Fatalf("%s delivered twice", show(r))
		}
		seen[v] = true
		w, i, _ := strings.Cut(v, "-")
		n, _ := strconv.Atoi(i)
		wk := w + "/" + strconv.Itoa(n%5)
		if n < next[wk] {
			t.Fatalf("%s out of order for its key", show(r))
		}
		next[wk] = n + 1
	}
	if len(seen) != total {
		t.Fatalf("got %d distinct records, want %d", len(seen), total)
	}
}

func testAppendCancelled(t *testing.T, h Harness) {
	b := open(t, h)
	topic := ensure(t, b, 1)
	cctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Append(cctx, topic, []buffer.Message{{Key: []byte("k"), Value: []byte("v")}}); err == nil {
		t.Fatal("Append with a cancelled context succeeded")
	}
}

func testAfterClose(t *testing.T, h Harness) {
	b := open(t, h)
	topic := ensure(t, b, 2)
	appendOne(t, b, topic, "k", "v")
	c := consume(t, b, topic, name("g"))
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := b.Append(ctx(t), topic, []buffer.Message{{Key: []byte("k"), Value: []byte("v2")}})
	if !errors.Is(err, buffer.ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
	if _, err := b.Consume(ctx(t), topic, name("g")); err == nil {
		t.Fatal("Consume after Close succeeded")
	}
	if _, err := c.Fetch(ctx(t), 10); err == nil {
		t.Fatal("Fetch after Close succeeded")
	}
	if err := b.EnsureTopic(ctx(t), buffer.TopicConfig{Name: name("topic"), Partitions: 1}); err == nil {
		t.Fatal("EnsureTopic after Close succeeded")
	}
}

func testReopen(t *testing.T, h Harness) {
	r, ok := h.(Reopener)
	if !ok {
		t.Skip("harness cannot reopen")
	}
	const parts, n = 3, 50
	b := open(t, h)
	topic := ensure(t, b, parts)
	appendSpread(t, b, topic, n, "before-")
	b = track(t, r.Reopen(t, b))
	if err := b.EnsureTopic(ctx(t), buffer.TopicConfig{Name: topic, Partitions: parts}); err != nil {
		t.Fatalf("EnsureTopic after reopen: %v", err)
	}
	appendSpread(t, b, topic, n, "after-")
	recs := fetchN(t, consume(t, b, topic, name("g")), 2*n)
	// checkRecords proves that offsets continued: no reuse, no gap across the restart.
	checkRecords(t, topic, parts, recs)
	for _, r := range recs {
		if !strings.HasPrefix(string(r.Value), "before-") && !strings.HasPrefix(string(r.Value), "after-") {
			t.Fatalf("unexpected %s", show(r))
		}
	}
	if got := countPrefix(recs, "before-"); got != n {
		t.Fatalf("%d records from before the reopen, want %d", got, n)
	}
}

func countPrefix(recs []buffer.Record, prefix string) int {
	n := 0
	for _, r := range recs {
		if strings.HasPrefix(string(r.Value), prefix) {
			n++
		}
	}
	return n
}

func testCommitsSurviveReopen(t *testing.T, h Harness) {
	r, ok := h.(Reopener)
	if !ok {
		t.Skip("harness cannot reopen")
	}
	const parts, n = 3, 60
	b := open(t, h)
	g := name("g")
	topic := ensure(t, b, parts, g)
	appendSpread(t, b, topic, n, "v")
	c1 := consume(t, b, topic, g)
	byPart := checkRecords(t, topic, parts, fetchN(t, c1, n))
	again := commitHalf(t, c1, byPart)
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	b = track(t, r.Reopen(t, b))
	if err := b.EnsureTopic(ctx(t), buffer.TopicConfig{Name: topic, Partitions: parts, Groups: []string{g}}); err != nil {
		t.Fatal(err)
	}
	c2 := consume(t, b, topic, g)
	checkRedelivery(t, topic, parts, fetchN(t, c2, len(again)), again)
	expectNothing(t, c2)
}

// testCrash runs appenders, crashes the storage under them and checks that every Append that
// returned nil before the crash survived, with no gap, twice in a row.
func testCrash(t *testing.T, h Harness) {
	cr, ok := h.(Crasher)
	if !ok {
		t.Skip("harness cannot crash")
	}
	const parts, workers = 4, 8
	b := open(t, h)
	topic := ensure(t, b, parts)
	keys := keysForPartitions(parts)
	attempted := make(map[string]bool) // every value ever appended, acknowledged or not
	acked := make(map[string]bool)     // values acknowledged before a crash
	for round := range 2 {
		var mu sync.Mutex
		ackedNow := make(map[string]bool)
		enough := make(chan struct{}) // closed when 200 appends are acknowledged
		var wg sync.WaitGroup
		stop := make(chan struct{})
		cur := b // the workers keep appending to the buffer being crashed
		for w := range workers {
			v0 := fmt.Sprintf("r%d-w%d-", round, w)
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					v := v0 + strconv.Itoa(i)
					mu.Lock()
					attempted[v] = true
					mu.Unlock()
					err := cur.Append(t.Context(), topic, []buffer.Message{{Key: []byte(v0 + strconv.Itoa(i%3)), Value: []byte(v)}})
					if err != nil {
						return // the crash closed b
					}
					mu.Lock()
					ackedNow[v] = true
					if len(ackedNow) == 200 {
						close(enough)
					}
					mu.Unlock()
				}
			})
		}
		// Let some appends be acknowledged, then crash while the others are in flight.
		select {
		case <-enough:
		case <-time.After(Wait):
			close(stop)
			wg.Wait()
			t.Fatalf("fewer than 200 appends acknowledged within %v", Wait)
		}
		mu.Lock()
		for v := range ackedNow {
			acked[v] = true
		}
		mu.Unlock()
		b = track(t, cr.Crash(t, b))
		close(stop)
		wg.Wait()

		// A marker per partition, appended after the crash, tells the reader it has seen all.
		if err := b.EnsureTopic(ctx(t), buffer.TopicConfig{Name: topic, Partitions: parts}); err != nil {
			t.Fatalf("EnsureTopic after crash: %v", err)
		}
		for p, k := range keys {
			appendOne(t, b, topic, k, fmt.Sprintf("marker-%d-%d", round, p))
		}
		recs := fetchUntil(t, consume(t, b, topic, name("g")), func(recs []buffer.Record) bool {
			return countPrefix(recs, fmt.Sprintf("marker-%d-", round)) == parts
		})
		checkRecords(t, topic, parts, recs)
		present := make(map[string]bool, len(recs))
		for _, r := range recs {
			v := string(r.Value)
			if present[v] {
				t.Fatalf("%s present twice", show(r))
			}
			present[v] = true
			if !attempted[v] && !strings.HasPrefix(v, "marker-") {
				t.Fatalf("%s was never appended", show(r))
			}
		}
		lost := 0
		for v := range acked {
			if !present[v] {
				lost++
				if lost <= 5 {
					t.Errorf("round %d: acknowledged %q lost in the crash", round, v)
				}
			}
		}
		if lost > 0 {
			t.Fatalf("round %d: %d of %d acknowledged records lost", round, lost, len(acked))
		}
		t.Logf("round %d: %d acknowledged, %d present after the crash", round, len(acked), len(recs))
	}
}

// testLag checks a Lagger (skipped for buffers without the capability): lag counts what a group
// has not committed, per partition, and drops as the group commits.
func testLag(t *testing.T, h Harness) {
	b := open(t, h)
	lg, ok := b.(buffer.Lagger)
	if !ok {
		t.Skip("buffer reports no lag")
	}
	topic := ensure(t, b, 2, "g")
	sum := func() int64 {
		lag, err := lg.Lag(ctx(t), topic, "g")
		if err != nil {
			t.Fatal(err)
		}
		if len(lag) != 2 {
			t.Fatalf("lag of %d partitions, want 2", len(lag))
		}
		return lag[0] + lag[1]
	}
	if n := sum(); n != 0 {
		t.Fatalf("lag %d of an empty topic", n)
	}
	appendSpread(t, b, topic, 6, "lag")
	if n := sum(); n != 6 {
		t.Fatalf("lag %d after 6 appends", n)
	}
	c := consume(t, b, topic, "g")
	recs := fetchN(t, c, 6)
	last := map[int]uint64{}
	for _, r := range recs {
		last[r.Partition] = r.Offset
	}
	for p, off := range last {
		if err := c.Commit(ctx(t), p, off+1); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(Wait)
	for sum() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("lag %d after committing everything", sum())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func consumePartitions(t *testing.T, b buffer.Buffer, topic, group string, partitions ...int) buffer.Consumer {
	t.Helper()
	c, err := b.(buffer.PartitionConsumer).ConsumePartitions(ctx(t), topic, group, partitions)
	if err != nil {
		t.Fatalf("ConsumePartitions(%s, %s, %v): %v", topic, group, partitions, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testPartitionConsumers checks a PartitionConsumer (skipped for buffers without the capability)
// as instances that split a topic use it: consumers of one group over disjoint partitions, on two
// buffers when the harness can share its storage, each read only their partitions, refuse to
// commit the others', and never move each other's committed offsets; a partition that moves to
// the other instance, and a consumer of the whole topic, start after those commits.
func testPartitionConsumers(t *testing.T, h Harness) {
	const parts, perPart = 4, 10
	b1 := open(t, h)
	if _, ok := b1.(buffer.PartitionConsumer); !ok {
		t.Skip("buffer has no partition consumers")
	}
	g := name("g")
	topic := ensure(t, b1, parts, g)
	b2 := b1
	if s, ok := h.(Sharer); ok {
		b2 = track(t, s.OpenShared(t))
		if err := b2.EnsureTopic(ctx(t), buffer.TopicConfig{Name: topic, Partitions: parts, Groups: []string{g}}); err != nil {
			t.Fatalf("EnsureTopic on the second buffer: %v", err)
		}
	}
	for _, bad := range [][]int{nil, {}, {parts}, {-1}, {0, parts}} {
		if c, err := b1.(buffer.PartitionConsumer).ConsumePartitions(ctx(t), topic, g, bad); err == nil {
			_ = c.Close()
			t.Fatalf("ConsumePartitions(%v) of %d partitions succeeded", bad, parts)
		}
	}
	// One Append per record: the order of the records of one Append is testOrder's business.
	keys := keysForPartitions(parts)
	for i := range perPart {
		for p, k := range keys {
			appendOne(t, b1, topic, k, fmt.Sprintf("%d-%d", p, i))
		}
	}

	// read fetches every record of partitions and checks that they come in order, from the start.
	read := func(c buffer.Consumer, partitions ...int) map[int][]buffer.Record {
		t.Helper()
		byPart := checkRecords(t, topic, parts, fetchN(t, c, len(partitions)*perPart))
		for p, recs := range byPart {
			if !slices.Contains(partitions, p) {
				t.Fatalf("consumer of partitions %v got %s", partitions, show(recs[0]))
			}
			for i, r := range recs {
				if want := fmt.Sprintf("%d-%d", p, i); string(r.Value) != want {
					t.Fatalf("consumer of partitions %v: record %d of partition %d is %s, want value %s", partitions, i, p, show(r), want)
				}
			}
		}
		expectNothing(t, c)
		return byPart
	}
	ca := consumePartitions(t, b1, topic, g, 0, 1)
	cb := consumePartitions(t, b2, topic, g, 2, 3)
	recs := read(ca, 0, 1)
	maps.Copy(recs, read(cb, 2, 3))

	// The commits interleave, and each consumer tries to rewind a partition of the other to its
	// first record: that must fail and change nothing.
	commit := func(c buffer.Consumer, p, upto int) {
		t.Helper()
		next := recs[p][perPart-1].Offset + 1
		if upto < perPart {
			next = recs[p][upto].Offset
		}
		if err := c.Commit(ctx(t), p, next); err != nil {
			t.Fatalf("Commit(%d, %d): %v", p, next, err)
		}
	}
	upto := map[int]int{0: 3, 1: perPart, 2: perPart, 3: 5} // records of each partition handled
	commit(ca, 0, upto[0])
	commit(cb, 2, upto[2])
	if err := ca.Commit(ctx(t), 2, recs[2][0].Offset); err == nil {
		t.Fatal("a consumer of partitions 0 and 1 committed partition 2")
	}
	commit(ca, 1, upto[1])
	if err := cb.Commit(ctx(t), 1, recs[1][0].Offset); err == nil {
		t.Fatal("a consumer of partitions 2 and 3 committed partition 1")
	}
	commit(cb, 3, upto[3])
	if err := cb.Commit(ctx(t), parts, 0); err == nil {
		t.Fatalf("Commit of partition %d of %d succeeded", parts, parts)
	}
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cb.Close(); err != nil {
		t.Fatal(err)
	}

	// Partitions 2 and 3 move to the first buffer, as a lease does to another instance.
	want := func(partitions ...int) map[string]bool {
		again := make(map[string]bool)
		for _, p := range partitions {
			for _, r := range recs[p][upto[p]:] {
				again[string(r.Value)] = true
			}
		}
		return again
	}
	again := want(2, 3)
	cb = consumePartitions(t, b1, topic, g, 2, 3)
	checkRedelivery(t, topic, parts, fetchN(t, cb, len(again)), again)
	expectNothing(t, cb)
	if err := cb.Close(); err != nil {
		t.Fatal(err)
	}
	again = want(0, 1, 2, 3)
	c := consume(t, b2, topic, g)
	checkRedelivery(t, topic, parts, fetchN(t, c, len(again)), again)
	expectNothing(t, c)
}
