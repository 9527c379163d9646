package state_test

import (
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

func TestPostgres(t *testing.T) {
	pgtest.Schema(t) // skips without a server
	for _, c := range suite {
		t.Run(c.name, c.fn)
	}
}

var (
	schemasMu sync.Mutex
	schemas   = map[string]string{} // test name → its schema's URL: a reopen finds the same state
)

// storeOn opens the store of the running test on its space: the embedded one in l's Pebble
// database, or under TestPostgres a PostgreSQL schema of the test's own, with l as the buffer.
func storeOn(t *testing.T, l *embedded.Log) (*state.Store, error) {
	t.Helper()
	if !strings.HasPrefix(t.Name(), "TestPostgres/") {
		return state.New(l)
	}
	schemasMu.Lock()
	url, ok := schemas[t.Name()]
	if !ok {
		url = pgtest.Schema(t)
		schemas[t.Name()] = url
	}
	schemasMu.Unlock()
	p, err := state.OpenPostgres(t.Context(), url, l)
	if err != nil {
		return nil, err
	}
	t.Cleanup(p.Close)
	return state.Open(p)
}
