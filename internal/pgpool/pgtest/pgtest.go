// Package pgtest gives tests a PostgreSQL schema of their own on the machine's server.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DSN is the PostgreSQL the tests use: WEIR_TEST_POSTGRES, or the local one.
func DSN() string {
	if v := os.Getenv("WEIR_TEST_POSTGRES"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Schema creates an empty schema, dropped when the test ends, and returns a connection URL
// whose search_path is that schema. Without a reachable server the test is skipped (CI starts
// one: .ci/run).
func Schema(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, DSN())
	if err != nil {
		t.Skipf("no PostgreSQL at WEIR_TEST_POSTGRES or %s: %v", DSN(), err)
	}
	defer c.Close(ctx)
	var b [6]byte
	rand.Read(b[:])
	schema := "weirtest_" + hex.EncodeToString(b[:])
	if _, err := c.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, DSN()); err == nil {
			c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close(ctx)
		}
	})
	u, err := url.Parse(DSN())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
