package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/app"
	"github.com/weirhq/weir/internal/config"
	"github.com/weirhq/weir/internal/pipeline"
)

// adminRig is a running weir whose partner refuses every message with 422 until told to accept,
// so that messages are dead-lettered at once.
type adminRig struct {
	admin, ingest string
	mu            sync.Mutex
	accept        bool
	delivered     map[string]int // webhook-id → 2xx answers
}

func newAdminRig(t *testing.T) *adminRig {
	t.Helper()
	rg := &adminRig{delivered: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		rg.mu.Lock()
		defer rg.mu.Unlock()
		if !rg.accept {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		rg.delivered[r.Header.Get("webhook-id")]++
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	dir := t.TempDir()
	yaml := fmt.Sprintf(`
data_dir: data
clients:
  - {id: acme, token_hash: %s, types: [note]}
types:
  - name: note
    id: /id
    pipeline: {deliver: [p]}
endpoints:
  - {name: p, url: "http://%s/hook", bearer_token: t, allow_private: true}
`, app.HashToken("acme-token"), ln.Addr())
	path := filepath.Join(dir, "weir.yaml")
	os.WriteFile(path, []byte(yaml), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		IngestAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	rg.admin, rg.ingest = "http://"+a.AdminAddr(), "http://"+a.IngestAddr()
	return rg
}

func (rg *adminRig) post(t *testing.T, id string) {
	t.Helper()
	req, _ := http.NewRequest("POST", rg.ingest+"/v1/messages/note", strings.NewReader(`{"id":"`+id+`"}`))
	req.SetBasicAuth("acme", "acme-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post %s: %d", id, resp.StatusCode)
	}
}

func (rg *adminRig) dlq(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return run(append(append([]string{"dlq"}, args[:1]...), append([]string{"--admin", rg.admin}, args[1:]...)...)...)
}

func (rg *adminRig) list(t *testing.T) []string {
	t.Helper()
	code, out, errs := rg.dlq(t, "list", "--json")
	if code != 0 {
		t.Fatalf("dlq list: exit %d: %s", code, errs)
	}
	var page struct {
		DeadLetters []struct {
			ID, MessageID, Reason string
			Code                  int `json:"last_status_code"`
		} `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatalf("dlq list --json: %v\n%s", err, out)
	}
	var ids []string
	for _, d := range page.DeadLetters {
		if d.Reason != "permanent" || d.Code != 422 {
			t.Errorf("dead letter %+v: want permanent with status 422", d)
		}
		ids = append(ids, d.ID)
	}
	return ids
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDLQCommands(t *testing.T) {
	rg := newAdminRig(t)
	for i := range 3 {
		rg.post(t, fmt.Sprintf("n%d", i))
	}
	waitFor(t, "3 dead letters", func() bool { return len(rg.list(t)) == 3 })
	ids := rg.list(t)

	code, out, _ := rg.dlq(t, "list")
	if code != 0 || !strings.Contains(out, "REASON") || !strings.Contains(out, "n1") || !strings.Contains(out, "permanent") {
		t.Fatalf("dlq list: exit %d\n%s", code, out)
	}
	code, out, _ = rg.dlq(t, "show", ids[0])
	var shown struct {
		MessageID string `json:"message_id"`
		Payload   struct{ ID string }
	}
	if err := json.Unmarshal([]byte(out), &shown); code != 0 || err != nil || shown.MessageID == "" || shown.Payload.ID != shown.MessageID {
		t.Fatalf("dlq show: exit %d (%v), want the letter with its payload\n%s", code, err, out)
	}
	if code, _, errs := rg.dlq(t, "show", "nope"); code != 1 || !strings.Contains(errs, "no such dead letter") {
		t.Fatalf("dlq show of an unknown id: exit %d %s", code, errs)
	}
	if code, _, _ := rg.dlq(t, "replay"); code != 2 {
		t.Fatalf("dlq replay with nothing selected: exit %d, want a usage error", code)
	}

	// The partner accepts now: replay one by id, then the rest by filter; each delivered once.
	rg.mu.Lock()
	rg.accept = true
	rg.mu.Unlock()
	if code, out, errs := rg.dlq(t, "replay", ids[0]); code != 0 || !strings.Contains(out, "replayed 1") {
		t.Fatalf("dlq replay ID: exit %d %s %s", code, out, errs)
	}
	if code, _, errs := rg.dlq(t, "replay", ids[0]); code != 1 || !strings.Contains(errs, "no such dead letter") {
		t.Fatalf("second replay of one id: exit %d %s", code, errs)
	}
	if code, out, errs := rg.dlq(t, "replay", "--endpoint", "p"); code != 0 || !strings.Contains(out, "replayed 2") {
		t.Fatalf("dlq replay --endpoint: exit %d %s %s", code, out, errs)
	}
	waitFor(t, "3 deliveries", func() bool {
		rg.mu.Lock()
		defer rg.mu.Unlock()
		return len(rg.delivered) == 3
	})
	time.Sleep(200 * time.Millisecond)
	rg.mu.Lock()
	for id, n := range rg.delivered {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	for i := range 3 {
		if id := fmt.Sprintf("n%d", i); rg.delivered[pipeline.WebhookID("acme", "note", id)] != 1 {
			t.Errorf("%s not delivered under its webhook-id: %v", id, rg.delivered)
		}
	}
	rg.accept = false
	rg.mu.Unlock()
	if left := rg.list(t); len(left) != 0 {
		t.Fatalf("dead letters left after replay: %v", left)
	}

	// Discard.
	rg.post(t, "n9")
	waitFor(t, "a new dead letter", func() bool { return len(rg.list(t)) == 1 })
	if code, out, _ := rg.dlq(t, "discard", "--all"); code != 0 || !strings.Contains(out, "discarded 1") {
		t.Fatalf("dlq discard --all: exit %d %s", code, out)
	}
	if left := rg.list(t); len(left) != 0 {
		t.Fatalf("dead letters left after discard: %v", left)
	}
}

func TestEndpointsCommands(t *testing.T) {
	rg := newAdminRig(t)
	ep := func(args ...string) string {
		t.Helper()
		code, out, errs := run(append(append([]string{"endpoints"}, args[:1]...), append([]string{"--admin", rg.admin}, args[1:]...)...)...)
		if code != 0 {
			t.Fatalf("endpoints %v: exit %d %s", args, code, errs)
		}
		return out
	}
	if out := ep("list"); !strings.Contains(out, "p ") || !strings.Contains(out, "healthy") {
		t.Fatalf("endpoints list:\n%s", out)
	}
	if out := ep("pause", "p"); !strings.Contains(out, "p: paused") {
		t.Fatalf("endpoints pause: %s", out)
	}
	rg.mu.Lock()
	rg.accept = true
	rg.mu.Unlock()
	rg.post(t, "while-paused")
	time.Sleep(300 * time.Millisecond)
	rg.mu.Lock()
	n := len(rg.delivered)
	rg.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d deliveries to a paused endpoint", n)
	}
	if out := ep("list"); !strings.Contains(out, "paused") {
		t.Fatalf("endpoints list while paused:\n%s", out)
	}
	if out := ep("resume", "p"); !strings.Contains(out, "p: healthy") {
		t.Fatalf("endpoints resume: %s", out)
	}
	waitFor(t, "the delivery after resume", func() bool {
		rg.mu.Lock()
		defer rg.mu.Unlock()
		return rg.delivered[pipeline.WebhookID("acme", "note", "while-paused")] == 1
	})
}
