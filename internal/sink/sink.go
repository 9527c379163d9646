// Package sink defines what the persist stage writes to: a destination that stores a batch of
// messages idempotently, so that a redelivered batch leaves the same rows as a single delivery.
//
// Implementations live in sub-packages (sql: SQLite and PostgreSQL tables). The persist stage
// owns the batching and the retries; a sink only writes and says, through package fault, whether
// a failure is worth another attempt.
package sink

import (
	"context"

	"github.com/weirhq/weir/internal/message"
)

// Sink stores batches of messages. Write is called by the persist stage from any number of
// goroutines at once, so implementations must be safe for concurrent use.
type Sink interface {
	// Write stores msgs durably, all or nothing: when it returns nil every message is stored and
	// survives a crash; when it returns an error none is. Writing a message again (same upsert
	// key) replaces its row, so redelivery has no double effect. Errors are transient unless
	// marked with fault.Permanent.
	Write(ctx context.Context, msgs []message.Message) error
}

// Isolator is an optional capability of a Sink, found by type assertion: after Write failed
// permanently, WriteEach stores every message it can and reports which ones it could not, so that
// one bad message does not send a whole batch to the dead letters.
type Isolator interface {
	// WriteEach returns one error per message, in the order of msgs: nil when that message is
	// stored. It is safe for concurrent use, like Write.
	WriteEach(ctx context.Context, msgs []message.Message) []error
}
