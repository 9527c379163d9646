package app_test

// End-to-end tests of failure handling: durable retries on the endpoints' and steps' schedules
// (max_attempts, max_age, across restarts), dead letters (exhausted, permanent, gone, removed)
// with their notifications, endpoint health (failing, paused on 410 Gone or after pause_after),
// replay and discard through the admin API, deduplication across a restart, and webhook-ids that
// tell apart the same message id of two clients or types but stay put across retries. Each test runs a
// whole weir (app.New + Run) against a real partner on 127.0.0.1 whose answers it switches at
// runtime, with schedules of a few hundred milliseconds.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/app"
	"github.com/weirhq/weir/internal/config"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/partner"
	"github.com/weirhq/weir/internal/pipeline"
)

// hit is one request the flaky partner received.
type hit struct {
	ID       string // webhook-id
	Path     string
	Body     []byte
	Code     int  // what the partner answered
	Verified bool // the Standard Webhooks signature matched
}

// flaky is a partner on a real http.Server: answer decides each request's fate (0 hands it to a
// partner.Receiver, which verifies it and answers 204), and every request is recorded.
type flaky struct {
	url string
	rcv *partner.Receiver
	sec [][]byte

	mu     sync.Mutex
	answer func(hit) int
	hits   []hit
}

// newFailingFlaky returns a partner that answers code while the returned switch is on (it
// starts on), and accepts once it is off.
func newFailingFlaky(t *testing.T, code int) (*flaky, *atomic.Bool) {
	t.Helper()
	on := &atomic.Bool{}
	on.Store(true)
	return newFlaky(t, func(hit) int {
		if on.Load() {
			return code
		}
		return 0
	}), on
}

func newFlaky(t *testing.T, answer func(hit) int) *flaky {
	t.Helper()
	sec, err := deliver.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	f := &flaky{rcv: partner.New(partner.Config{Secrets: [][]byte{sec}}), sec: [][]byte{sec}, answer: answer}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f.url = "http://" + ln.Addr().String()
	return f
}

// heldWriter keeps the receiver's answer so that the hit is recorded before Weir sees it.
type heldWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *heldWriter) Header() http.Header { return w.header }
func (w *heldWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}
func (w *heldWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h := hit{ID: r.Header.Get(deliver.HeaderID), Path: r.URL.Path, Body: body,
		Verified: deliver.Verify(f.sec, r.Header, body, 0, time.Now()) == nil}
	f.mu.Lock()
	answer := f.answer
	f.mu.Unlock()
	code := 0
	if answer != nil {
		code = answer(h)
	}
	hw := &heldWriter{header: http.Header{}}
	if code == 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.rcv.ServeHTTP(hw, r)
		if hw.code == 0 {
			hw.code = http.StatusOK
		}
	} else {
		hw.code = code
		if code >= 300 && code < 400 {
			// Somewhere that would accept the delivery, were the redirect followed.
			hw.header.Set("Location", f.url+"/moved")
		}
		fmt.Fprintf(&hw.body, "answering %d on purpose\n", code)
	}
	h.Code = hw.code
	f.mu.Lock()
	f.hits = append(f.hits, h)
	f.mu.Unlock()
	for k, v := range hw.header {
		w.Header()[k] = v
	}
	w.WriteHeader(hw.code)
	w.Write(hw.body.Bytes())
}

func (f *flaky) set(answer func(hit) int) {
	f.mu.Lock()
	f.answer = answer
	f.mu.Unlock()
}

// wid is the webhook-id of acme's message id of type typ.
func wid(typ, id string) string { return pipeline.WebhookID("acme", typ, id) }

// hitsFor returns the requests that carried webhook-id id, in arrival order.
func (f *flaky) hitsFor(id string) []hit {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []hit
	for _, h := range f.hits {
		if h.ID == id {
			out = append(out, h)
		}
	}
	return out
}

// all returns every request received so far.
func (f *flaky) all() []hit {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.hits)
}

// attempts counts requests per webhook-id.
func (f *flaky) attempts() map[string]int {
	m := map[string]int{}
	for _, h := range f.all() {
		m[h.ID]++
	}
	return m
}

// ok counts 2xx answers to webhook-id id.
func (f *flaky) ok(id string) int {
	n := 0
	for _, h := range f.hitsFor(id) {
		if h.Code >= 200 && h.Code < 300 {
			n++
		}
	}
	return n
}

// retryConfig writes a config to dir for the flaky partner and returns its path. endpoint is
// extra YAML for the partner endpoint (retry, health), one setting per line; tail, if given, is
// appended as it is (more endpoints, then top-level settings).
func retryConfig(t *testing.T, dir, partnerURL, endpoint string, tail ...string) string {
	t.Helper()
	var ep strings.Builder
	for line := range strings.Lines(strings.TrimSpace(endpoint)) {
		ep.WriteString("    " + line)
	}
	yaml := fmt.Sprintf(`
data_dir: data
runtime: {partitions: 4, shutdown_timeout: 5s}
clients:
  - id: acme
    token_hash: %s
    types: [event, note, checked]
types:
  - name: event
    id: /id
    pipeline:
      deliver: [partner]
  - name: note
    pipeline:
      deliver: [partner]
  - name: checked
    id: /id
    pipeline:
      process: [{jq: 'if .poison then error("bad input") else . + {checked: true} end'}]
      sink: {dsn: "sqlite:checked.db", table: checked}
      deliver: [partner]
      retry: {schedule: [100ms, 200ms], jitter: 0, max_attempts: 20}
endpoints:
  - name: partner
    url: %s/webhook
    secret: %s
    allow_private: true
%s
%s
`, app.HashToken("acme-token"), partnerURL, secret, ep.String(), strings.Join(tail, "\n"))
	path := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// launch runs weir from the config at path, as start does, and returns its harness; rcv is the
// harness's partner.
func launch(t *testing.T, path string, rcv *partner.Receiver) *harness {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := app.New(context.Background(), cfg, app.Options{Logger: log, IngestAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	h := &harness{t: t, app: a, url: "http://" + a.IngestAddr(), partner: rcv, dataDir: cfg.Path(cfg.DataDir),
		stop: func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}}
	t.Cleanup(h.stop)
	return h
}

// startFlaky runs weir with the flaky partner's /webhook as endpoint "partner".
func startFlaky(t *testing.T, p *flaky, endpoint string, tail ...string) *harness {
	t.Helper()
	return launch(t, retryConfig(t, t.TempDir(), p.url, endpoint, tail...), p.rcv)
}

// admin returns a copy of h whose do talks to the admin listener.
func (h *harness) admin() *harness {
	a := *h
	a.url = "http://" + h.app.AdminAddr()
	return &a
}

// letter is a dead letter as the admin API shows it.
type letter struct {
	ID        string          `json:"id"`
	Topic     string          `json:"topic"`
	Stage     string          `json:"stage"`
	Endpoint  string          `json:"endpoint"`
	Client    string          `json:"client"`
	Type      string          `json:"type"`
	MessageID string          `json:"message_id"`
	Reason    string          `json:"reason"`
	Error     string          `json:"error"`
	Attempts  int             `json:"attempts"`
	Code      int             `json:"last_status_code"`
	Response  string          `json:"last_response"`
	Payload   json.RawMessage `json:"payload"`
}

// letters lists the dead letters matching query (like "reason=exhausted&type=event").
func (h *harness) letters(query string) []letter {
	h.t.Helper()
	a := h.admin().do("GET", "/v1/admin/dead-letters?limit=1000&"+query, "", "", "", nil)
	if a.code != 200 {
		h.t.Fatalf("list dead letters %q: %d %s", query, a.code, a.raw)
	}
	var page struct {
		DeadLetters []letter `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(a.raw), &page); err != nil {
		h.t.Fatalf("list dead letters: %v: %s", err, a.raw)
	}
	return page.DeadLetters
}

// byMessage indexes dead letters by message id, failing on two letters for one message.
func byMessage(t *testing.T, ls []letter) map[string]letter {
	t.Helper()
	m := map[string]letter{}
	for _, l := range ls {
		if _, dup := m[l.MessageID]; dup {
			t.Fatalf("two dead letters for message %s", l.MessageID)
		}
		m[l.MessageID] = l
	}
	return m
}

// endpointState returns the partner endpoint's health row of GET /v1/admin/endpoints.
func (h *harness) endpointState() map[string]any {
	h.t.Helper()
	a := h.admin().do("GET", "/v1/admin/endpoints", "", "", "", nil)
	if a.code != 200 {
		h.t.Fatalf("endpoints: %d %s", a.code, a.raw)
	}
	for _, e := range a.body["endpoints"].([]any) {
		if e := e.(map[string]any); e["name"] == "partner" {
			return e
		}
	}
	h.t.Fatalf("no endpoint partner in %s", a.raw)
	return nil
}

// scheduled is the number of retries waiting, from GET /v1/admin/retries.
func (h *harness) scheduled() float64 {
	h.t.Helper()
	a := h.admin().do("GET", "/v1/admin/retries", "", "", "", nil)
	if a.code != 200 {
		h.t.Fatalf("retries: %d %s", a.code, a.raw)
	}
	return a.body["scheduled"].(float64)
}

// event is one entry of a status trail.
type event struct {
	Stage    string    `json:"stage"`
	Endpoint string    `json:"endpoint"`
	Status   string    `json:"status"`
	Attempts int       `json:"attempts"`
	Code     int       `json:"status_code"`
	Error    string    `json:"error"`
	NextAt   time.Time `json:"next_attempt_at"`
	Reason   string    `json:"reason"`
	Letter   string    `json:"dead_letter"`
}

// status returns the overall status and the trail of acme's message id.
func (h *harness) status(id string) (string, []event) {
	h.t.Helper()
	a := h.do("GET", "/v1/messages/"+id, "acme", "acme-token", "", nil)
	if a.code != 200 {
		h.t.Fatalf("status of %s: %d %s", id, a.code, a.raw)
	}
	var st struct {
		Status string    `json:"status"`
		Next   time.Time `json:"next_attempt_at"`
		Reason string    `json:"dead_letter_reason"`
		Trail  []event   `json:"trail"`
	}
	if err := json.Unmarshal([]byte(a.raw), &st); err != nil {
		h.t.Fatalf("status of %s: %v: %s", id, err, a.raw)
	}
	// The summary names the next attempt of a retrying message and the reason of a dead one.
	if st.Status == "retrying" && st.Next.IsZero() || st.Status == "dead_lettered" && st.Reason == "" {
		h.t.Errorf("status of %s: %q with next_attempt_at %v and dead_letter_reason %q", id, st.Status, st.Next, st.Reason)
	}
	return st.Status, st.Trail
}

// stageEvents keeps the events of one stage.
func stageEvents(trail []event, stage string) []event {
	var out []event
	for _, e := range trail {
		if e.Stage == stage {
			out = append(out, e)
		}
	}
	return out
}

// post sends one acme message of typ and returns its id.
func (h *harness) post(typ string, body string) string {
	h.t.Helper()
	a := h.do("POST", "/v1/messages/"+typ, "acme", "acme-token", "application/json", []byte(body))
	if a.code != 202 {
		h.t.Fatalf("post %s %s: %d %s", typ, body, a.code, a.raw)
	}
	return a.body["id"].(string)
}

// postBatch sends acme messages of typ as one NDJSON batch; all must be accepted.
func (h *harness) postBatch(typ string, lines []string) {
	h.t.Helper()
	a := h.do("POST", "/v1/messages/"+typ+"/batch", "acme", "acme-token", "application/x-ndjson", []byte(strings.Join(lines, "\n")))
	if a.code != 202 || a.body["accepted"] != float64(len(lines)) {
		h.t.Fatalf("batch of %d: %d %s", len(lines), a.code, a.raw)
	}
}

// settle waits long enough for any retry the test's short schedules could still make.
func settle() { time.Sleep(1200 * time.Millisecond) }

// A partner that answers 503 for a while, then 2xx: every message is delivered exactly once,
// with the same webhook-id on every attempt, and is not attempted again after its 2xx.
func TestRetryPartnerDownThenBack(t *testing.T) {
	p, down := newFailingFlaky(t, http.StatusServiceUnavailable)
	h := startFlaky(t, p, `retry: {schedule: [100ms, 200ms, 300ms], jitter: 0, max_attempts: 100}`)

	// The note type has no id pointer: each message gets a UUIDv7, from which its webhook-id, the
	// same on all its attempts, is derived.
	const n = 30
	ids := make([]string, n)
	byWID := map[string]int{} // webhook-id → message number
	for i := range n {
		ids[i] = h.post("note", fmt.Sprintf(`{"n":%d}`, i))
		byWID[wid("note", ids[i])] = i
	}
	eventually(t, "three failed attempts of every message", func() bool {
		got := p.attempts()
		for _, id := range ids {
			if got[wid("note", id)] < 3 {
				return false
			}
		}
		return true
	})
	if st := h.endpointState(); st["state"] != deliver.Failing {
		t.Errorf("endpoint while the partner is down: %v", st)
	}
	if s, trail := h.status(ids[0]); s != "retrying" || len(stageEvents(trail, "deliver")) < 2 {
		t.Errorf("status while the partner is down: %s %+v", s, trail)
	}
	down.Store(false)

	eventually(t, "every message delivered", func() bool {
		for _, id := range ids {
			if p.ok(wid("note", id)) == 0 {
				return false
			}
		}
		return true
	})
	eventually(t, "every status delivered", func() bool {
		for _, id := range ids {
			if s, _ := h.status(id); s != "delivered" {
				return false
			}
		}
		return true
	})
	before := p.attempts()
	settle()
	if after := p.attempts(); !maps.Equal(before, after) {
		t.Errorf("attempts went on after every message was delivered: before %v, after %v", before, after)
	}
	if n := h.scheduled(); n != 0 {
		t.Errorf("%v retries still scheduled", n)
	}
	if st := h.endpointState(); st["state"] != deliver.Healthy {
		t.Errorf("endpoint after the partner came back: %v", st)
	}

	for _, x := range p.all() {
		if !x.Verified {
			t.Errorf("attempt with webhook-id %s was not signed correctly", x.ID)
		}
		var body struct{ N int }
		if err := json.Unmarshal(x.Body, &body); err != nil {
			t.Fatalf("body %s: %v", x.Body, err)
		}
		// The webhook-id is the message's on every attempt: the body's n says which message.
		if i, ok := byWID[x.ID]; !ok || i != body.N {
			t.Errorf("attempt of message %d carried webhook-id %s", body.N, x.ID)
		}
	}
	for i, id := range ids {
		hits := p.hitsFor(wid("note", id))
		if got := p.ok(wid("note", id)); got != 1 {
			t.Errorf("message %d: %d 2xx answers, want 1", i, got)
		}
		if last := hits[len(hits)-1]; last.Code != http.StatusNoContent {
			t.Errorf("message %d: attempted after its 2xx: %+v", i, hits)
		}
		// The trail has one event per attempt: retrying with the 503 and the next attempt, then
		// delivered with the attempt count.
		_, trail := h.status(id)
		evs := stageEvents(trail, "deliver")
		if len(evs) != len(hits) {
			t.Errorf("message %d: %d deliver events for %d attempts: %+v", i, len(evs), len(hits), evs)
			continue
		}
		for j, e := range evs[:len(evs)-1] {
			if e.Status != "retrying" || e.Code != 503 || e.Attempts != j+1 || e.NextAt.IsZero() || e.Endpoint != "partner" {
				t.Errorf("message %d: event %d: %+v", i, j, e)
			}
		}
		if e := evs[len(evs)-1]; e.Status != "delivered" || e.Attempts != len(hits) || e.Code != 204 {
			t.Errorf("message %d: last event %+v after %d attempts", i, e, len(hits))
		}
	}
	if got := p.rcv.Unique(); got != n {
		t.Errorf("partner accepted %d distinct webhook-ids, want %d", got, n)
	}
}

// Messages the partner always refuses with 500 are dead-lettered after exactly max_attempts
// attempts; all the others are delivered once.
func TestRetryPoisonMessagesExhausted(t *testing.T) {
	const n = 100
	var lines, good, poison []string
	refused := map[string]bool{} // the webhook-ids of the poison messages
	for i := range n {
		id := fmt.Sprintf("m-%03d", i)
		if i%25 == 24 {
			id += "-poison"
			poison = append(poison, id)
			refused[wid("event", id)] = true
		} else {
			good = append(good, id)
		}
		lines = append(lines, fmt.Sprintf(`{"id":%q,"i":%d}`, id, i))
	}
	p := newFlaky(t, func(x hit) int {
		if refused[x.ID] {
			return http.StatusInternalServerError
		}
		return 0
	})
	// The schedule's last delay repeats until max_attempts.
	const k = 3
	h := startFlaky(t, p, fmt.Sprintf("retry: {schedule: [100ms], jitter: 0, max_attempts: %d}", k))
	h.postBatch("event", lines)

	eventually(t, "good messages delivered and poison ones dead-lettered", func() bool {
		for _, id := range good {
			if p.ok(wid("event", id)) == 0 {
				return false
			}
		}
		return len(h.letters("reason=exhausted")) == len(poison)
	})
	settle()

	letters := byMessage(t, h.letters("endpoint=partner"))
	if len(letters) != len(poison) {
		t.Fatalf("%d dead letters, want %d: %+v", len(letters), len(poison), letters)
	}
	for _, id := range poison {
		d, ok := letters[id]
		if !ok {
			t.Errorf("%s: no dead letter", id)
			continue
		}
		if d.Reason != "exhausted" || d.Attempts != k || d.Code != 500 || d.Stage != "deliver" || d.Endpoint != "partner" ||
			d.Type != "event" || d.Client != "acme" || d.Topic != "deliver.partner" || !strings.Contains(d.Response, "500") {
			t.Errorf("%s: dead letter %+v", id, d)
		}
		if got := len(p.hitsFor(wid("event", id))); got != k {
			t.Errorf("%s: %d attempts at the partner, want %d", id, got, k)
		}
		// The status trail: K attempt events, the last one dead-lettered with the letter's id.
		s, trail := h.status(id)
		evs := stageEvents(trail, "deliver")
		if s != "dead_lettered" || len(evs) != k {
			t.Errorf("%s: status %s with %d deliver events, want dead_lettered with %d: %+v", id, s, len(evs), k, trail)
			continue
		}
		for j, e := range evs {
			want := "retrying"
			if j == k-1 {
				want = "dead_lettered"
			}
			if e.Status != want || e.Attempts != j+1 || e.Code != 500 {
				t.Errorf("%s: event %d: %+v", id, j, e)
			}
		}
		if last := evs[k-1]; last.Reason != "exhausted" || last.Letter != d.ID {
			t.Errorf("%s: last event %+v, dead letter %s", id, last, d.ID)
		}
		// GET by id shows the message.
		a := h.admin().do("GET", "/v1/admin/dead-letters/"+d.ID, "", "", "", nil)
		if a.code != 200 || a.body["message_id"] != id || !strings.Contains(a.raw, `"i": `) {
			t.Errorf("%s: show dead letter: %d %s", id, a.code, a.raw)
		}
	}
	for _, id := range good {
		if got, ok := len(p.hitsFor(wid("event", id))), p.ok(wid("event", id)); got != 1 || ok != 1 {
			t.Errorf("%s: %d attempts, %d 2xx; want 1 and 1", id, got, ok)
		}
	}
	if ls := h.letters("reason=permanent"); len(ls) != 0 {
		t.Errorf("permanent dead letters: %+v", ls)
	}
	if ls := h.letters("type=note"); len(ls) != 0 {
		t.Errorf("the type filter matches other types: %+v", ls)
	}
	if n := h.scheduled(); n != 0 {
		t.Errorf("%v retries still scheduled", n)
	}
}

// A partner that answers 410 Gone disables its endpoint: the message is dead-lettered as gone,
// the endpoint is paused (across a restart too), nothing is attempted until an operator resumes
// it, and a replay of the gone message delivers it once.
func TestRetryGonePausesEndpoint(t *testing.T) {
	p, gone := newFailingFlaky(t, http.StatusGone)
	dir := t.TempDir()
	path := retryConfig(t, dir, p.url, `retry: {schedule: [100ms], jitter: 0, max_attempts: 5}`)
	h := launch(t, path, p.rcv)

	h.post("event", `{"id":"g-1"}`)
	eventually(t, "the endpoint paused", func() bool { return h.endpointState()["state"] == deliver.Paused })
	eventually(t, "the gone dead letter", func() bool { return len(h.letters("reason=gone")) == 1 })
	d := h.letters("reason=gone")[0]
	if d.MessageID != "g-1" || d.Code != 410 || d.Attempts != 1 || d.Stage != "deliver" || d.Endpoint != "partner" {
		t.Errorf("gone dead letter: %+v", d)
	}
	if st := h.endpointState(); !strings.Contains(fmt.Sprint(st["pause_reason"]), "410") {
		t.Errorf("pause reason: %v", st)
	}
	if s, _ := h.status("g-1"); s != "dead_lettered" {
		t.Errorf("status of g-1: %s", s)
	}
	gone.Store(false) // the partner would accept now; only the pause holds deliveries back

	// The pause is stored: it holds after a restart. (Messages sent right after a pause without a
	// restart are the subject of TestRetryPauseHoldsNewMessages.)
	h.stop()
	h = launch(t, path, p.rcv)
	if st := h.endpointState(); st["state"] != deliver.Paused {
		t.Fatalf("endpoint after a restart: %v", st)
	}
	later := []string{"l-1", "l-2", "l-3"}
	for _, id := range later {
		h.post("event", fmt.Sprintf(`{"id":%q}`, id))
	}
	settle()
	for _, id := range later {
		if got := len(p.hitsFor(wid("event", id))); got != 0 {
			t.Errorf("%s attempted %d times while the endpoint is paused", id, got)
		}
	}
	if got := len(p.hitsFor(wid("event", "g-1"))); got != 1 {
		t.Errorf("g-1 attempted %d times, want 1", got)
	}

	a := h.admin().do("POST", "/v1/admin/endpoints/partner/resume", "", "", "", nil)
	if a.code != 200 || a.body["state"] != deliver.Healthy {
		t.Fatalf("resume: %d %s", a.code, a.raw)
	}
	eventually(t, "later messages delivered after the resume", func() bool {
		for _, id := range later {
			if p.ok(wid("event", id)) == 0 {
				return false
			}
		}
		return true
	})

	a = h.admin().do("POST", "/v1/admin/dead-letters/"+d.ID+"/replay", "", "", "", nil)
	if a.code != 200 || a.body["replayed"] != 1.0 {
		t.Fatalf("replay: %d %s", a.code, a.raw)
	}
	eventually(t, "the gone message delivered after its replay", func() bool { return p.ok(wid("event", "g-1")) == 1 })
	eventually(t, "g-1 delivered", func() bool { s, _ := h.status("g-1"); return s == "delivered" })
	settle()
	for _, id := range append(later, "g-1") {
		if got := p.ok(wid("event", id)); got != 1 {
			t.Errorf("%s: %d 2xx answers, want 1", id, got)
		}
	}
	if got := len(p.hitsFor(wid("event", "g-1"))); got != 2 {
		t.Errorf("g-1: %d attempts, want the 410 and the replay's 2xx", got)
	}
	if st := h.endpointState(); st["state"] != deliver.Healthy {
		t.Errorf("endpoint at the end: %v", st)
	}
	if ls := h.letters(""); len(ls) != 0 {
		t.Errorf("dead letters left: %+v", ls)
	}
}

// A pause must hold from the moment it is taken: messages that arrive after the endpoint was
// paused (by an operator or by a 410, without a restart in between) are not attempted until it
// is resumed. (The deliver stage used to be idle inside Fetch when the pause came, past its
// gate, and attempted the next records anyway.)
func TestRetryPauseHoldsNewMessages(t *testing.T) {
	p := newFlaky(t, nil)
	h := startFlaky(t, p, `retry: {schedule: [100ms], jitter: 0, max_attempts: 5}`)
	// Deliver one message so that the stage is idle, waiting for the next record.
	h.post("event", `{"id":"first"}`)
	eventually(t, "the first message delivered", func() bool { return p.ok(wid("event", "first")) == 1 })
	for _, how := range []string{"operator", "gone"} {
		if how == "operator" {
			if a := h.admin().do("POST", "/v1/admin/endpoints/partner/pause", "", "", "", nil); a.code != 200 || a.body["state"] != deliver.Paused {
				t.Fatalf("pause: %d %s", a.code, a.raw)
			}
		} else {
			p.set(func(hit) int { return http.StatusGone })
			h.post("event", `{"id":"gone-1"}`)
			eventually(t, "the endpoint paused", func() bool { return h.endpointState()["state"] == deliver.Paused })
			p.set(nil)
		}
		id := "after-" + how
		h.post("event", fmt.Sprintf(`{"id":%q}`, id))
		settle()
		if got := len(p.hitsFor(wid("event", id))); got != 0 {
			t.Errorf("paused by %s: a later message was attempted %d times while the endpoint is paused", how, got)
		}
		if a := h.admin().do("POST", "/v1/admin/endpoints/partner/resume", "", "", "", nil); a.code != 200 {
			t.Fatalf("resume: %d %s", a.code, a.raw)
		}
		eventually(t, id+" delivered", func() bool { return p.ok(wid("event", id)) == 1 })
	}
}

// A 3xx answer is a permanent failure: no retry, no redirect followed, a dead letter.
func TestRetryRedirectIsPermanent(t *testing.T) {
	codes := []int{301, 302, 303, 307, 308}
	redirect := map[string]int{} // webhook-id of r-<code> → code
	for _, c := range codes {
		redirect[wid("event", fmt.Sprintf("r-%d", c))] = c
	}
	p := newFlaky(t, func(x hit) int {
		if x.Path == "/moved" {
			return 0
		}
		return redirect[x.ID]
	})
	h := startFlaky(t, p, `retry: {schedule: [100ms], jitter: 0, max_attempts: 5}`)
	for _, c := range codes {
		h.post("event", fmt.Sprintf(`{"id":"r-%d"}`, c))
	}
	h.post("event", `{"id":"plain"}`)
	eventually(t, "the redirected messages dead-lettered", func() bool { return len(h.letters("endpoint=partner")) == len(codes) })
	eventually(t, "the plain message delivered", func() bool { return p.ok(wid("event", "plain")) == 1 })
	settle()

	letters := byMessage(t, h.letters(""))
	for _, c := range codes {
		id := fmt.Sprintf("r-%d", c)
		d := letters[id]
		if d.Reason != "permanent" || d.Code != c || d.Attempts != 1 || d.Stage != "deliver" {
			t.Errorf("%s: dead letter %+v", id, d)
		}
		if got := len(p.hitsFor(wid("event", id))); got != 1 {
			t.Errorf("%s: %d attempts, want 1", id, got)
		}
		s, trail := h.status(id)
		evs := stageEvents(trail, "deliver")
		if s != "dead_lettered" || len(evs) != 1 || evs[0].Code != c || evs[0].Reason != "permanent" {
			t.Errorf("%s: status %s %+v", id, s, evs)
		}
	}
	for _, x := range p.all() {
		if x.Path != "/webhook" {
			t.Errorf("a redirect was followed: %s %s", x.ID, x.Path)
		}
	}
	if st := h.endpointState(); st["state"] == deliver.Paused {
		t.Errorf("a redirect paused the endpoint: %v", st)
	}
	if n := h.scheduled(); n != 0 {
		t.Errorf("%v retries scheduled", n)
	}
}

// Dead letters replayed (one by id, then all that match a filter) are delivered exactly once
// more, with the same webhook-id; replaying them again does nothing.
func TestRetryReplayFromDeadLetters(t *testing.T) {
	p, broken := newFailingFlaky(t, http.StatusInternalServerError)
	h := startFlaky(t, p, `retry: {schedule: [100ms], jitter: 0, max_attempts: 2}`)
	events := []string{"e-1", "e-2", "e-3", "e-4"}
	for _, id := range events {
		h.post("event", fmt.Sprintf(`{"id":%q}`, id))
	}
	notes := []string{h.post("note", `{"n":1}`), h.post("note", `{"n":2}`)}
	msgOf := map[string]string{} // webhook-id → message id
	for _, id := range events {
		msgOf[wid("event", id)] = id
	}
	for _, id := range notes {
		msgOf[wid("note", id)] = id
	}
	eventually(t, "six dead letters", func() bool { return len(h.letters("reason=exhausted")) == 6 })
	settle()
	broken.Store(false)
	letters := byMessage(t, h.letters("type=event"))
	if len(letters) != len(events) {
		t.Fatalf("event dead letters: %+v", letters)
	}
	adm := h.admin()

	// One by id.
	one := letters["e-1"].ID
	a := adm.do("POST", "/v1/admin/dead-letters/"+one+"/replay", "", "", "", nil)
	if a.code != 200 || a.body["replayed"] != 1.0 {
		t.Fatalf("replay %s: %d %s", one, a.code, a.raw)
	}
	eventually(t, "e-1 delivered", func() bool { return p.ok(wid("event", "e-1")) == 1 })
	if a := adm.do("POST", "/v1/admin/dead-letters/"+one+"/replay", "", "", "", nil); a.code != 404 {
		t.Errorf("second replay of %s: %d %s", one, a.code, a.raw)
	}
	if a := adm.do("GET", "/v1/admin/dead-letters/"+one, "", "", "", nil); a.code != 404 {
		t.Errorf("replayed dead letter still shown: %d %s", a.code, a.raw)
	}

	// Time filters: every letter is from the last minute.
	past, future := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	if n := len(h.letters("since=" + past + "&until=" + future)); n != 5 {
		t.Errorf("since/until around now: %d letters, want 5", n)
	}
	if n := len(h.letters("since=" + future)); n != 0 {
		t.Errorf("since the future: %d letters", n)
	}
	if n := len(h.letters("until=" + past)); n != 0 {
		t.Errorf("until a minute ago: %d letters", n)
	}
	if a := adm.do("POST", "/v1/admin/dead-letters/replay?until="+past, "", "", "", nil); a.code != 200 || a.body["replayed"] != 0.0 {
		t.Errorf("replay until a minute ago: %d %s", a.code, a.raw)
	}
	// A filter is required for a bulk replay.
	for _, q := range []string{"", "?limit=1000", "?after=0"} { // paging alone is no filter
		if a := adm.do("POST", "/v1/admin/dead-letters/replay"+q, "", "", "", nil); a.code != 400 {
			t.Errorf("replay%s without a filter: %d %s", q, a.code, a.raw)
		}
		if a := adm.do("POST", "/v1/admin/dead-letters/discard"+q, "", "", "", nil); a.code != 400 {
			t.Errorf("discard%s without a filter: %d %s", q, a.code, a.raw)
		}
	}
	// All that match a filter: the other events, not the notes.
	a = adm.do("POST", "/v1/admin/dead-letters/replay?type=event", "", "", "", nil)
	if a.code != 200 || a.body["replayed"] != 3.0 {
		t.Fatalf("replay type=event: %d %s", a.code, a.raw)
	}
	eventually(t, "the events delivered", func() bool {
		for _, id := range events {
			if p.ok(wid("event", id)) == 0 {
				return false
			}
		}
		return true
	})
	if a := adm.do("POST", "/v1/admin/dead-letters/replay?type=event", "", "", "", nil); a.code != 200 || a.body["replayed"] != 0.0 {
		t.Errorf("second replay type=event: %d %s", a.code, a.raw)
	}
	if a := adm.do("POST", "/v1/admin/dead-letters/"+letters["e-2"].ID+"/replay", "", "", "", nil); a.code != 404 {
		t.Errorf("replay by id after the filter replay: %d %s", a.code, a.raw)
	}
	settle()

	for _, id := range events {
		hits := p.hitsFor(wid("event", id))
		if got := p.ok(wid("event", id)); got != 1 || len(hits) != 3 {
			t.Errorf("%s: %d attempts with %d 2xx; want 2 failed, then one 2xx: %+v", id, len(hits), got, hits)
		}
		s, trail := h.status(id)
		evs := stageEvents(trail, "deliver")
		if s != "delivered" || len(evs) < 2 || evs[len(evs)-2].Status != "replayed" || evs[len(evs)-1].Status != "delivered" ||
			evs[len(evs)-1].Attempts != 1 {
			t.Errorf("%s: status %s, trail %+v", id, s, evs)
		}
	}
	// Every attempt carries the webhook-id of one of the messages, and an event's body its id.
	for _, x := range p.all() {
		id, known := msgOf[x.ID]
		if x.Body == nil || !x.Verified || !known || !bytes.Contains(x.Body, []byte(id)) && !slices.Contains(notes, id) {
			t.Errorf("attempt with webhook-id %s (message %q): body %s, verified %v", x.ID, id, x.Body, x.Verified)
		}
	}
	// The notes are still dead, never delivered; discard them.
	for _, id := range notes {
		if got, ok := len(p.hitsFor(wid("note", id))), p.ok(wid("note", id)); got != 2 || ok != 0 {
			t.Errorf("note %s: %d attempts, %d 2xx", id, got, ok)
		}
	}
	if ls := h.letters(""); len(ls) != 2 || ls[0].Type != "note" || ls[1].Type != "note" {
		t.Fatalf("dead letters left: %+v", ls)
	}
	a = adm.do("POST", "/v1/admin/dead-letters/discard?type=note", "", "", "", nil)
	if a.code != 200 || a.body["discarded"] != 2.0 {
		t.Errorf("discard notes: %d %s", a.code, a.raw)
	}
	if a := adm.do("DELETE", "/v1/admin/dead-letters/"+one, "", "", "", nil); a.code != 404 {
		t.Errorf("discard of a replayed letter: %d %s", a.code, a.raw)
	}
	if ls := h.letters(""); len(ls) != 0 {
		t.Errorf("dead letters after the discard: %+v", ls)
	}
}

// A process step that fails for some messages dead-letters them as permanent at the process
// stage, at the first attempt; the others are persisted and delivered. A replay of a message
// that still fails makes a new dead letter.
func TestRetryProcessStepPermanent(t *testing.T) {
	p := newFlaky(t, nil)
	h := startFlaky(t, p, `retry: {schedule: [100ms], jitter: 0, max_attempts: 3}`)
	var lines, good, poison []string
	for i := range 20 {
		id := fmt.Sprintf("c-%02d", i)
		if i%7 == 3 {
			poison = append(poison, id)
			lines = append(lines, fmt.Sprintf(`{"id":%q,"poison":true}`, id))
		} else {
			good = append(good, id)
			lines = append(lines, fmt.Sprintf(`{"id":%q}`, id))
		}
	}
	h.postBatch("checked", lines)

	db, err := sql.Open("sqlite", filepath.Join(h.dataDir, "checked.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eventually(t, "rows, deliveries and dead letters", func() bool {
		return countRows(t, db, "checked") == len(good) && p.rcv.Unique() == len(good) &&
			len(h.letters("stage=process")) == len(poison)
	})
	settle()
	letters := byMessage(t, h.letters(""))
	if len(letters) != len(poison) {
		t.Fatalf("dead letters: %+v", letters)
	}
	for _, id := range poison {
		d := letters[id]
		if d.Stage != "process" || d.Reason != "permanent" || d.Attempts != 1 || d.Endpoint != "" ||
			d.Topic != "process" || !strings.Contains(d.Error, "bad input") {
			t.Errorf("%s: dead letter %+v", id, d)
		}
		if n := len(p.hitsFor(wid("checked", id))); n != 0 {
			t.Errorf("%s reached the partner %d times", id, n)
		}
		s, trail := h.status(id)
		evs := stageEvents(trail, "process")
		if s != "dead_lettered" || len(evs) != 1 || evs[0].Status != "dead_lettered" || evs[0].Reason != "permanent" ||
			evs[0].Letter != d.ID {
			t.Errorf("%s: status %s, trail %+v", id, s, trail)
		}
	}
	for _, id := range good {
		hits := p.hitsFor(wid("checked", id))
		if len(hits) != 1 || hits[0].Code != 204 || !bytes.Contains(hits[0].Body, []byte(`"checked":true`)) {
			t.Errorf("%s: hits %+v", id, hits)
		}
		if s, _ := h.status(id); s != "delivered" {
			t.Errorf("%s: status %s", id, s)
		}
	}
	if ls := h.letters("stage=deliver"); len(ls) != 0 {
		t.Errorf("deliver dead letters: %+v", ls)
	}

	// Replayed, they fail the same way again: new dead letters, nothing lost, nothing delivered.
	a := h.admin().do("POST", "/v1/admin/dead-letters/replay?stage=process", "", "", "", nil)
	if a.code != 200 || a.body["replayed"] != float64(len(poison)) {
		t.Fatalf("replay: %d %s", a.code, a.raw)
	}
	eventually(t, "new dead letters", func() bool {
		ls := h.letters("stage=process")
		if len(ls) != len(poison) {
			return false
		}
		for _, l := range ls {
			if letters[l.MessageID].ID == l.ID {
				return false
			}
		}
		return true
	})
	settle()
	if n := countRows(t, db, "checked"); n != len(good) {
		t.Errorf("rows = %d, want %d", n, len(good))
	}
	if n := p.rcv.Count(); n != len(good) {
		t.Errorf("partner accepted %d deliveries, want %d", n, len(good))
	}
}

// Message ids are unique only per client and type, so the webhook-id is derived from all three:
// the same id sent by two clients, and by one client under two types, reaches a partner that
// deduplicates on webhook-id as three deliveries under three webhook-ids, and a retried one keeps
// its webhook-id. (With webhook-id = message id the partner dropped all but the first.)
func TestRetryWebhookIDPerClientAndType(t *testing.T) {
	const id = "same-1"
	acmeEvent, globexEvent, acmeNote := wid("event", id), pipeline.WebhookID("globex", "event", id), wid("note", id)
	if acmeEvent == globexEvent || acmeEvent == acmeNote || globexEvent == acmeNote {
		t.Fatalf("webhook-ids not distinct: %s %s %s", acmeEvent, globexEvent, acmeNote)
	}
	// The partner refuses the first attempt of acme's event once, then takes everything.
	var refused atomic.Bool
	p := newFlaky(t, func(x hit) int {
		if x.ID == acmeEvent && refused.CompareAndSwap(false, true) {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	dir := t.TempDir()
	path := retryConfig(t, dir, p.url, `retry: {schedule: [100ms], jitter: 0, max_attempts: 5}`)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	withGlobex := strings.Replace(string(orig), "clients:\n", fmt.Sprintf("clients:\n  - {id: globex, token_hash: %s, types: [event]}\n", app.HashToken("globex-token")), 1)
	if withGlobex == string(orig) {
		t.Fatalf("no clients list in the config:\n%s", orig)
	}
	if err := os.WriteFile(path, []byte(withGlobex), 0o600); err != nil {
		t.Fatal(err)
	}
	h := launch(t, path, p.rcv)

	if got := h.post("event", `{"id":"same-1","from":"acme"}`); got != id {
		t.Fatalf("acme's event got id %s", got)
	}
	if a := h.do("POST", "/v1/messages/event", "globex", "globex-token", "application/json", []byte(`{"id":"same-1","from":"globex"}`)); a.code != 202 || a.body["id"] != id {
		t.Fatalf("globex's event: %d %s", a.code, a.raw)
	}
	if a := h.do("POST", "/v1/messages/note", "acme", "acme-token", "application/json", []byte(`{"from":"acme's note"}`), "Idempotency-Key", id); a.code != 202 || a.body["id"] != id {
		t.Fatalf("acme's note: %d %s", a.code, a.raw)
	}
	eventually(t, "three distinct deliveries", func() bool { return p.rcv.Unique() == 3 })
	eventually(t, "acme's event delivered", func() bool { s, _ := h.status(id); return s == "delivered" })
	settle()

	if n := p.rcv.Count(); n != 3 {
		t.Errorf("partner accepted %d deliveries, want 3", n)
	}
	for wid, from := range map[string]string{acmeEvent: `"from":"acme"`, globexEvent: `"from":"globex"`, acmeNote: `"from":"acme's note"`} {
		hits := p.hitsFor(wid)
		if p.ok(wid) != 1 || len(hits) == 0 || hits[len(hits)-1].Code != http.StatusNoContent {
			t.Errorf("webhook-id %s (%s): %+v, want one 2xx, last", wid, from, hits)
		}
		for _, x := range hits {
			if !x.Verified || !bytes.Contains(x.Body, []byte(from)) {
				t.Errorf("webhook-id %s carried %s (verified %v), want the message %s", wid, x.Body, x.Verified, from)
			}
		}
	}
	// The retry of acme's event: the 503, then the 2xx, under the same webhook-id and body.
	if hits := p.hitsFor(acmeEvent); len(hits) != 2 || hits[0].Code != http.StatusServiceUnavailable || !bytes.Equal(hits[0].Body, hits[1].Body) {
		t.Errorf("acme's event: %+v, want a 503 and its retry", hits)
	}
	if n := len(p.all()); n != 4 {
		t.Errorf("%d requests at the partner, want 4: %+v", n, p.all())
	}
	// (acme's trail of same-1 may hold its note's events too: look for the event's delivery.)
	_, trail := h.status(id)
	if !slices.ContainsFunc(stageEvents(trail, "deliver"), func(e event) bool { return e.Status == "delivered" && e.Attempts == 2 }) {
		t.Errorf("acme's event: trail %+v, want delivered at attempt 2", trail)
	}
}

// The same id sent again is a duplicate with the original receipt and no new effect, also after
// a restart on the same data dir; the same id with another body is a conflict.
func TestRetryDuplicatesAcrossRestart(t *testing.T) {
	h := start(t, "sqlite:orders.db", "orders", "")
	body := order("d-1", "c-1")
	a := h.do("POST", "/v1/messages/order", "acme", "acme-token", "application/json", body)
	if a.code != 202 || a.body["id"] != "d-1" || a.body["status"] != "accepted" || a.body["duplicate"] != nil {
		t.Fatalf("first post: %d %s", a.code, a.raw)
	}
	checkDup := func(h *harness, when string) {
		t.Helper()
		for range 3 {
			a := h.do("POST", "/v1/messages/order", "acme", "acme-token", "application/json", body)
			if a.code != 200 || a.body["duplicate"] != true || a.body["id"] != "d-1" || a.body["status"] != "accepted" {
				t.Fatalf("resend %s: %d %s", when, a.code, a.raw)
			}
		}
		if a := h.do("POST", "/v1/messages/order", "acme", "acme-token", "application/json", order("d-1", "c-2")); a.code != 409 {
			t.Fatalf("other body %s: %d %s", when, a.code, a.raw)
		}
		// Another client's id space is its own.
		if a := h.do("POST", "/v1/messages/order", "other", "other-token", "application/json", order("d-1", "c-2")); a.code != 202 && a.code != 200 {
			t.Fatalf("other client %s: %d %s", when, a.code, a.raw)
		}
	}
	checkDup(h, "before the delivery")

	db, err := sql.Open("sqlite", filepath.Join(h.dataDir, "orders.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eventually(t, "the rows", func() bool { return countRows(t, db, "orders") == 2 })
	eventually(t, "the deliveries", func() bool { return h.partner.Count() == 2 })
	checkDup(h, "after the delivery")
	h.stop()

	// The same config and data dir, a new process.
	h = launch(t, filepath.Join(filepath.Dir(h.dataDir), "weir.yaml"), h.partner)
	checkDup(h, "after a restart")
	eventually(t, "status delivered after a restart", func() bool {
		return h.do("GET", "/v1/messages/d-1", "acme", "acme-token", "", nil).body["status"] == "delivered"
	})
	settle()
	h.stop()
	if n := countRows(t, db, "orders"); n != 2 {
		t.Errorf("rows = %d, want 2 (one per client)", n)
	}
	if n := h.partner.Count(); n != 2 {
		t.Errorf("partner accepted %d deliveries, want 2 (one per client)", n)
	}
	var payload string
	if err := db.QueryRow(`select payload from orders where client='acme' and id='d-1'`).Scan(&payload); err != nil || !strings.Contains(payload, `"id":"c-1"`) {
		t.Errorf("acme's row: %s %v", payload, err)
	}
}

// max_age gives up when the next attempt would come too long after the first failure, however
// many attempts max_attempts still allows.
func TestRetryMaxAge(t *testing.T) {
	p := newFlaky(t, func(hit) int { return http.StatusServiceUnavailable })
	// Attempts at 0, 1 s and 2 s; a fourth at 3 s would be past the 2.5 s.
	h := startFlaky(t, p, `retry: {schedule: [1s], jitter: 0, max_attempts: 100, max_age: 2500ms}`)
	h.post("event", `{"id":"aged"}`)
	eventually(t, "the dead letter", func() bool { return len(h.letters("reason=exhausted")) == 1 })
	d := h.letters("")[0]
	if d.MessageID != "aged" || d.Attempts != 3 || d.Code != 503 {
		t.Errorf("dead letter %+v", d)
	}
	settle()
	if got := len(p.hitsFor(wid("event", "aged"))); got != 3 {
		t.Errorf("%d attempts, want 3", got)
	}
}

// Retries are durable: messages waiting for their next attempt when weir stops get it after
// the restart, once, and their trail goes on counting attempts.
func TestRetryScheduleSurvivesRestart(t *testing.T) {
	p, down := newFailingFlaky(t, http.StatusServiceUnavailable)
	path := retryConfig(t, t.TempDir(), p.url, `retry: {schedule: [1500ms], jitter: 0, max_attempts: 10}`)
	h := launch(t, path, p.rcv)
	ids := []string{"s-1", "s-2", "s-3", "s-4", "s-5"}
	for _, id := range ids {
		h.post("event", fmt.Sprintf(`{"id":%q}`, id))
	}
	eventually(t, "five retries scheduled", func() bool { return h.scheduled() == 5 })
	h.stop()
	for _, id := range ids {
		if got := len(p.hitsFor(wid("event", id))); got != 1 {
			t.Fatalf("%s: %d attempts before the restart, want 1", id, got)
		}
	}
	down.Store(false)

	h = launch(t, path, p.rcv)
	eventually(t, "delivered after the restart", func() bool {
		for _, id := range ids {
			if p.ok(wid("event", id)) == 0 {
				return false
			}
		}
		return true
	})
	settle()
	for _, id := range ids {
		if got, ok := len(p.hitsFor(wid("event", id))), p.ok(wid("event", id)); got != 2 || ok != 1 {
			t.Errorf("%s: %d attempts, %d 2xx; want 2 and 1", id, got, ok)
		}
		s, trail := h.status(id)
		evs := stageEvents(trail, "deliver")
		if s != "delivered" || len(evs) != 2 || evs[0].Status != "retrying" || evs[1].Status != "delivered" || evs[1].Attempts != 2 {
			t.Errorf("%s: status %s, trail %+v", id, s, evs)
		}
	}
	if n := h.scheduled(); n != 0 {
		t.Errorf("%v retries still scheduled", n)
	}
}

// An endpoint failing for longer than health.pause_after is paused; after a resume everything
// waiting is delivered exactly once.
func TestRetryFailingEndpointPauses(t *testing.T) {
	p, down := newFailingFlaky(t, http.StatusServiceUnavailable)
	h := startFlaky(t, p, `retry: {schedule: [100ms], jitter: 0, max_attempts: 1000}
health: {failing_after: 3, pause_after: 300ms}`)
	ids := []string{"f-1", "f-2", "f-3", "f-4"}
	for _, id := range ids {
		h.post("event", fmt.Sprintf(`{"id":%q}`, id))
	}
	eventually(t, "the endpoint paused", func() bool { return h.endpointState()["state"] == deliver.Paused })
	if st := h.endpointState(); !strings.Contains(fmt.Sprint(st["pause_reason"]), "failing since") {
		t.Errorf("pause: %v", st)
	}
	// Paused, nothing is attempted any more (allowing the attempts already under way to end).
	settle()
	before := p.attempts()
	settle()
	if after := p.attempts(); !maps.Equal(before, after) {
		t.Errorf("attempts while paused: before %v, after %v", before, after)
	}
	down.Store(false)
	if a := h.admin().do("POST", "/v1/admin/endpoints/partner/resume", "", "", "", nil); a.code != 200 || a.body["state"] != deliver.Healthy {
		t.Fatalf("resume: %d %s", a.code, a.raw)
	}
	eventually(t, "delivered after the resume", func() bool {
		for _, id := range ids {
			if s, _ := h.status(id); s != "delivered" {
				return false
			}
		}
		return true
	})
	settle()
	for _, id := range ids {
		if ok := p.ok(wid("event", id)); ok != 1 {
			t.Errorf("%s: %d 2xx answers, want 1", id, ok)
		}
	}
	if ls := h.letters(""); len(ls) != 0 {
		t.Errorf("dead letters: %+v", ls)
	}
	if n := h.scheduled(); n != 0 {
		t.Errorf("%v retries still scheduled", n)
	}
}

// dead_letters.notify sends an operations event for each dead letter, signed like any delivery,
// with a webhook-id derived from the dead letter's id (client "weir", type "weir.operations",
// message id "dl_" + letter id); the notify endpoint's own dead letters announce nothing.
func TestRetryDeadLetterNotify(t *testing.T) {
	var opsDown atomic.Bool
	poison := map[string]bool{wid("event", "n-poison"): true, wid("event", "n2-poison"): true}
	p := newFlaky(t, func(x hit) int {
		switch {
		case x.Path == "/ops" && opsDown.Load():
			return http.StatusInternalServerError
		case x.Path == "/ops":
			return 0
		case poison[x.ID]:
			return http.StatusInternalServerError
		case x.ID == wid("event", "moved"):
			return http.StatusFound
		}
		return 0
	})
	h := startFlaky(t, p, `retry: {schedule: [100ms], jitter: 0, max_attempts: 2}`, fmt.Sprintf(`  - name: ops
    url: %s/ops
    secret: %s
    allow_private: true
    retry: {schedule: [100ms], jitter: 0, max_attempts: 2}
dead_letters: {notify: ops}`, p.url, secret))
	h.post("event", `{"id":"n-poison"}`)
	h.post("event", `{"id":"moved"}`)
	h.post("event", `{"id":"fine"}`)
	opsHits := func() []hit {
		var out []hit
		for _, x := range p.all() {
			if x.Path == "/ops" {
				out = append(out, x)
			}
		}
		return out
	}
	eventually(t, "two operations events", func() bool { return len(opsHits()) == 2 })
	letters := byMessage(t, h.letters("endpoint=partner"))
	type opsEvent struct {
		Type string `json:"type"`
		Data letter `json:"data"`
	}
	got := map[string]opsEvent{}
	for _, x := range opsHits() {
		var e opsEvent
		if err := json.Unmarshal(x.Body, &e); err != nil {
			t.Fatalf("operations event %s: %v", x.Body, err)
		}
		if !x.Verified || x.Code != 204 || x.ID != pipeline.WebhookID("weir", "weir.operations", "dl_"+e.Data.ID) {
			t.Errorf("operations event: %+v", x)
		}
		got[e.Data.MessageID] = e
	}
	if e := got["n-poison"]; e.Type != "message.exhausted" || e.Data.ID != letters["n-poison"].ID || e.Data.Attempts != 2 || e.Data.Reason != "exhausted" {
		t.Errorf("event for n-poison: %+v", e)
	}
	if e := got["moved"]; e.Type != "message.dead_lettered" || e.Data.ID != letters["moved"].ID || e.Data.Reason != "permanent" || e.Data.Code != 302 {
		t.Errorf("event for moved: %+v", e)
	}

	// The operations webhook fails: its event is dead-lettered and announces nothing.
	opsDown.Store(true)
	h.post("event", `{"id":"n2-poison"}`)
	eventually(t, "the operations event dead-lettered", func() bool { return len(h.letters("endpoint=ops")) == 1 })
	settle()
	ops := h.letters("endpoint=ops")[0]
	if ops.Client != "weir" || ops.Reason != "exhausted" || ops.Attempts != 2 || ops.Code != 500 {
		t.Errorf("operations dead letter: %+v", ops)
	}
	if n := len(opsHits()); n != 4 {
		t.Errorf("%d requests to the operations webhook, want 2 events and 2 attempts of the third", n)
	}
	if n := len(h.letters("")); n != 4 {
		t.Errorf("%d dead letters, want 4", n)
	}
	if ok := p.ok(wid("event", "fine")); ok != 1 {
		t.Errorf("fine: %d 2xx", ok)
	}
}

// The persist step retries a sink that is busy on the type's schedule, without holding up the
// deliveries; the rows are written once the database is free.
func TestRetryPersistTransient(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the SQLite sink's 10 s busy timeout")
	}
	p := newFlaky(t, nil)
	h := startFlaky(t, p, "")
	// Another writer holds SQLite's write lock.
	lockDB, err := sql.Open("sqlite", filepath.Join(h.dataDir, "checked.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lockDB.Close()
	conn, err := lockDB.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	ids := []string{"b-1", "b-2", "b-3"}
	var lines []string
	for _, id := range ids {
		lines = append(lines, fmt.Sprintf(`{"id":%q}`, id))
	}
	h.postBatch("checked", lines)
	eventually(t, "deliveries while the sink is locked", func() bool { return p.rcv.Unique() == len(ids) })
	eventually(t, "a persist retry", func() bool {
		_, trail := h.status(ids[0])
		return len(stageEvents(trail, "persist")) > 0
	})
	if _, err := conn.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	locked = false

	db, err := sql.Open("sqlite", filepath.Join(h.dataDir, "checked.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eventually(t, "the rows", func() bool { return countRows(t, db, "checked") == len(ids) })
	eventually(t, "every status delivered", func() bool {
		for _, id := range ids {
			if s, _ := h.status(id); s != "delivered" {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		_, trail := h.status(id)
		evs := stageEvents(trail, "persist")
		if len(evs) < 2 || evs[len(evs)-1].Status != "persisted" {
			t.Errorf("%s: persist trail %+v", id, evs)
			continue
		}
		for j, e := range evs[:len(evs)-1] {
			if e.Status != "retrying" || e.Attempts != j+1 || e.NextAt.IsZero() ||
				!strings.Contains(strings.ToLower(e.Error), "locked") && !strings.Contains(strings.ToLower(e.Error), "busy") {
				t.Errorf("%s: persist event %d: %+v", id, j, e)
			}
		}
	}
	if ls := h.letters(""); len(ls) != 0 {
		t.Errorf("dead letters: %+v", ls)
	}
	if n := h.scheduled(); n != 0 {
		t.Errorf("%v retries still scheduled", n)
	}
}

// Retries whose endpoint left the config become dead letters with reason "removed", which
// cannot be replayed until the endpoint is back; then they are delivered once.
func TestRetryRemovedEndpoint(t *testing.T) {
	p, down := newFailingFlaky(t, http.StatusServiceUnavailable)
	dir := t.TempDir()
	path := retryConfig(t, dir, p.url, `retry: {schedule: [300ms], jitter: 0, max_attempts: 10}`)
	h := launch(t, path, p.rcv)
	h.post("event", `{"id":"x-1"}`)
	eventually(t, "a retry scheduled", func() bool { return h.scheduled() == 1 })
	h.stop()
	down.Store(false)

	// The same data dir, with the endpoint renamed: deliver.partner has no stage any more.
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	renamed := strings.NewReplacer("name: partner", "name: partner2", "deliver: [partner]", "deliver: [partner2]").Replace(string(orig))
	if err := os.WriteFile(path, []byte(renamed), 0o600); err != nil {
		t.Fatal(err)
	}
	h = launch(t, path, p.rcv)
	eventually(t, "the removed dead letter", func() bool { return len(h.letters("reason=removed")) == 1 })
	d := h.letters("")[0]
	if d.MessageID != "x-1" || d.Endpoint != "partner" || d.Topic != "deliver.partner" || d.Type != "event" || d.Client != "acme" {
		t.Errorf("dead letter %+v", d)
	}
	if n := h.scheduled(); n != 0 {
		t.Errorf("%v retries scheduled", n)
	}
	if a := h.admin().do("POST", "/v1/admin/dead-letters/"+d.ID+"/replay", "", "", "", nil); a.code != 409 {
		t.Errorf("replay into a removed stage: %d %s", a.code, a.raw)
	}
	if len(h.letters("")) != 1 {
		t.Fatalf("the refused replay lost the dead letter")
	}
	h.stop()

	// The endpoint is back: the replay delivers it once.
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	h = launch(t, path, p.rcv)
	if a := h.admin().do("POST", "/v1/admin/dead-letters/"+d.ID+"/replay", "", "", "", nil); a.code != 200 || a.body["replayed"] != 1.0 {
		t.Fatalf("replay: %d %s", a.code, a.raw)
	}
	eventually(t, "x-1 delivered", func() bool { return p.ok(wid("event", "x-1")) == 1 })
	settle()
	if hits := p.hitsFor(wid("event", "x-1")); len(hits) != 2 || p.ok(wid("event", "x-1")) != 1 {
		t.Errorf("x-1: %+v", hits)
	}
}
