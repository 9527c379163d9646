package state_test

import (
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/pgpool/pgtest"
	"github.com/weirhq/weir/internal/state"
)

// suite is the state store's contract: every space passes all of it (TestEmbedded,
// TestPostgres), because the store's rules run unchanged on each.
var suite = []struct {
	name string
	fn   func(t *testing.T)
}{
	{"ReceiptsTrailsAndExpiry", testReceiptsTrailsAndExpiry},
	{"ReceiptsSurviveReopen", testReceiptsSurviveReopen},
	{"SameIDTwoTypes", testSameIDTwoTypes},
	{"DeadLetterFilters", testDeadLetterFilters},
	{"DeadLetterPaging", testDeadLetterPaging},
	{"DeadLetterRoundTrip", testDeadLetterRoundTrip},
	{"Discard", testDiscard},
	{"DiscardDuplicateID", testDiscardDuplicateID},
	{"ExpireDeadLetters", testExpireDeadLetters},
	{"StoreReplay", testStoreReplay},
	{"StoreReplayDuplicateID", testStoreReplayDuplicateID},
	{"DueRetries", testDueRetries},
	{"Reinject", testReinject},
	{"RetriesSurviveReopen", testRetriesSurviveReopen},
	{"FailuresWithEmptyNotification", testFailuresWithEmptyNotification},
	{"FailuresWithNotification", testFailuresWithNotification},
	{"WorkflowRuns", testWorkflowRuns},
	{"Holds", testHolds},
}

func TestEmbedded(t *testing.T) {
	for _, c := range suite {
		t.Run(c.name, c.fn)
	}
}

// TestExternal runs the suite on the Pebble state database beside an external buffer (here
// another embedded log stands in for the broker).
func TestExternal(t *testing.T) {
	for _, c := range suite {
		t.Run(c.name, c.fn)
	}
}

func TestPostgres(t *testing.T) {
	pgtest.Schema(t) // skips without a server
	for _, c := range suite {
		t.Run(c.name, c.fn)
	}
}

var (
	schemasMu sync.Mutex
	schemas   = map[string]string{} // test name → its schema's URL or state dir: a reopen finds the same state
	stateDBs  = map[string]*embedded.Log{}
)

// storeOn opens the store of the running test on its space: the embedded one in l's Pebble
// database; under TestExternal a Pebble database of its own, or under TestPostgres a PostgreSQL
// schema of the test's own, with l as the buffer.
func storeOn(t *testing.T, l *embedded.Log) (*state.Store, error) {
	t.Helper()
	external, pg := strings.HasPrefix(t.Name(), "TestExternal/"), strings.HasPrefix(t.Name(), "TestPostgres/")
	if !external && !pg {
		return state.New(l)
	}
	schemasMu.Lock()
	where, ok := schemas[t.Name()]
	if !ok {
		if pg {
			where = pgtest.Schema(t)
		} else {
			where = t.TempDir()
		}
		schemas[t.Name()] = where
	}
	schemasMu.Unlock()
	if external {
		// The state database stays open across the test's reopens of its log (the buffer).
		schemasMu.Lock()
		db := stateDBs[t.Name()]
		if db == nil {
			var err error
			if db, err = embedded.Open(embedded.Config{Dir: where, Logger: slog.New(slog.DiscardHandler)}); err != nil {
				schemasMu.Unlock()
				return nil, err
			}
			stateDBs[t.Name()] = db
			t.Cleanup(func() { db.Close() })
		}
		schemasMu.Unlock()
		return state.Open(state.External{Log: db, Buffer: l})
	}
	url := where
	p, err := state.OpenPostgres(t.Context(), url, l)
	if err != nil {
		return nil, err
	}
	t.Cleanup(p.Close)
	return state.Open(p)
}
