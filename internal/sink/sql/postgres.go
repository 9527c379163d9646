package sqlsink

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/pgpool"
)

// pgMaxChunk bounds the rows of one statement. The parameter count does not depend on it (one
// array per column); it only keeps a single protocol message to a few megabytes. Larger
// batches go as several statements in one transaction and one round trip.
const pgMaxChunk = 8192

// pgDDLLock is the advisory lock key that serialises CREATE SCHEMA/TABLE IF NOT EXISTS between
// processes: two concurrent creations of the same table would otherwise collide on the
// catalog's unique index.
const pgDDLLock int64 = 0x5765697253696e6b // "WeirSink"

type pgBackend struct {
	pool *pgpool.Pool
}

func openPostgres(ctx context.Context, dsn string) (*pgBackend, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// url.Parse quotes the input, password included: say less.
		return nil, fmt.Errorf("%w: postgres dsn is not a URL", ErrInvalidConfig)
	}
	maxConns := max(4, runtime.NumCPU())
	q := u.Query()
	if v := q.Get("pool_max_conns"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: pool_max_conns=%q: want a positive integer", ErrInvalidConfig, v)
		}
		maxConns = n
		q.Del("pool_max_conns")
		u.RawQuery = q.Encode()
	}
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("%w: postgres dsn: %w", ErrInvalidConfig, err)
	}
	p := pgpool.New(cfg, maxConns)
	c, err := p.Acquire(ctx)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("sqlsink: connect to postgres: %w", err)
	}
	p.Release(c)
	return &pgBackend{pool: p}, nil
}

func (b *pgBackend) close() error {
	b.pool.Close()
	return nil
}

var pgTypes = map[ColumnType]string{
	Text: "text", Integer: "bigint", Numeric: "numeric", Boolean: "boolean", Timestamp: "timestamptz", JSON: "jsonb",
}

func (b *pgBackend) table(ctx context.Context, t *Table) (writer, error) {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer b.pool.Release(conn)
	if !t.noCreate {
		if err := pgCreate(ctx, conn, t); err != nil {
			return nil, classifyPG(err)
		}
	}
	sql := pgInsert(t)
	// Preparing checks now what every write would otherwise find out: that the table, its
	// columns and a unique index on the upsert key exist.
	if _, err := conn.PgConn().Prepare(ctx, "", sql, nil); err != nil {
		return nil, classifyPG(err)
	}
	return &pgWriter{pool: b.pool, sql: sql, cols: t.cols}, nil
}

func pgCreate(ctx context.Context, conn *pgx.Conn, t *Table) error {
	var ddl strings.Builder
	fmt.Fprintf(&ddl, "CREATE TABLE IF NOT EXISTS %s (", t.name)
	for i, s := range standardNames {
		typ := "text"
		switch i {
		case colPayload:
			typ = "jsonb"
		case colReceivedAt, colWrittenAt:
			typ = "timestamptz"
		}
		fmt.Fprintf(&ddl, "%s %s NOT NULL, ", quote(s), typ)
	}
	for i, c := range t.cols {
		fmt.Fprintf(&ddl, "%s %s", quote(c.Name), pgTypes[c.Type])
		if t.isKey(numStandard + i) {
			ddl.WriteString(" NOT NULL")
		}
		ddl.WriteString(", ")
	}
	fmt.Fprintf(&ddl, "PRIMARY KEY (%s))", t.keyList())

	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", pgDDLLock); err != nil {
			return err
		}
		if t.schema != "" {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quote(t.schema)); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, ddl.String())
		return err
	})
}

// pgInsert builds the upsert: one array parameter per column, unnested into rows. Payload and
// extracted values travel as text and are cast in SQL; written_at is the transaction time.
func pgInsert(t *Table) string {
	var sel, params, alias []string
	for i := range numStandard - 1 { // every standard column but written_at
		p := "p" + strconv.Itoa(i+1)
		typ := "text"
		switch i {
		case colPayload:
			sel = append(sel, "u."+p+"::jsonb")
		case colReceivedAt:
			typ = "timestamptz"
			sel = append(sel, "u."+p)
		default:
			sel = append(sel, "u."+p)
		}
		params = append(params, fmt.Sprintf("$%d::%s[]", i+1, typ))
		alias = append(alias, p)
	}
	sel = append(sel, "now()")
	for i, c := range t.cols {
		n := numStandard + i // written_at has no parameter
		p := "p" + strconv.Itoa(n)
		if c.Type == Text {
			sel = append(sel, "u."+p)
		} else {
			sel = append(sel, "u."+p+"::"+pgTypes[c.Type])
		}
		params = append(params, fmt.Sprintf("$%d::text[]", n))
		alias = append(alias, p)
	}
	return fmt.Sprintf("INSERT INTO %s AS "+rowAlias+" (%s) SELECT %s FROM unnest(%s) AS u(%s)%s",
		t.name, t.columnList(), strings.Join(sel, ", "), strings.Join(params, ", "),
		strings.Join(alias, ", "), t.onConflict())
}

type pgWriter struct {
	pool *pgpool.Pool
	sql  string
	cols []column
}

func (w *pgWriter) write(ctx context.Context, rows []row) error {
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer w.pool.Release(conn)
	if len(rows) <= pgMaxChunk {
		// One statement is atomic on its own: no BEGIN/COMMIT round trips.
		_, err := conn.Exec(ctx, w.sql, w.args(rows)...)
		return classifyPG(err)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var b pgx.Batch
		for len(rows) > 0 {
			n := min(len(rows), pgMaxChunk)
			b.Queue(w.sql, w.args(rows[:n])...)
			rows = rows[n:]
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	return classifyPG(err)
}

// args returns one array per column.
func (w *pgWriter) args(rows []row) []any {
	var (
		ids      = make([]string, len(rows))
		clients  = make([]string, len(rows))
		types    = make([]string, len(rows))
		keys     = make([]string, len(rows))
		payloads = make([]string, len(rows))
		received = make([]time.Time, len(rows))
		vals     = make([][]pgtype.Text, len(w.cols))
	)
	for c := range vals {
		vals[c] = make([]pgtype.Text, len(rows))
	}
	for i := range rows {
		m := rows[i].msg
		ids[i], clients[i], types[i], keys[i] = m.ID, m.Client, m.Type, m.Key
		payloads[i] = string(m.Payload)
		received[i] = m.ReceivedAt
		for c, v := range rows[i].vals {
			vals[c][i] = pgText(v)
		}
	}
	args := make([]any, 0, numStandard-1+len(w.cols))
	args = append(args, ids, clients, types, keys, payloads, received)
	for _, v := range vals {
		args = append(args, v)
	}
	return args
}

func pgText(v any) pgtype.Text {
	switch v := v.(type) {
	case nil:
		return pgtype.Text{}
	case string:
		return pgtype.Text{String: v, Valid: true}
	case int64:
		return pgtype.Text{String: strconv.FormatInt(v, 10), Valid: true}
	case bool:
		return pgtype.Text{String: strconv.FormatBool(v), Valid: true}
	case time.Time:
		return pgtype.Text{String: v.Format(time.RFC3339Nano), Valid: true}
	}
	panic(fmt.Sprintf("sqlsink: unexpected value type %T", v))
}

func (w *pgWriter) close() error { return nil }

// classifyPG marks errors that the data or the schema causes as permanent, by SQLSTATE class:
// 22 data exception, 23 integrity constraint violation, 42 syntax error or access rule
// violation (missing table or column, type mismatch with an existing table), 54 program limit
// exceeded (e.g. a key too large for its index), 0A feature not supported. Connection
// failures, 40 (serialization failure, deadlock), 53 (resources), 55 (lock not available), 57
// (shutdown, cancel), 58 and anything unknown stay transient.
func classifyPG(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && len(pe.Code) == 5 {
		switch pe.Code[:2] {
		case "22", "23", "42", "54", "0A":
			return fault.Permanent(err)
		}
	}
	return err
}
