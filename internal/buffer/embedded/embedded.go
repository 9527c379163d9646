// Package embedded is Weir's default buffer: a partitioned durable log stored in Pebble, in the
// same process, with no external service.
//
// Appends are group-committed: one writer goroutine takes every Append waiting at that moment,
// gives their records the next offsets of their partitions and writes them to the WAL in one
// Pebble batch with a sync requested; a syncer goroutine waits for that fsync, then publishes the
// offsets and wakes the callers. While one fsync runs the writer already writes the next group
// (at most two groups in flight), and the groups grow with the load, so every concurrent caller
// shares the cost of an fsync (see DESIGN.md §4). Append returns only after its records are
// fsync'd, and consumers see a record only after that fsync, in offset order, so an acknowledged
// record survives power loss and a consumer never sees a gap or a record that could still vanish.
//
// A failed commit (fsync error, disk full) poisons the log: that Append and every later one fail
// with buffer.ErrUnavailable until the process reopens the log. Retrying an fsync and carrying on
// could acknowledge data that the kernel already dropped (RELIABILITY.md R5, "fsyncgate").
//
// # Storage layout
//
// The Pebble instance may be shared (see (*Log).DB): the log owns the key prefixes PrefixRecords
// ("l/"), PrefixOffsets ("o/") and PrefixTopics ("t/"); other users keep to their own prefixes.
//
//	l/<topic>/<partition BE u32><offset BE u64>  →  CRC32C | uvarint keylen | key | value
//	o/<topic>/<group>/<partition BE u32>          →  next offset BE u64 | CRC32C
//	t/<topic>                                     →  CRC32C | version | partitions | groups
//
// Every CRC (Castagnoli) covers the storage key as well as the bytes after the CRC, so a flipped
// bit and a value under the wrong key are both reported as buffer.ErrCorrupt, never skipped.
//
// # Consumer offsets
//
// Commit writes the group's offset without fsync. The write-ahead log is ordered, so the commit is
// durable as soon as any later synced write is, which the next group commit provides; a crash can
// at worst roll a commit back, which redelivers (at-least-once), never skips.
//
// # Cleanup
//
// Every CleanupInterval the log deletes, per partition, the records below the smallest offset
// committed by the topic's groups: those declared in TopicConfig.Groups and those that ever
// Consumed the topic (both persisted). A topic with no group is never cleaned, a declared group
// that has not committed holds everything, and the last record of a partition is kept so that
// offsets are never reused after a restart. DeleteGroup retires a group that no longer exists.
//
// # Lock order
//
// Log.cleanMu → Log.dbMu (read) → Log.topicsMu → topic.mu. Log.qmu (the append queue) is never
// held with another lock.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/weirhq/weir/internal/buffer"
)

// ErrUnknownTopic is returned by Append and Consume for a topic that EnsureTopic never created.
var ErrUnknownTopic = errors.New("embedded: unknown topic")

// ErrPartitionMismatch is returned by EnsureTopic when the topic exists with another partition
// count; records are placed by key hash, so changing it would break per-key order.
var ErrPartitionMismatch = errors.New("embedded: partition count differs from the existing topic")

// Config configures Open. The zero value of every field but Dir has a sensible default.
type Config struct {
	// Dir is the directory of the Pebble store; it is created if missing.
	Dir string
	// FS is the filesystem the store lives on; nil means the OS filesystem. Tests pass
	// vfs.NewCrashableMem() to simulate power loss, or an errorfs to inject I/O errors.
	FS vfs.FS
	// Logger receives the log's and Pebble's messages; nil means slog.Default().
	Logger *slog.Logger
	// CleanupInterval is how often consumed records are deleted; 0 means 10s, negative disables
	// the periodic cleanup (Cleanup can still be called).
	CleanupInterval time.Duration
	// MaxBatchBytes caps the encoded size of one group commit; 0 means 4 MiB. An Append larger
	// than the cap is committed alone, never split.
	MaxBatchBytes int
	// MemTableSize is Pebble's memtable size; 0 means 64 MiB. A larger memtable lets consumers
	// read recent records from memory and lets cleanup delete them before they reach an sstable.
	MemTableSize uint64
	// CacheSize is Pebble's block cache size; 0 means 32 MiB.
	CacheSize int64
	// MinSyncInterval is the least time between two fsyncs of the write-ahead log; 0 means
	// 500µs, negative none. Commits that want durability while a sync is due wait for it and
	// share it: under many concurrent committers (a workflow step, an ingest request, a stage
	// commit each wait for one) this makes far fewer, larger fsyncs — measured here, five-step
	// workflows went from ~2,000/s to ~2,800/s — while a lone commit never waits longer than
	// the interval.
	MinSyncInterval time.Duration
}

const (
	defaultCleanupInterval = 10 * time.Second
	defaultMaxBatchBytes   = 4 << 20
	defaultMemTableSize    = 64 << 20
	defaultCacheSize       = 32 << 20
	defaultMinSyncInterval = 500 * time.Microsecond
)

// Log is the Pebble-backed partitioned log. It implements buffer.Buffer; all methods are safe for
// concurrent use.
type Log struct {
	cfg    Config
	db     *pebble.DB
	logger *slog.Logger

	closed atomic.Bool
	// done is closed by Close: it wakes blocked Fetches and stops the cleanup loop.
	done chan struct{}
	// dbMu is held for reading by every use of db outside the writer goroutine; Close takes it
	// for writing (after the writer stopped) to close db once no Fetch holds an iterator.
	dbMu sync.RWMutex
	wg   sync.WaitGroup

	// poisoned holds the error of the first failed commit; once set, nothing is written again.
	poisoned atomic.Pointer[error]

	// topicsMu serializes topic creation and group registration (and their metadata writes);
	// topics is copied on write so that Append looks topics up without a lock.
	topicsMu sync.Mutex
	topics   atomic.Pointer[map[string]*topic]

	// The append queue, handed from Append to the writer goroutine.
	qmu     sync.Mutex
	qcond   sync.Cond
	queue   []*appendReq
	closing bool

	// The group-commit pipeline: the writer hands groups to the syncer through syncq; free holds
	// the pipelineDepth inflight slots, so taking one waits for an old group to be answered.
	syncq      chan *inflight
	free       chan *inflight
	dirtyParts []*partition // writer-owned scratch

	// cleanMu serializes Cleanup runs.
	cleanMu sync.Mutex
}

// topic is the in-memory state of one topic.
type topic struct {
	name   string
	prefix []byte // "l/" name "/"
	end    []byte // first key after every record of the topic
	parts  []partition

	// notify is replaced and closed by the writer after each group commit that added records to
	// the topic: Fetch waits on it instead of polling.
	notify atomic.Pointer[notifier]
	dirty  bool // writer-owned: the current group has records for this topic

	mu     sync.Mutex // guards groups
	groups map[string]*group
}

// partition is the state of one partition of a topic.
type partition struct {
	next  uint64 // writer-owned: the offset of the next record appended
	dirty bool   // writer-owned: the current group has records for this partition
	// hwm is the durable end: every offset below it is fsync'd and readable. Only the writer
	// advances it, after the fsync, so no gap and no unsynced record is ever visible.
	hwm atomic.Uint64
	// low is the offset below which cleanup may have deleted records. Cleanup raises it before
	// deleting, so a reader that finds a hole below low knows it is not corruption.
	low atomic.Uint64
}

// group is a consumer group's committed offsets, one per partition.
type group struct {
	committed []atomic.Uint64
}

type notifier struct{ ch chan struct{} }

func newTopic(name string, partitions int) *topic {
	t := &topic{
		name:   name,
		prefix: recordPrefix(name),
		parts:  make([]partition, partitions),
		groups: make(map[string]*group),
	}
	t.end = prefixEnd(t.prefix)
	t.notify.Store(&notifier{ch: make(chan struct{})})
	return t
}

// groupLocked returns the group named g, creating it; t.mu must be held.
func (t *topic) groupLocked(g string) (*group, bool) {
	if gs, ok := t.groups[g]; ok {
		return gs, false
	}
	gs := &group{committed: make([]atomic.Uint64, len(t.parts))}
	t.groups[g] = gs
	return gs, true
}

func (t *topic) meta() topicMeta {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := topicMeta{partitions: len(t.parts)}
	m.groups = slices.Sorted(maps.Keys(t.groups))
	return m
}

// Open opens (or creates) the log in cfg.Dir, recovering every partition's next offset from its
// last record and every group's committed offsets, and starts the writer and cleanup goroutines.
func Open(cfg Config) (*Log, error) {
	c := cfg
	if c.Dir == "" {
		return nil, errors.New("embedded: Config.Dir is required")
	}
	if c.MaxBatchBytes < 0 {
		return nil, fmt.Errorf("embedded: Config.MaxBatchBytes %d is negative", c.MaxBatchBytes)
	}
	if c.CacheSize < 0 {
		return nil, fmt.Errorf("embedded: Config.CacheSize %d is negative", c.CacheSize)
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.CleanupInterval == 0 {
		c.CleanupInterval = defaultCleanupInterval
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = defaultMaxBatchBytes
	}
	if c.MemTableSize == 0 {
		c.MemTableSize = defaultMemTableSize
	}
	if c.CacheSize == 0 {
		c.CacheSize = defaultCacheSize
	}
	if c.MinSyncInterval == 0 {
		c.MinSyncInterval = defaultMinSyncInterval
	}

	l := &Log{cfg: c, logger: c.Logger, done: make(chan struct{})}
	l.qcond.L = &l.qmu
	db, err := pebble.Open(c.Dir, l.pebbleOptions())
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", c.Dir, err)
	}
	l.db = db
	if err := l.load(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	l.syncq = make(chan *inflight, pipelineDepth)
	l.free = make(chan *inflight, pipelineDepth)
	for range pipelineDepth {
		l.free <- &inflight{}
	}
	l.wg.Add(2)
	go l.runWriter()
	go l.runSyncer()
	if c.CleanupInterval > 0 {
		l.wg.Add(1)
		go l.runCleanup()
	}
	return l, nil
}

// pebbleOptions tunes Pebble for an append-mostly log read soon after writing and deleted from the
// front. Automatic compactions stay on: cleanup relies on them (delete-only compactions) to give
// disk space back.
func (l *Log) pebbleOptions() *pebble.Options {
	logger := pebbleLogger{l.logger}
	o := &pebble.Options{
		FS:                 l.cfg.FS,
		Logger:             logger,
		FormatMajorVersion: pebble.FormatNewest,
		CacheSize:          l.cfg.CacheSize,
		// Bigger memtables absorb bursts and let most records be consumed and deleted before they
		// are flushed; four of them may queue while a flush runs before writes stall.
		MemTableSize:                l.cfg.MemTableSize,
		MemTableStopWritesThreshold: 4,
		// Start writeback early, so that an fsync of a large group (or an sstable) does not find
		// megabytes of dirty pages to write at once.
		WALBytesPerSync:    1 << 20,
		WALMinSyncInterval: func() time.Duration { return max(l.cfg.MinSyncInterval, 0) },
		BytesPerSync:       1 << 20,
		// Let range deletions reach disk (and delete-only compactions drop whole files) even when
		// no write fills the memtable.
		FlushDelayDeleteRange: 10 * time.Second,
		// One compaction normally, a second when L0 or compaction debt builds up: two cores here.
		CompactionConcurrencyRange: func() (int, int) { return 1, 2 },
		L0CompactionThreshold:      4,
		L0StopWritesThreshold:      24,
		EventListener: &pebble.EventListener{
			// Pebble's default is to exit; report instead, and let reads fail with the error.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				l.logger.Error("embedded log: pebble detected corruption", "path", info.Path, "err", info.Details)
			},
		},
	}
	// Bloom filters make a Get for a key that is not there (the common case of a dedup lookup
	// in the state store sharing this database) skip most sstables. Later levels inherit L0's.
	o.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	// Records are consumed and deleted within seconds to minutes, so the upper levels (where
	// they live and die) skip compression: flushes, compactions and consumer reads of a backlog
	// then cost no Snappy CPU. Long-lived keys (dedup receipts, status trails) sink to the
	// lower levels and are compressed there.
	for i := range o.Levels {
		if i < 4 {
			o.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
		} else {
			o.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.SnappyCompression }
		}
	}
	return o
}

// load rebuilds the in-memory state from the store: topics from "t/", each partition's next
// offset from its last record, committed offsets from "o/".
func (l *Log) load() error {
	topics := make(map[string]*topic)
	it, err := l.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte(PrefixTopics),
		UpperBound: prefixEnd([]byte(PrefixTopics)),
	})
	if err != nil {
		return fmt.Errorf("embedded: load topics: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		key := it.Key()
		name := string(key[len(PrefixTopics):])
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(fmt.Errorf("embedded: load topic %q: %w", name, err), it.Close())
		}
		m, err := decodeTopicMeta(key, v)
		if err != nil {
			return errors.Join(fmt.Errorf("embedded: topic %q: %w: %w", name, buffer.ErrCorrupt, err), it.Close())
		}
		t := newTopic(name, m.partitions)
		for _, g := range m.groups {
			t.groupLocked(g)
		}
		topics[name] = t
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("embedded: load topics: %w", err)
	}

	for _, t := range topics {
		if err := l.loadPartitions(t); err != nil {
			return err
		}
	}

	it, err = l.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte(PrefixOffsets),
		UpperBound: prefixEnd([]byte(PrefixOffsets)),
	})
	if err != nil {
		return fmt.Errorf("embedded: load offsets: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		key := it.Key()
		tname, gname, p, ok := parseOffsetKey(key)
		if !ok {
			l.logger.Warn("embedded log: ignoring malformed offset key", "key", fmt.Sprintf("%q", key))
			continue
		}
		t := topics[tname]
		if t == nil || p >= len(t.parts) {
			l.logger.Warn("embedded log: ignoring offset of unknown topic or partition", "topic", tname, "group", gname, "partition", p)
			continue
		}
		g, ok := t.groups[gname]
		if !ok {
			l.logger.Warn("embedded log: ignoring offset of unregistered group", "topic", tname, "group", gname)
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(fmt.Errorf("embedded: load offset %s/%s/%d: %w", tname, gname, p, err), it.Close())
		}
		next, err := decodeOffsetValue(key, v)
		if err != nil {
			return errors.Join(fmt.Errorf("embedded: offset %s/%s/%d: %w: %w", tname, gname, p, buffer.ErrCorrupt, err), it.Close())
		}
		g.committed[p].Store(next)
		if ps := &t.parts[p]; next > ps.next {
			// A commit can only follow a durable record, so this means records were lost. Never
			// hand those offsets out again: the group would skip the new records.
			l.logger.Error("embedded log: committed offset beyond the last record", "topic", tname, "group", gname, "partition", p, "committed", next, "next", ps.next)
			ps.next = next
			ps.hwm.Store(next)
			ps.low.Store(next)
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("embedded: load offsets: %w", err)
	}
	l.topics.Store(&topics)
	return nil
}

// loadPartitions sets next, hwm and low of every partition of t from its first and last keys.
func (l *Log) loadPartitions(t *topic) error {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: t.prefix, UpperBound: t.end})
	if err != nil {
		return fmt.Errorf("embedded: load topic %q: %w", t.name, err)
	}
	var key []byte
	for p := range t.parts {
		ps := &t.parts[p]
		key = appendRecordKey(key[:0], t.prefix, p+1, 0)
		if it.SeekLT(key) {
			if lp, off, ok := parseRecordKey(it.Key(), t.prefix); ok && lp == p {
				ps.next = off + 1
			}
		}
		key = appendRecordKey(key[:0], t.prefix, p, 0)
		if it.SeekGE(key) {
			if lp, off, ok := parseRecordKey(it.Key(), t.prefix); ok && lp == p {
				ps.low.Store(off)
			}
		}
		if ps.next == 0 {
			ps.low.Store(0)
		}
		ps.hwm.Store(ps.next)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("embedded: load topic %q: %w", t.name, err)
	}
	return nil
}

// Lag returns, per partition, the durable records the group has not committed.
func (l *Log) Lag(_ context.Context, topicName, groupName string) ([]int64, error) {
	t := l.lookup(topicName)
	if t == nil {
		return nil, fmt.Errorf("embedded: unknown topic %q", topicName)
	}
	t.mu.Lock()
	g := t.groups[groupName]
	t.mu.Unlock()
	out := make([]int64, len(t.parts))
	for p := range t.parts {
		end := t.parts[p].hwm.Load()
		var done uint64
		if g != nil {
			done = g.committed[p].Load()
		}
		if end > done {
			out[p] = int64(end - done)
		}
	}
	return out, nil
}

// DB returns the Pebble instance, for Weir's state store to keep its data next to the log and
// commit "offset advanced + outputs + dedup marker" atomically. Its keys must not use the log's
// prefixes (PrefixRecords, PrefixOffsets, PrefixTopics), it must commit through Apply, and it must
// stop using the DB before Close.
func (l *Log) DB() *pebble.DB { return l.db }

// Apply commits b, a batch from DB().NewBatch(), with an fsync when sync is set. Unlike
// b.Commit, a failed commit does not end the process (Pebble's default): it poisons the log and
// returns an error wrapping buffer.ErrUnavailable, as do all later writes.
func (l *Log) Apply(b *pebble.Batch, sync bool) error {
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.closed.Load() {
		return buffer.ErrClosed
	}
	o := pebble.NoSync
	if sync {
		o = pebble.Sync
	}
	return l.apply(b, o)
}

// Err returns nil while the log accepts writes, and the poisoning error (wrapping
// buffer.ErrUnavailable) once a commit failed. Readiness checks call it.
func (l *Log) Err() error {
	if p := l.poisoned.Load(); p != nil {
		return *p
	}
	return nil
}

// apply commits b. Pebble reports a failed WAL fsync through Logger.Fatalf, which pebbleLogger
// turns into a fatalError panic; it is recovered here, once Pebble has released its locks.
func (l *Log) apply(b *pebble.Batch, o *pebble.WriteOptions) (err error) {
	if p := l.poisoned.Load(); p != nil {
		return *p
	}
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(*fatalError)
			if !ok {
				panic(r)
			}
			err = l.poison(fe)
		}
	}()
	if err := b.Commit(o); err != nil {
		return l.poison(err)
	}
	return nil
}

// poison stops every future write and returns the error that reports it.
func (l *Log) poison(cause error) error {
	err := fmt.Errorf("%w: embedded log refuses writes after a failed commit (reopen to recover): %w", buffer.ErrUnavailable, cause)
	if l.poisoned.CompareAndSwap(nil, &err) {
		l.logger.Error("embedded log: commit failed; no write will be acknowledged until the log is reopened", "err", cause)
	}
	return *l.poisoned.Load()
}

// lookup returns the topic named name, or nil.
func (l *Log) lookup(name string) *topic {
	return (*l.topics.Load())[name]
}

// EnsureTopic creates the topic, or checks that the existing one has the same partition count;
// either way it registers tc.Groups so that cleanup keeps what they have not committed.
func (l *Log) EnsureTopic(ctx context.Context, tc buffer.TopicConfig) error {
	if err := checkName("topic", tc.Name); err != nil {
		return err
	}
	if tc.Partitions < 1 || tc.Partitions > maxPartitions {
		return fmt.Errorf("embedded: topic %q: partitions %d out of range 1-%d", tc.Name, tc.Partitions, maxPartitions)
	}
	for _, g := range tc.Groups {
		if err := checkName("group", g); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: ensure topic %q: %w", tc.Name, err)
	}
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.closed.Load() {
		return buffer.ErrClosed
	}
	l.topicsMu.Lock()
	defer l.topicsMu.Unlock()
	if t := l.lookup(tc.Name); t != nil {
		if len(t.parts) != tc.Partitions {
			return fmt.Errorf("embedded: topic %q has %d partitions, not %d: %w", tc.Name, len(t.parts), tc.Partitions, ErrPartitionMismatch)
		}
		return l.registerGroupsLocked(t, tc.Groups)
	}
	t := newTopic(tc.Name, tc.Partitions)
	for _, g := range tc.Groups {
		t.groupLocked(g)
	}
	if err := l.writeMetaLocked(t); err != nil {
		return err
	}
	topics := maps.Clone(*l.topics.Load())
	topics[t.name] = t
	l.topics.Store(&topics)
	return nil
}

// registerGroupsLocked adds groups to t and persists them if any is new; topicsMu is held.
func (l *Log) registerGroupsLocked(t *topic, groups []string) error {
	added := false
	t.mu.Lock()
	for _, g := range groups {
		if _, isNew := t.groupLocked(g); isNew {
			added = true
		}
	}
	t.mu.Unlock()
	if !added {
		return nil
	}
	return l.writeMetaLocked(t)
}

// writeMetaLocked persists t's metadata with an fsync; topicsMu is held.
func (l *Log) writeMetaLocked(t *topic) error {
	key := topicKey(t.name)
	b := l.db.NewBatch()
	defer b.Close()
	if err := b.Set(key, encodeTopicMeta(key, t.meta()), nil); err != nil {
		return fmt.Errorf("embedded: topic %q metadata: %w", t.name, err)
	}
	if err := l.apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("embedded: topic %q metadata: %w", t.name, err)
	}
	return nil
}

// DeleteGroup retires a consumer group of a topic: cleanup stops keeping records for it and its
// committed offsets are deleted. No consumer of the group may be open. A group still listed in a
// later EnsureTopic is registered again, from offset zero.
func (l *Log) DeleteGroup(ctx context.Context, topicName, groupName string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: delete group %q: %w", groupName, err)
	}
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.closed.Load() {
		return buffer.ErrClosed
	}
	l.topicsMu.Lock()
	defer l.topicsMu.Unlock()
	t := l.lookup(topicName)
	if t == nil {
		return fmt.Errorf("embedded: delete group of %q: %w", topicName, ErrUnknownTopic)
	}
	t.mu.Lock()
	_, ok := t.groups[groupName]
	delete(t.groups, groupName)
	t.mu.Unlock()
	if !ok {
		return nil
	}
	start := appendOffsetKey(nil, topicName, groupName, 0)
	start = start[:len(start)-4]
	key := topicKey(t.name)
	b := l.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(start, prefixEnd(start), nil); err != nil {
		return fmt.Errorf("embedded: delete group %q: %w", groupName, err)
	}
	if err := b.Set(key, encodeTopicMeta(key, t.meta()), nil); err != nil {
		return fmt.Errorf("embedded: delete group %q: %w", groupName, err)
	}
	if err := l.apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("embedded: delete group %q: %w", groupName, err)
	}
	return nil
}

// Consume opens a consumer of every partition of topic for group, registering the group for
// cleanup. It starts after the group's committed offsets.
func (l *Log) Consume(ctx context.Context, topicName, groupName string) (buffer.Consumer, error) {
	return l.consume(ctx, topicName, groupName, nil)
}

// ConsumePartitions is Consume restricted to partitions. Consumers of one group over disjoint
// partitions share only the group's offsets, which are stored per partition: each consumer
// writes just those of its own partitions.
func (l *Log) ConsumePartitions(ctx context.Context, topicName, groupName string, partitions []int) (buffer.Consumer, error) {
	if len(partitions) == 0 {
		// Checked here: consume reads a nil list as every partition.
		return nil, fmt.Errorf("embedded: consume %q: no partitions", topicName)
	}
	return l.consume(ctx, topicName, groupName, partitions)
}

// consume opens a consumer of partitions of the topic, or of all of them when partitions is nil.
func (l *Log) consume(ctx context.Context, topicName, groupName string, partitions []int) (buffer.Consumer, error) {
	if err := checkName("group", groupName); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embedded: consume %q: %w", topicName, err)
	}
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.closed.Load() {
		return nil, buffer.ErrClosed
	}
	t := l.lookup(topicName)
	if t == nil {
		return nil, fmt.Errorf("embedded: consume %q: %w", topicName, ErrUnknownTopic)
	}
	if partitions == nil {
		partitions = make([]int, len(t.parts))
		for p := range partitions {
			partitions[p] = p
		}
	} else if err := buffer.CheckPartitions(partitions, len(t.parts)); err != nil {
		return nil, fmt.Errorf("embedded: consume %q: %w", topicName, err)
	}
	l.topicsMu.Lock()
	err := l.registerGroupsLocked(t, []string{groupName})
	l.topicsMu.Unlock()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	g, _ := t.groupLocked(groupName)
	t.mu.Unlock()
	return newConsumer(l, t, groupName, g, partitions), nil
}

// Close stops the log: Appends not yet handed to an fsync fail with buffer.ErrClosed (those being
// fsync'd finish), blocked Fetches return buffer.ErrClosed, and Pebble is closed once no Fetch is
// reading. A second Close returns buffer.ErrClosed.
func (l *Log) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return buffer.ErrClosed
	}
	l.qmu.Lock()
	l.closing = true
	l.qcond.Broadcast()
	l.qmu.Unlock()
	close(l.done)
	l.wg.Wait()

	l.dbMu.Lock()
	defer l.dbMu.Unlock()
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("embedded: close: %w", err)
	}
	return nil
}

// Cleanup deletes, in every partition, the records below the smallest offset committed by the
// topic's groups, keeping the last record. It runs every CleanupInterval; tests call it directly.
func (l *Log) Cleanup(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: cleanup: %w", err)
	}
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.closed.Load() {
		return buffer.ErrClosed
	}
	if err := l.Err(); err != nil {
		return err
	}
	b := l.db.NewBatch()
	defer b.Close()
	var groups []*group
	var start, end []byte
	for _, t := range *l.topics.Load() {
		t.mu.Lock()
		groups = slices.AppendSeq(groups[:0], maps.Values(t.groups))
		t.mu.Unlock()
		if len(groups) == 0 {
			continue
		}
		for p := range t.parts {
			ps := &t.parts[p]
			hwm := ps.hwm.Load()
			if hwm == 0 {
				continue
			}
			upto := hwm - 1 // keep the last record: it carries the next offset across restarts
			for _, g := range groups {
				upto = min(upto, g.committed[p].Load())
			}
			low := ps.low.Load()
			if upto <= low {
				continue
			}
			// Raise low first: a Fetch that sees the deletion also sees the new low.
			ps.low.Store(upto)
			start = appendRecordKey(start[:0], t.prefix, p, low)
			end = appendRecordKey(end[:0], t.prefix, p, upto)
			if err := b.DeleteRange(start, end, nil); err != nil {
				return fmt.Errorf("embedded: cleanup %s/%d: %w", t.name, p, err)
			}
		}
	}
	if b.Empty() {
		return nil
	}
	// No fsync: the deletion follows the commits it relies on in the WAL, and losing it in a
	// crash only brings records back.
	if err := l.apply(b, pebble.NoSync); err != nil {
		return fmt.Errorf("embedded: cleanup: %w", err)
	}
	return nil
}

func (l *Log) runCleanup() {
	defer l.wg.Done()
	tick := time.NewTicker(l.cfg.CleanupInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-tick.C:
			err := l.Cleanup(context.Background())
			if err != nil && !errors.Is(err, buffer.ErrClosed) && !errors.Is(err, buffer.ErrUnavailable) {
				l.logger.Warn("embedded log: cleanup failed", "err", err)
			}
		}
	}
}

var (
	_ buffer.Buffer            = (*Log)(nil)
	_ buffer.Lagger            = (*Log)(nil)
	_ buffer.PartitionConsumer = (*Log)(nil)
)
