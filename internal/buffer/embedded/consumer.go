package embedded

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/weirhq/weir/internal/buffer"
)

// consumer reads some partitions (often all) of one topic for one group. Fetch and Commit run on
// the owner's goroutine, so the scratch fields need no lock; Close may run on any goroutine.
type consumer struct {
	l         *Log
	t         *topic
	groupName string
	g         *group
	iterOpts  pebble.IterOptions

	closed    atomic.Bool
	done      chan struct{}
	closeOnce sync.Once

	parts []int    // the partitions read, ascending
	owned []bool   // per partition of the topic: in parts
	pos   []uint64 // next offset to return, indexed by partition
	rr    int      // index in parts of the partition the next Fetch starts with

	// Fetch scratch.
	next   []uint64 // tentative positions, copied to pos when the Fetch succeeds
	hwm    []uint64
	ready  []int
	spans  []span
	arena  []byte
	keyBuf []byte
	// Commit scratch.
	commitKey, commitVal []byte
}

// maxRetainedArena caps the scratch a consumer keeps between Fetches.
const maxRetainedArena = 1 << 20

// span locates a record's key and value in the consumer's arena.
type span struct{ k0, k1, v1 int }

// newConsumer returns a consumer of partitions, valid and distinct partitions of t.
func newConsumer(l *Log, t *topic, groupName string, g *group, partitions []int) *consumer {
	n := len(t.parts)
	c := &consumer{
		l:         l,
		t:         t,
		groupName: groupName,
		g:         g,
		iterOpts:  pebble.IterOptions{LowerBound: t.prefix, UpperBound: t.end},
		done:      make(chan struct{}),
		parts:     slices.Sorted(slices.Values(partitions)),
		owned:     make([]bool, n),
		pos:       make([]uint64, n),
		next:      make([]uint64, n),
		hwm:       make([]uint64, n),
		ready:     make([]int, 0, len(partitions)),
	}
	for _, p := range c.parts {
		c.owned[p] = true
		c.pos[p] = g.committed[p].Load()
	}
	return c
}

// Fetch blocks until records are available and returns up to limit of them, sharing limit fairly
// between the partitions that have records (starting with a different partition each call), in
// offset order within each partition. A damaged record fails the Fetch with an error wrapping
// buffer.ErrCorrupt, every time, until an operator repairs the store.
func (c *consumer) Fetch(ctx context.Context, limit int) ([]buffer.Record, error) {
	if limit < 1 {
		return nil, fmt.Errorf("embedded: fetch %q: max %d < 1", c.t.name, limit)
	}
	for {
		if c.closed.Load() {
			return nil, buffer.ErrClosed
		}
		// Take the notifier before reading hwm: the writer advances hwm before it closes the
		// notifier, so a commit that this read misses wakes the wait below.
		n := c.t.notify.Load()
		recs, err := c.read(limit)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
		select {
		case <-n.ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("embedded: fetch %q: %w", c.t.name, ctx.Err())
		case <-c.done:
			return nil, buffer.ErrClosed
		case <-c.l.done:
			return nil, buffer.ErrClosed
		}
	}
}

// read returns the available records without blocking; none is not an error.
func (c *consumer) read(limit int) ([]buffer.Record, error) {
	l, t := c.l, c.t
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.closed.Load() {
		return nil, buffer.ErrClosed
	}
	np := len(c.parts)
	c.ready = c.ready[:0]
	avail := uint64(0)
	for i := range np {
		p := c.parts[(c.rr+i)%np]
		c.hwm[p] = t.parts[p].hwm.Load()
		if c.pos[p] < c.hwm[p] {
			c.ready = append(c.ready, p)
			avail += c.hwm[p] - c.pos[p]
		}
	}
	if len(c.ready) == 0 {
		return nil, nil
	}
	c.rr = (c.rr + 1) % np

	// The iterator is created after hwm was read, so it sees every record below hwm.
	it, err := l.db.NewIter(&c.iterOpts)
	if err != nil {
		return nil, fmt.Errorf("embedded: fetch %q: %w", t.name, err)
	}
	defer it.Close()

	copy(c.next, c.pos)
	recs := make([]buffer.Record, 0, min(uint64(limit), avail))
	c.spans = c.spans[:0]
	c.arena = c.arena[:0]
	remaining := limit
	for len(c.ready) > 0 && remaining > 0 {
		share := max(1, remaining/len(c.ready))
		still := c.ready[:0]
		for _, p := range c.ready {
			if remaining > 0 {
				got, err := c.readPartition(it, p, min(share, remaining), &recs)
				if err != nil {
					return nil, err
				}
				remaining -= got
			}
			if c.next[p] < c.hwm[p] {
				still = append(still, p)
			}
		}
		c.ready = still
	}

	// One allocation holds every key and value of the Fetch; the caller owns it.
	buf := make([]byte, len(c.arena))
	copy(buf, c.arena)
	if cap(c.arena) > maxRetainedArena {
		c.arena = nil // a Fetch of large records should not pin their size for good
	}
	for i := range recs {
		s := c.spans[i]
		recs[i].Key = buf[s.k0:s.k1:s.k1]
		recs[i].Value = buf[s.k1:s.v1:s.v1]
	}
	copy(c.pos, c.next)
	return recs, nil
}

// readPartition appends up to take records of partition p from c.next[p] (below c.hwm[p]).
func (c *consumer) readPartition(it *pebble.Iterator, p, take int, recs *[]buffer.Record) (int, error) {
	t := c.t
	expect, hwm := c.next[p], c.hwm[p]
	// Loaded after the iterator was created: if the iterator misses records because cleanup
	// deleted them, low already says so.
	low := t.parts[p].low.Load()
	c.keyBuf = appendRecordKey(c.keyBuf[:0], t.prefix, p, expect)
	got := 0
	for valid := it.SeekGE(c.keyBuf); got < take && expect < hwm; valid = it.Next() {
		if !valid {
			return got, c.missing(it, p, expect, hwm)
		}
		key := it.Key()
		kp, off, ok := parseRecordKey(key, t.prefix)
		if !ok || kp != p {
			return got, c.missing(it, p, expect, hwm)
		}
		if off != expect {
			if got > 0 || expect >= low || off > low {
				return got, c.missing(it, p, expect, hwm)
			}
			expect = off // the records before were cleaned up
			if expect >= hwm {
				break
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return got, c.readErr(p, off, err)
		}
		mk, mv, err := decodeRecordValue(key, v)
		if err != nil {
			return got, fmt.Errorf("embedded: record %s/%d@%d: %w: %w", t.name, p, off, buffer.ErrCorrupt, err)
		}
		k0 := len(c.arena)
		c.arena = append(c.arena, mk...)
		k1 := len(c.arena)
		c.arena = append(c.arena, mv...)
		c.spans = append(c.spans, span{k0: k0, k1: k1, v1: len(c.arena)})
		*recs = append(*recs, buffer.Record{Topic: t.name, Partition: p, Offset: off})
		expect++
		got++
	}
	c.next[p] = expect
	return got, nil
}

// missing reports that records below the durable end are not in the store.
func (c *consumer) missing(it *pebble.Iterator, p int, expect, hwm uint64) error {
	if err := it.Error(); err != nil {
		return c.readErr(p, expect, err)
	}
	return fmt.Errorf("embedded: records %s/%d@%d..%d are missing: %w", c.t.name, p, expect, hwm, buffer.ErrCorrupt)
}

func (c *consumer) readErr(p int, off uint64, err error) error {
	if pebble.IsCorruptionError(err) {
		return fmt.Errorf("embedded: record %s/%d@%d: %w: %w", c.t.name, p, off, buffer.ErrCorrupt, err)
	}
	return fmt.Errorf("embedded: record %s/%d@%d: %w", c.t.name, p, off, err)
}

// Commit stores the group's offset for partition without an fsync (see the package comment: the
// next group commit makes it durable). next may not pass the partition's durable end.
func (c *consumer) Commit(ctx context.Context, partition int, next uint64) error {
	if c.closed.Load() {
		return buffer.ErrClosed
	}
	t := c.t
	if partition < 0 || partition >= len(c.owned) || !c.owned[partition] {
		// Another consumer of the group may own it: a commit here would move its offset.
		return fmt.Errorf("embedded: commit %q: partition %d is not one of this consumer's %v", t.name, partition, c.parts)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: commit %s/%d: %w", t.name, partition, err)
	}
	if hwm := t.parts[partition].hwm.Load(); next > hwm {
		return fmt.Errorf("embedded: commit %s/%d: offset %d is past the end %d", t.name, partition, next, hwm)
	}
	l := c.l
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.closed.Load() {
		return buffer.ErrClosed
	}
	c.commitKey = appendOffsetKey(c.commitKey[:0], t.name, c.groupName, partition)
	c.commitVal = encodeOffsetValue(c.commitVal[:0], c.commitKey, next)
	b := l.db.NewBatch()
	defer b.Close()
	if err := b.Set(c.commitKey, c.commitVal, nil); err != nil {
		return fmt.Errorf("embedded: commit %s/%d: %w", t.name, partition, err)
	}
	if err := l.apply(b, pebble.NoSync); err != nil {
		return fmt.Errorf("embedded: commit %s/%d: %w", t.name, partition, err)
	}
	// After the write: cleanup, which reads this, then deletes only what the WAL has committed.
	c.g.committed[partition].Store(next)
	return nil
}

// Close stops the consumer and wakes a blocked Fetch; it does not commit. It is idempotent.
func (c *consumer) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.done)
	})
	return nil
}

var _ buffer.Consumer = (*consumer)(nil)
