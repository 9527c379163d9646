package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/weirhq/weir/internal/buffer"
)

// appendReq is one Append waiting for the writer. Requests are pooled: the hot path allocates
// nothing per call.
type appendReq struct {
	topic *topic
	msgs  []buffer.Message
	side  []KV // written in the same batch (AppendWith)
	size  int  // encoded bytes, for MaxBatchBytes
	// encoded is set by the writer, under qmu, when it takes the request; it is closed once msgs
	// are copied into the batch, so that an abandoned caller knows when msgs are no longer read.
	encoded chan struct{}
	// done receives the outcome, exactly once.
	done chan error
}

var reqPool = sync.Pool{New: func() any { return &appendReq{done: make(chan error, 1)} }}

func (r *appendReq) release() {
	r.topic, r.msgs, r.side, r.size, r.encoded = nil, nil, nil, 0, nil
	reqPool.Put(r)
}

// closedChan stands for "already encoded" when the writer fails requests without encoding them.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Append writes msgs to topic and returns once they are fsync'd. Each message goes to partition
// buffer.Partition(key, n); the messages of one call get increasing offsets in their partitions,
// and a later call (after this one returned) gets later offsets.
//
// If ctx ends first, Append returns its error, but the messages may still be written: the caller
// must not acknowledge them, and a retry may duplicate them (at-least-once). Append does not read
// msgs after it returns.
func (l *Log) Append(ctx context.Context, topicName string, msgs []buffer.Message) error {
	return l.AppendWith(ctx, topicName, msgs, nil)
}

// KV is a key and value that AppendWith writes beside the records, or with Delete a key it
// removes in the same batch.
type KV struct {
	Key, Value []byte
	Delete     bool
}

// AppendWith is Append with side writes: side's keys (which must lie outside the log's own
// prefixes, see PrefixRecords) are written in the same batch as the records, so they become
// durable with the same fsync, atomically. The state store uses it to record dedup receipts and
// status events together with the messages they describe, at no extra commit.
func (l *Log) AppendWith(ctx context.Context, topicName string, msgs []buffer.Message, side []KV) error {
	if l.closed.Load() {
		return buffer.ErrClosed
	}
	t := l.lookup(topicName)
	if t == nil {
		return fmt.Errorf("embedded: append to %q: %w", topicName, ErrUnknownTopic)
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("embedded: append to %q: %w", topicName, err)
	}
	size := 0
	for i := range msgs {
		size += len(t.prefix) + 12 + recordValueLen(&msgs[i])
	}
	for i := range side {
		size += len(side[i].Key) + len(side[i].Value) + 8
	}
	r := reqPool.Get().(*appendReq)
	r.topic, r.msgs, r.side, r.size = t, msgs, side, size

	l.qmu.Lock()
	if l.closing {
		l.qmu.Unlock()
		r.release()
		return buffer.ErrClosed
	}
	if p := l.poisoned.Load(); p != nil {
		l.qmu.Unlock()
		r.release()
		return *p
	}
	l.queue = append(l.queue, r)
	l.qcond.Signal()
	l.qmu.Unlock()

	select {
	case err := <-r.done:
		r.release()
		return err
	case <-ctx.Done():
		return l.abandon(ctx, r)
	}
}

// abandon handles an Append whose ctx ended while it waited for the writer.
func (l *Log) abandon(ctx context.Context, r *appendReq) error {
	ctxErr := fmt.Errorf("embedded: append to %q: %w", r.topic.name, ctx.Err())
	l.qmu.Lock()
	if r.encoded == nil {
		// Still queued: the writer never saw it.
		if i := slices.Index(l.queue, r); i >= 0 {
			l.queue = slices.Delete(l.queue, i, i+1)
		}
		l.qmu.Unlock()
		r.release()
		return ctxErr
	}
	encoded := r.encoded
	l.qmu.Unlock()
	// The writer has it: wait until it no longer reads msgs (the caller may reuse them), which
	// takes no I/O. The request is not pooled, because the writer will still send its outcome.
	<-encoded
	select {
	case err := <-r.done:
		r.release()
		return err
	default:
		return ctxErr
	}
}

// pipelineDepth is how many groups may be written to the WAL and waiting for their fsync at
// once. Two lets the writer encode and write group N+1 while group N's fsync runs; Pebble's WAL
// then syncs N+1 (and whatever else was written meanwhile) right after N.
const pipelineDepth = 2

// inflight is a group between the writer and the syncer.
type inflight struct {
	b      *pebble.Batch
	grp    []*appendReq
	ends   []partitionEnd // each partition's next offset once the group is durable
	topics []*topic
	err    error // the group failed before its fsync
}

type partitionEnd struct {
	p    *partition
	next uint64
}

// runWriter is the first stage of the group commit: it takes the queued appends, assigns their
// offsets, and writes them to the WAL and memtable in one batch without waiting for the fsync,
// then hands the group to runSyncer. It waits for a free slot (at most pipelineDepth groups in
// flight) before taking a group, so the group grows while earlier fsyncs run.
func (l *Log) runWriter() {
	defer l.wg.Done()
	defer close(l.syncq)
	for {
		l.qmu.Lock()
		for len(l.queue) == 0 && !l.closing {
			l.qcond.Wait()
		}
		if l.closing {
			l.failQueueLocked()
			return
		}
		l.qmu.Unlock()

		f := <-l.free

		l.qmu.Lock()
		if l.closing {
			l.failQueueLocked()
			return
		}
		if len(l.queue) == 0 { // abandoned meanwhile
			l.qmu.Unlock()
			l.free <- f
			continue
		}
		k, size := 0, 0
		for k < len(l.queue) && (k == 0 || size+l.queue[k].size <= l.cfg.MaxBatchBytes) {
			size += l.queue[k].size
			k++
		}
		f.grp = append(f.grp[:0], l.queue[:k]...)
		n := copy(l.queue, l.queue[k:])
		clear(l.queue[n:])
		l.queue = l.queue[:n]
		encoded := make(chan struct{})
		for _, r := range f.grp {
			r.encoded = encoded
		}
		l.qmu.Unlock()

		l.writeGroup(f, size, encoded)
		l.syncq <- f
	}
}

// failQueueLocked fails every queued append with ErrClosed; qmu is held and is released.
func (l *Log) failQueueLocked() {
	q := l.queue
	l.queue = nil
	for _, r := range q {
		r.encoded = closedChan
	}
	l.qmu.Unlock()
	for _, r := range q {
		r.done <- buffer.ErrClosed
	}
}

// writeGroup encodes f.grp into one batch and writes it to the WAL and memtable, without waiting
// for the fsync (runSyncer does). The offsets it assigns stay invisible to consumers until then.
func (l *Log) writeGroup(f *inflight, size int, encoded chan struct{}) {
	if p := l.poisoned.Load(); p != nil {
		close(encoded)
		f.err = *p
		return
	}
	b := l.db.NewBatchWithSize(size + 64*len(f.grp))
	for _, r := range f.grp {
		t := r.topic
		if !t.dirty {
			t.dirty = true
			f.topics = append(f.topics, t)
		}
		n := len(t.parts)
		for i := range r.msgs {
			m := &r.msgs[i]
			p := buffer.Partition(m.Key, n)
			ps := &t.parts[p]
			off := ps.next
			ps.next++
			if !ps.dirty {
				ps.dirty = true
				l.dirtyParts = append(l.dirtyParts, ps)
			}
			op := b.SetDeferred(len(t.prefix)+12, recordValueLen(m))
			k := copy(op.Key, t.prefix)
			binary.BigEndian.PutUint32(op.Key[k:], uint32(p))
			binary.BigEndian.PutUint64(op.Key[k+4:], off)
			encodeRecordValue(op.Value, op.Key, m)
			// Finish only indexes the op; a write-only batch has no index and cannot fail.
			_ = op.Finish()
		}
		for _, kv := range r.side {
			// A write-only batch's Set and Delete copy and cannot fail.
			if kv.Delete {
				_ = b.Delete(kv.Key, nil)
			} else {
				_ = b.Set(kv.Key, kv.Value, nil)
			}
		}
	}
	close(encoded)
	for _, ps := range l.dirtyParts {
		ps.dirty = false
		f.ends = append(f.ends, partitionEnd{p: ps, next: ps.next})
	}
	clear(l.dirtyParts)
	l.dirtyParts = l.dirtyParts[:0]
	for _, t := range f.topics {
		t.dirty = false
	}
	if err := l.applyNoSyncWait(b); err != nil {
		f.err = err
		_ = b.Close()
		return
	}
	f.b = b
}

// applyNoSyncWait writes b to the WAL and memtable and requests its fsync without waiting for
// it; b.SyncWait reports the fsync. Pebble calls Logger.Fatalf if the write itself fails; see
// apply.
func (l *Log) applyNoSyncWait(b *pebble.Batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(*fatalError)
			if !ok {
				panic(r)
			}
			err = l.poison(fe)
		}
	}()
	if err := l.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		return l.poison(err)
	}
	return nil
}

// runSyncer is the second stage: in order, it waits for each group's fsync, publishes the new
// offsets to consumers, and answers the appends. A failed fsync poisons the log.
func (l *Log) runSyncer() {
	defer l.wg.Done()
	for f := range l.syncq {
		err := f.err
		if f.b != nil {
			if serr := f.b.SyncWait(); serr != nil {
				_ = l.poison(serr)
			}
			_ = f.b.Close()
			f.b = nil
		}
		// Once the log is poisoned, by this group or any earlier write, nothing more is
		// acknowledged, even a group whose own fsync succeeded (it may follow lost data, e.g.
		// in a new WAL file after a failed one).
		if p := l.poisoned.Load(); p != nil {
			err = *p
		}
		if err == nil {
			// Durable: publish in order, partitions first, then wake the topics' consumers.
			for _, e := range f.ends {
				e.p.hwm.Store(e.next)
			}
			for _, t := range f.topics {
				old := t.notify.Swap(&notifier{ch: make(chan struct{})})
				close(old.ch)
			}
		} else {
			err = fmt.Errorf("embedded: append: %w", err)
		}
		for i, r := range f.grp {
			f.grp[i] = nil
			r.done <- err
		}
		f.grp, f.err = f.grp[:0], nil
		clear(f.ends)
		clear(f.topics)
		f.ends, f.topics = f.ends[:0], f.topics[:0]
		l.free <- f
	}
}
