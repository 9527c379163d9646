// Package sqlsink writes messages into SQLite and PostgreSQL tables, batched and idempotent.
//
// A DB is one database (one DSN) shared by every table that lives in it; a Table maps messages
// to rows: the envelope goes into standard columns (id, client, type, msg_key, payload,
// received_at, written_at) and configured columns are extracted from the payload with JSON
// pointers. Each Write is one transaction of multi-row upserts keyed by the table's upsert key
// (client and id by default), so a redelivered message leaves exactly one row and the last
// payload wins.
//
// SQLite runs in WAL mode with synchronous=FULL on a single writer connection: a Write that
// returned nil survives a crash. PostgreSQL gets the whole batch as one array per column
// (INSERT ... SELECT FROM unnest(...)), so one round trip writes hundreds of rows and the
// parameter count does not grow with the batch.
//
// Errors follow package fault: data that the table refuses (a payload value that does not fit
// its column, a constraint violation, a schema that does not match) is permanent; a busy,
// locked or unreachable database is transient.
package sqlsink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weirhq/weir/internal/sink"
)

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("sqlsink: closed")

// ErrInvalidConfig is wrapped by every error that reports a bad DSN or TableConfig.
var ErrInvalidConfig = errors.New("sqlsink: invalid config")

// MessageError says which message of a batch could not be turned into a row (a payload that is
// not JSON, a value that does not fit its column, a null upsert key). It is always wrapped in
// fault.Permanent.
type MessageError struct {
	Index int    // position in the slice passed to Write
	ID    string // the message's id
	Err   error
}

func (e *MessageError) Error() string {
	return fmt.Sprintf("sqlsink: message %d (id %q): %v", e.Index, e.ID, e.Err)
}

func (e *MessageError) Unwrap() error { return e.Err }

// DB is one SQLite or PostgreSQL database shared by several tables. It is safe for concurrent
// use.
type DB struct {
	b      backend
	closed atomic.Bool

	mu      sync.Mutex
	writers []writer
}

// backend is what differs between the databases.
type backend interface {
	// table creates t if asked and prepares what writing to it needs.
	table(ctx context.Context, t *Table) (writer, error)
	close() error
}

// writer writes rows to one table. Rows arrive deduplicated by upsert key and sorted by it, so
// concurrent writers lock rows in the same order.
type writer interface {
	write(ctx context.Context, rows []row) error
	close() error
}

// Open connects to the database named by dsn:
//
//   - sqlite:PATH, sqlite://PATH, file:PATH?... or a PATH ending in .db: a SQLite file (created
//     if missing) in WAL mode with synchronous=FULL, a busy timeout and one writer connection.
//     Query parameters of a file: DSN are passed to the driver and win over these defaults.
//   - postgres://... or postgresql://...: PostgreSQL through pgx. The extra parameter
//     pool_max_conns bounds the connections (default: the number of CPUs, at least 4).
//
// Open checks that the database answers before it returns.
func Open(ctx context.Context, dsn string) (*DB, error) {
	var (
		b   backend
		err error
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		b, err = openPostgres(ctx, dsn)
	default:
		name, ok := sqliteName(dsn)
		if !ok {
			return nil, fmt.Errorf("%w: dsn is neither sqlite:, file:, *.db nor postgres://", ErrInvalidConfig)
		}
		b, err = openSQLite(ctx, name)
	}
	if err != nil {
		return nil, err
	}
	return &DB{b: b}, nil
}

// Table returns a writer for the table described by cfg, creating the table unless
// cfg.NoCreate is set. Several Tables of one DB may be used concurrently.
func (db *DB) Table(ctx context.Context, cfg TableConfig) (*Table, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	t, err := newTable(db, cfg)
	if err != nil {
		return nil, err
	}
	w, err := db.b.table(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("sqlsink: table %s: %w", t.name, err)
	}
	t.w = w
	db.mu.Lock()
	db.writers = append(db.writers, w)
	db.mu.Unlock()
	return t, nil
}

// Close releases the database. Writes must have returned before Close is called; later calls
// fail with ErrClosed.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	db.mu.Lock()
	ws := db.writers
	db.writers = nil
	db.mu.Unlock()
	var errs []error
	for _, w := range ws {
		errs = append(errs, w.close())
	}
	errs = append(errs, db.b.close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlsink: close: %w", err)
	}
	return nil
}

var (
	_ sink.Sink     = (*Table)(nil)
	_ sink.Isolator = (*Table)(nil)
)
