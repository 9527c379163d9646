package sqlsink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"net/url"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/weirhq/weir/internal/fault"
)

// sqliteMaxVars is SQLITE_MAX_VARIABLE_NUMBER's default since SQLite 3.32.
const sqliteMaxVars = 32766

// sqliteMaxChunk bounds the rows of one INSERT. Every table keeps its statements prepared
// (about 0.7 MB for 256 rows of ten columns, 2.5 MB at 1024), and rows beyond a few hundred
// per statement do not make writing faster.
const sqliteMaxChunk = 256

// sqliteTimeFormat keeps timestamps sortable as text and readable by SQLite's date functions,
// at PostgreSQL's microsecond precision.
const sqliteTimeFormat = "2006-01-02T15:04:05.000000Z"

// sqliteName turns a DSN into a name for the modernc driver: a file: URI carrying the
// durability settings, or false when dsn does not name SQLite.
func sqliteName(dsn string) (string, bool) {
	var path string
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		path = strings.TrimPrefix(dsn, "sqlite://")
	case strings.HasPrefix(dsn, "sqlite:"):
		path = strings.TrimPrefix(dsn, "sqlite:")
	case strings.HasPrefix(dsn, "file:"):
		return withSQLiteDefaults(dsn), true
	case strings.HasSuffix(dsn, ".db"):
		path = dsn
	default:
		return "", false
	}
	if path == "" {
		return "", false
	}
	// As a URI, so that a ? or # in the path is not read as a query or fragment.
	u := url.URL{Path: path}
	return withSQLiteDefaults("file:" + u.EscapedPath()), true
}

// withSQLiteDefaults adds the settings Weir relies on to a file: URI, unless its query sets
// them already:
//   - WAL: readers never block the writer, one fsync per commit;
//   - synchronous=FULL: in WAL mode NORMAL may lose the last commits on power loss, and a Write
//     that returned nil must survive;
//   - busy_timeout: wait for another process's write lock instead of failing at once;
//   - _txlock=immediate: take the write lock at BEGIN, so a transaction never fails halfway
//     when upgrading from a read lock.
func withSQLiteDefaults(name string) string {
	query := ""
	if i := strings.IndexByte(name, '?'); i >= 0 {
		query = name[i+1:]
	}
	var add []string
	for _, p := range [][2]string{
		{"journal_mode", "_pragma=journal_mode(WAL)"},
		{"synchronous", "_pragma=synchronous(FULL)"},
		{"busy_timeout", "_pragma=busy_timeout(10000)"},
		{"_txlock", "_txlock=immediate"},
	} {
		if !strings.Contains(query, p[0]) {
			add = append(add, p[1])
		}
	}
	if len(add) == 0 {
		return name
	}
	sep := "?"
	if strings.Contains(name, "?") {
		sep = "&"
	}
	return name + sep + strings.Join(add, "&")
}

type sqliteBackend struct {
	db *sql.DB
}

func openSQLite(ctx context.Context, name string) (*sqliteBackend, error) {
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, fmt.Errorf("sqlsink: open sqlite: %w", err)
	}
	// One connection: SQLite has one writer anyway, and a single connection queues writers in
	// Go instead of making them spin on the file lock.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlsink: open sqlite: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		db.Close()
		return nil, fmt.Errorf("%w: sqlite journal_mode is %q, want wal", ErrInvalidConfig, mode)
	}
	return &sqliteBackend{db: db}, nil
}

func (b *sqliteBackend) close() error { return b.db.Close() }

var sqliteTypes = map[ColumnType]string{
	Text: "TEXT", Integer: "INTEGER", Numeric: "NUMERIC", Boolean: "INTEGER", Timestamp: "TEXT", JSON: "TEXT",
}

func (b *sqliteBackend) table(ctx context.Context, t *Table) (writer, error) {
	if !t.noCreate {
		var ddl strings.Builder
		fmt.Fprintf(&ddl, "CREATE TABLE IF NOT EXISTS %s (", t.name)
		for _, s := range standardNames {
			fmt.Fprintf(&ddl, "%s TEXT NOT NULL, ", quote(s))
		}
		for i, c := range t.cols {
			fmt.Fprintf(&ddl, "%s %s", quote(c.Name), sqliteTypes[c.Type])
			if t.isKey(numStandard + i) {
				ddl.WriteString(" NOT NULL")
			}
			ddl.WriteString(", ")
		}
		fmt.Fprintf(&ddl, "PRIMARY KEY (%s))", t.keyList())
		if _, err := b.db.ExecContext(ctx, ddl.String()); err != nil {
			return nil, classifySQLite(err)
		}
	}
	w := &sqliteWriter{db: b.db, perRow: numStandard + len(t.cols)}
	// Chunks are powers of two, so a table needs at most a dozen statements, all prepared now:
	// preparing inside a transaction would wait for the one connection the transaction holds.
	w.maxChunk = min(sqliteMaxChunk, sqliteMaxVars/w.perRow)
	w.maxChunk = 1 << (bits.Len(uint(w.maxChunk)) - 1)
	for n := 1; n <= w.maxChunk; n *= 2 {
		stmt, err := b.db.PrepareContext(ctx, sqliteInsert(t, n))
		if err != nil {
			w.close()
			return nil, classifySQLite(err)
		}
		w.stmts = append(w.stmts, stmt)
	}
	return w, nil
}

// sqliteInsert builds the upsert of n rows. Parameters are anonymous (?): the driver looks up
// every parameter's name when binding, and with numbered ones (?NNN) that lookup is linear, so
// a large statement would spend its time there.
func sqliteInsert(t *Table, n int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "INSERT INTO %s AS "+rowAlias+" (%s) VALUES ", t.name, t.columnList())
	tuple := "(" + strings.Repeat("?,", numStandard+len(t.cols)-1) + "?)"
	for r := range n {
		if r > 0 {
			s.WriteByte(',')
		}
		s.WriteString(tuple)
	}
	s.WriteString(t.onConflict())
	return s.String()
}

type sqliteWriter struct {
	db       *sql.DB
	perRow   int         // bound parameters per row
	maxChunk int         // power of two
	stmts    []*sql.Stmt // stmts[i] inserts 1<<i rows
}

func (w *sqliteWriter) write(ctx context.Context, rows []row) error {
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return classifySQLite(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	args := make([]any, 0, min(len(rows), w.maxChunk)*w.perRow)
	now := time.Now().UTC().Format(sqliteTimeFormat)
	for len(rows) > 0 {
		// The largest power of two that fits: 300 rows go as 256+32+8+4.
		n := 1 << (bits.Len(uint(min(len(rows), w.maxChunk))) - 1)
		args = args[:0]
		for i := range rows[:n] {
			args = appendSQLiteArgs(args, &rows[i], now)
		}
		stmt := tx.StmtContext(ctx, w.stmts[bits.TrailingZeros(uint(n))])
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return classifySQLite(err)
		}
		rows = rows[n:]
	}
	if err := tx.Commit(); err != nil {
		return classifySQLite(err)
	}
	return nil
}

// appendSQLiteArgs binds r in column order; writtenAt is the same for every row of a Write.
func appendSQLiteArgs(args []any, r *row, writtenAt string) []any {
	m := r.msg
	args = append(args, m.ID, m.Client, m.Type, m.Key, string(m.Payload),
		m.ReceivedAt.UTC().Format(sqliteTimeFormat), writtenAt)
	for _, v := range r.vals {
		switch v := v.(type) {
		case bool:
			if v {
				args = append(args, int64(1))
			} else {
				args = append(args, int64(0))
			}
		case time.Time:
			args = append(args, v.Format(sqliteTimeFormat))
		default:
			args = append(args, v)
		}
	}
	return args
}

func (w *sqliteWriter) close() error {
	var errs []error
	for _, s := range w.stmts {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// classifySQLite marks errors that the data or the schema causes as permanent: constraint
// violations, type mismatches, values too big, and SQLITE_ERROR (no such table or column,
// SQL the schema does not support). Busy, locked, I/O, full disk and the rest stay transient.
func classifySQLite(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG,
			sqlite3.SQLITE_RANGE, sqlite3.SQLITE_ERROR:
			return fault.Permanent(err)
		}
	}
	return err
}
