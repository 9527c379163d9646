package sqlsink

import (
	"errors"
	"strings"
	"testing"
)

func TestSQLiteName(t *testing.T) {
	const defaults = "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate"
	for _, tc := range []struct {
		dsn, want string
	}{
		{"sqlite:/var/lib/weir/sink.db", "file:/var/lib/weir/sink.db?" + defaults},
		{"sqlite:///var/lib/weir/sink.db", "file:/var/lib/weir/sink.db?" + defaults},
		{"sqlite://rel/sink.db", "file:rel/sink.db?" + defaults},
		{"sqlite:data", "file:data?" + defaults},
		{"/tmp/a b?c.db", "file:/tmp/a%20b%3Fc.db?" + defaults},
		{"file:x.db?_pragma=synchronous(EXTRA)&_pragma=busy_timeout(5)",
			"file:x.db?_pragma=synchronous(EXTRA)&_pragma=busy_timeout(5)&_pragma=journal_mode(WAL)&_txlock=immediate"},
	} {
		got, ok := sqliteName(tc.dsn)
		if !ok || got != tc.want {
			t.Errorf("sqliteName(%q) = %q, %v; want %q", tc.dsn, got, ok, tc.want)
		}
	}
	for _, dsn := range []string{"sqlite:", "mysql://x", "data.sqlite", ""} {
		if _, ok := sqliteName(dsn); ok {
			t.Errorf("sqliteName(%q) accepted", dsn)
		}
	}
	if _, err := Open(t.Context(), "mysql://db/x"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Open(mysql://) = %v, want ErrInvalidConfig", err)
	}
}

// TestSQLiteDurability checks the settings a Write that returned nil relies on to survive a
// crash.
func TestSQLiteDurability(t *testing.T) {
	e := newSQLiteEnv(t)
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2"} {
		if got := *e.query(t, "PRAGMA "+pragma)[0][0]; !strings.EqualFold(got, want) {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}
