package state

import (
	"context"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
)

// External is the state store's database beside an external buffer (NATS JetStream, Kafka): the
// state lives in its own Pebble database (an embedded log opened for its key space only) and
// appends go to the buffer.
//
// An append and its side writes (a message and its dedup receipt, a re-injected retry and the
// deletion of its entry) can then no longer be one atomic batch: the append comes first and the
// side writes follow, synced, once the buffer acknowledged it. A crash in between leaves the
// append without its side writes — a message accepted again on a resend, a retry re-injected
// twice — never a receipt or a deleted retry without its message: a duplicate that the effects'
// idempotency (upserts by id, stable webhook ids, workflow idempotency keys) absorbs, never a
// loss.
type External struct {
	Log    *embedded.Log // the state database (its log key space stays empty)
	Buffer buffer.Buffer
}

func (e External) local() Space { return PebbleSpace(e.Log) }

// Shared: the database is this process's own.
func (e External) Shared() bool { return false }

// Get reads the state database.
func (e External) Get(key []byte) ([]byte, bool, error) { return e.local().Get(key) }

// Scan reads the state database.
func (e External) Scan(lower, upper []byte, fn func(key, value []byte) error) error {
	return e.local().Scan(lower, upper, fn)
}

// Write writes a state batch synced, whatever the caller asked. Beside the embedded log an
// unsynced write is safe because the log's WAL orders it before the stage commit that relies on
// it; here the commit goes to the broker, so a state write a commit relies on (a run's transient
// outcome, a retry entry) must be on disk first. Concurrent syncs share fsyncs
// (embedded.min_sync_interval).
func (e External) Write(ctx context.Context, w Batch) error {
	w.Sync = true
	return e.local().Write(ctx, w)
}

// AppendWith appends msgs to the buffer, then writes w to the state database.
func (e External) AppendWith(ctx context.Context, topic string, msgs []buffer.Message, w Batch) error {
	return appendThenWrite(ctx, e.Buffer, topic, msgs, w, e.Write)
}

// appendThenWrite is AppendWith beside an external buffer: the buffer's acknowledgement first,
// the state second (see External for why in that order).
func appendThenWrite(ctx context.Context, buf buffer.Buffer, topic string, msgs []buffer.Message, w Batch, write func(context.Context, Batch) error) error {
	if len(msgs) > 0 {
		if err := buf.Append(ctx, topic, msgs); err != nil {
			return err
		}
	}
	return write(ctx, w)
}

var _ Space = External{}
