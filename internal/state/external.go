package state

import (
	"context"

	"github.com/cockroachdb/pebble/v2"

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
	*embedded.Log // the state database (its log key space stays empty)
	Buffer        buffer.Buffer
}

// Apply writes a state batch synced, whatever the caller asked. Beside the embedded log an
// unsynced write is safe because the log's WAL orders it before the stage commit that relies on
// it; here the commit goes to the broker, so a state write a commit relies on (a run's transient
// outcome, a retry entry) must be on disk first. Concurrent syncs share fsyncs
// (embedded.min_sync_interval).
func (e External) Apply(b *pebble.Batch, _ bool) error { return e.Log.Apply(b, true) }

// AppendWith appends msgs to the buffer, then writes side to the state database.
func (e External) AppendWith(ctx context.Context, topic string, msgs []buffer.Message, side []embedded.KV) error {
	if len(msgs) > 0 {
		if err := e.Buffer.Append(ctx, topic, msgs); err != nil {
			return err
		}
	}
	return PebbleSpace(e).Write(ctx, Batch{Ops: kvOps(side), Sync: true})
}

var _ DB = External{}

func kvOps(kvs []embedded.KV) []Op {
	ops := make([]Op, len(kvs))
	for i, kv := range kvs {
		ops[i] = Op{Key: kv.Key, Value: kv.Value, Delete: kv.Delete}
	}
	return ops
}
