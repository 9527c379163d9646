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
	*embedded.Log // the state database (its log key space stays empty)
	Buffer        buffer.Buffer
}

// AppendWith appends msgs to the buffer, then writes side to the state database.
func (e External) AppendWith(ctx context.Context, topic string, msgs []buffer.Message, side []embedded.KV) error {
	if len(msgs) > 0 {
		if err := e.Buffer.Append(ctx, topic, msgs); err != nil {
			return err
		}
	}
	return writeKVs(e.Log, side, true)
}

var _ DB = External{}
