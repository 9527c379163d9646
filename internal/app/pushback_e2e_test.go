package app_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/app"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/partner"
)

// A partner that takes 10 deliveries a second (the endpoint's rate limit) and a backlog mark of
// 20: a burst of notes is accepted until the deliver stage's backlog passes the mark, then ingest
// answers 429 with Retry-After at once; as the backlog drains, ingest takes messages again, and
// every accepted note is delivered.
func TestBacklogPushback(t *testing.T) {
	dir := t.TempDir()
	sec, _ := deliver.ParseSecret(secret)
	rcv := partner.New(partner.Config{Secrets: [][]byte{sec}})
	ps := httptest.NewServer(rcv)
	t.Cleanup(ps.Close)
	yaml := fmt.Sprintf(`
data_dir: data
runtime: {partitions: 2, shutdown_timeout: 2s}
limits: {max_backlog: 20}
clients:
  - id: acme
    token_hash: %s
    types: [note]
types:
  - name: note
    pipeline:
      deliver: [partner]
endpoints:
  - name: partner
    url: %s/webhook
    secret: %s
    allow_private: true
    rate_limit: {rate: 10}
`, app.HashToken("acme-token"), ps.URL, secret)
	path := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	h := launch(t, path, rcv)

	accepted := 0
	refusedAt := -1
	for i := 0; i < 400 && refusedAt < 0; i++ {
		a := h.do("POST", "/v1/messages/note", "acme", "acme-token", "application/json", fmt.Appendf(nil, `{"n":%d}`, i))
		switch a.code {
		case 202:
			accepted++
		case 429:
			refusedAt = i
			if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
				t.Fatalf("429 with Retry-After %q", a.header.Get("Retry-After"))
			}
			if a.body["type"] != "https://weir.dev/problems/overloaded" {
				t.Fatalf("429 body: %s", a.raw)
			}
		default:
			t.Fatalf("post %d: %d %s", i, a.code, a.raw)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if refusedAt < 0 {
		t.Fatalf("400 notes accepted against a partner taking 10/s and a mark of 20: no pushback")
	}
	if accepted < 20 {
		t.Fatalf("refused after %d accepted: below the mark", accepted)
	}
	// The backlog drains at the partner's rate; then ingest takes messages again.
	eventually(t, "ingest to take messages again", func() bool {
		a := h.do("POST", "/v1/messages/note", "acme", "acme-token", "application/json", []byte(`{"n":"after"}`))
		if a.code == 202 {
			accepted++
			return true
		}
		time.Sleep(200 * time.Millisecond)
		return false
	})
	eventually(t, "every accepted note delivered", func() bool { return rcv.Unique() == accepted })
}
