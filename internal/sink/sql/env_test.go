package sqlsink

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/pgpool/pgtest"
)

// env is one real database for one test: a SQLite file in t.TempDir, or a fresh schema in the
// PostgreSQL on this machine, dropped when the test ends.
type env struct {
	name     string // "sqlite" or "postgres"
	db       *DB
	dsn      string
	schema   string // postgres only
	jsonType string // SQL types for tables a test creates itself
	tsType   string
}

// pgTestDSN is the PostgreSQL the tests use: WEIR_TEST_POSTGRES, or the local one.
func pgTestDSN() string { return pgtest.DSN() }

// conformance runs body against every backend. The bodies are the contract: a backend passes
// all of them or it is not done.
func conformance(t *testing.T, body func(t *testing.T, e *env)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		body(t, newSQLiteEnv(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		body(t, newPGEnv(t))
	})
}

func newSQLiteEnv(t testing.TB) *env {
	t.Helper()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "sink.db")
	db, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &env{name: "sqlite", db: db, dsn: dsn, jsonType: "TEXT", tsType: "TEXT"}
}

func newPGEnv(t testing.TB) *env {
	t.Helper()
	dsn := pgTestDSN()
	db, err := Open(t.Context(), dsn)
	if err != nil {
		t.Skipf("no PostgreSQL at WEIR_TEST_POSTGRES or %s: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{name: "postgres", db: db, dsn: dsn, schema: "weirtest_" + randHex(), jsonType: "jsonb", tsType: "timestamptz"}
	e.exec(t, "CREATE SCHEMA "+e.schema)
	// On its own connection: the test may have closed e.db.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		db, err := Open(ctx, dsn)
		if err != nil {
			t.Errorf("drop test schema: %v", err)
			return
		}
		defer db.Close()
		if err := (&env{db: db}).execCtx(ctx, "DROP SCHEMA "+e.schema+" CASCADE"); err != nil {
			t.Errorf("drop test schema: %v", err)
		}
	})
	return e
}

// lock makes another connection hold the write lock on table until unlock is called.
func (e *env) lock(t testing.TB, table string) (unlock func()) {
	t.Helper()
	switch b := e.db.b.(type) {
	case *sqliteBackend:
		raw, err := sql.Open("sqlite", "file:"+strings.TrimPrefix(e.dsn, "sqlite:"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := raw.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		return func() {
			c.ExecContext(t.Context(), "ROLLBACK")
			c.Close()
			raw.Close()
		}
	case *pgBackend:
		c, err := b.pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(t.Context(), "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(t.Context(), "LOCK TABLE "+quoteName(table)+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		return func() {
			c.Exec(t.Context(), "ROLLBACK")
			b.pool.Release(c)
		}
	}
	t.Fatalf("unknown backend %T", e.db.b)
	return nil
}

func randHex() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tableName qualifies base with the test's schema where there is one.
func (e *env) tableName(base string) string {
	if e.schema != "" {
		return e.schema + "." + base
	}
	return base
}

// table opens a table and fails the test if it cannot.
func (e *env) table(t testing.TB, cfg TableConfig) *Table {
	t.Helper()
	tbl, err := e.db.Table(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Table(%+v): %v", cfg, err)
	}
	return tbl
}

// open opens a second DB on the same database with extra DSN query parameters.
func (e *env) open(t testing.TB, params string) *DB {
	t.Helper()
	var dsn string
	switch e.name {
	case "sqlite":
		dsn = "file:" + strings.TrimPrefix(e.dsn, "sqlite:") + "?" + params
	default:
		sep := "?"
		if strings.Contains(e.dsn, "?") {
			sep = "&"
		}
		dsn = e.dsn + sep + params
	}
	db, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (e *env) exec(t testing.TB, q string) {
	t.Helper()
	if err := e.execCtx(t.Context(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (e *env) execCtx(ctx context.Context, q string) error {
	switch b := e.db.b.(type) {
	case *sqliteBackend:
		_, err := b.db.ExecContext(ctx, q)
		return err
	case *pgBackend:
		c, err := b.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer b.pool.Release(c)
		_, err = c.Exec(ctx, q)
		return err
	}
	return fmt.Errorf("unknown backend %T", e.db.b)
}

// query runs q and returns every value as text; NULL is nil. Select expressions should be
// CAST(... AS TEXT) so that both backends return text.
func (e *env) query(t testing.TB, q string) [][]*string {
	t.Helper()
	var out [][]*string
	switch b := e.db.b.(type) {
	case *sqliteBackend:
		rows, err := b.db.QueryContext(t.Context(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			r := make([]*string, len(cols))
			for i, v := range vals {
				if v.Valid {
					r[i] = &v.String
				}
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	case *pgBackend:
		c, err := b.pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer b.pool.Release(c)
		rows, err := c.Query(t.Context(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		n := len(rows.FieldDescriptions())
		for rows.Next() {
			vals := make([]pgtype.Text, n)
			ptrs := make([]any, n)
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			r := make([]*string, n)
			for i, v := range vals {
				if v.Valid {
					r[i] = &v.String
				}
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return out
}

// count returns the rows in table.
func (e *env) count(t testing.TB, table string) int {
	t.Helper()
	r := e.query(t, "SELECT CAST(COUNT(*) AS TEXT) FROM "+quoteName(table))
	var n int
	fmt.Sscan(*r[0][0], &n)
	return n
}

// payloads returns id → payload of every row in table.
func (e *env) payloads(t testing.TB, table string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range e.query(t, "SELECT id, CAST(payload AS TEXT) FROM "+quoteName(table)) {
		out[*r[0]] = *r[1]
	}
	return out
}

func quoteName(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = quote(p)
	}
	return strings.Join(parts, ".")
}

var testTime = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

func msg(id, payload string) message.Message {
	return message.Message{ID: id, Client: "acme", Type: "order", Key: "k-" + id, ReceivedAt: testTime, Payload: []byte(payload)}
}
