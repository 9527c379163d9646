package app_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/weirhq/weir/internal/app"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/partner"
	"github.com/weirhq/weir/internal/pipeline"
)

const secret = "whsec_dGVzdC1zZWNyZXQtZm9yLWUyZS10ZXN0cy0xMjM0NQ=="

// harness is a whole weir started in-process on 127.0.0.1:0, with a partner that verifies
// signatures.
type harness struct {
	t       *testing.T
	app     *app.App
	url     string
	partner *partner.Receiver
	dataDir string
	stop    func()
}

func quickstartFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../examples/quickstart", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// start runs weir with the quickstart's order type, a sink at dsn (sqlite:… or postgres://…)
// and the given extra YAML for clients.
func start(t *testing.T, dsn, table, extra string) *harness {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "order.schema.json"), quickstartFile(t, "order.schema.json"), 0o600)
	os.WriteFile(filepath.Join(dir, "transform.jq"), quickstartFile(t, "transform.jq"), 0o600)
	sec, _ := deliver.ParseSecret(secret)
	rcv := partner.New(partner.Config{Secrets: [][]byte{sec}})
	ps := httptest.NewServer(rcv)
	t.Cleanup(ps.Close)
	yaml := fmt.Sprintf(`
data_dir: data
runtime: {partitions: 4, shutdown_timeout: 5s}
limits: {max_body: 8KiB}
clients:
  - id: acme
    token_hash: %s
    types: [order]
  - id: other
    token_hash: %s
    types: [order]
  - id: limited
    token_hash: %s
    types: [order]
    rate_limit: {rate: 1, burst: 2}
%s
types:
  - name: order
    schema: order.schema.json
    key: /customer/id
    id: /id
    pipeline:
      process: [{jq_file: transform.jq}]
      sink:
        dsn: %s
        table: %s
        columns: [{name: total, pointer: /total, type: numeric}]
      deliver: [partner]
  - name: note
    pipeline:
      deliver: [partner]
endpoints:
  - name: partner
    url: %s/webhook
    secret: %s
    allow_private: true
`, app.HashToken("acme-token"), app.HashToken("other-token"), app.HashToken("limited-token"), extra, dsn, table, ps.URL, secret)
	os.WriteFile(filepath.Join(dir, "weir.yaml"), []byte(yaml), 0o600)
	return launch(t, filepath.Join(dir, "weir.yaml"), rcv)
}

type answer struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func (h *harness) do(method, path, user, token, ctype string, body []byte, hdr ...string) answer {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if user != "" {
		req.SetBasicAuth(user, token)
	} else if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &a.body)
	return a
}

func order(id, customer string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"customer":{"id":%q,"email":"A@B.example"},"currency":"eur","items":[{"sku":"s","qty":2,"price":1.25}],"shipping":{"country":"de"}}`, id, customer))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func countRows(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("select count(*) from " + table).Scan(&n); err != nil {
		return -1
	}
	return n
}

func TestEndToEndSQLite(t *testing.T) {
	h := start(t, "sqlite:orders.db", "orders", "")
	const n = 40
	for i := range n {
		a := h.do("POST", "/v1/messages/order", "acme", "acme-token", "application/json", order(fmt.Sprintf("o-%d", i), fmt.Sprintf("c-%d", i%3)))
		if a.code != 202 || a.body["id"] != fmt.Sprintf("o-%d", i) || a.body["status"] != "accepted" {
			t.Fatalf("post %d: %d %s", i, a.code, a.raw)
		}
	}
	// An NDJSON batch with one bad line: the good lines are accepted.
	batch := bytes.Join([][]byte{order("b-1", "c-1"), []byte(`{"id":"b-bad"}`), order("b-2", "c-2")}, []byte("\n"))
	a := h.do("POST", "/v1/messages/order/batch", "acme", "acme-token", "application/x-ndjson", batch)
	if a.code != 207 || a.body["accepted"] != 2.0 || a.body["rejected"] != 1.0 {
		t.Fatalf("batch: %d %s", a.code, a.raw)
	}
	res := a.body["results"].([]any)
	if r := res[1].(map[string]any); r["status"] != "rejected" || r["line"] != 2.0 || len(r["errors"].([]any)) == 0 {
		t.Fatalf("bad line result: %v", r)
	}

	db, err := sql.Open("sqlite", filepath.Join(h.dataDir, "orders.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eventually(t, "rows in SQLite", func() bool { return countRows(t, db, "orders") == n+2 })
	eventually(t, "deliveries at the partner", func() bool { return h.partner.Unique() == n+2 })

	var total float64
	var payload string
	if err := db.QueryRow(`select total, payload from orders where client='acme' and id='o-7'`).Scan(&total, &payload); err != nil {
		t.Fatal(err)
	}
	if total != 2.5 || !strings.Contains(payload, `"currency":"EUR"`) {
		t.Fatalf("row: total %v payload %s", total, payload)
	}
	o7 := 0
	for _, d := range h.partner.Deliveries() {
		if d.ID == pipeline.WebhookID("acme", "order", "o-7") {
			o7++
			if !strings.Contains(string(d.Body), `"total":2.5`) {
				t.Fatalf("delivered body: %s", d.Body)
			}
		}
	}
	if o7 == 0 {
		t.Fatalf("o-7 not delivered under its webhook-id")
	}

	// The status trail says delivered, to its sender only.
	eventually(t, "status delivered", func() bool {
		return h.do("GET", "/v1/messages/o-7", "acme", "acme-token", "", nil).body["status"] == "delivered"
	})
	if a := h.do("GET", "/v1/messages/o-7", "other", "other-token", "", nil); a.code != 404 {
		t.Fatalf("other client sees the status: %d %s", a.code, a.raw)
	}

	// A resend is a duplicate with the original receipt and no new effect; same id, other body: 409.
	if a := h.do("POST", "/v1/messages/order", "acme", "acme-token", "application/json", order("o-7", "c-1")); a.code != 200 || a.body["duplicate"] != true {
		t.Fatalf("resend: %d %s", a.code, a.raw)
	}
	if a := h.do("POST", "/v1/messages/order", "acme", "acme-token", "application/json", order("o-7", "c-2")); a.code != 409 {
		t.Fatalf("conflict: %d %s", a.code, a.raw)
	}
	h.stop()
	if got := countRows(t, db, "orders"); got != n+2 {
		t.Fatalf("rows after resend = %d", got)
	}
	if h.partner.Unique() != n+2 {
		t.Fatalf("partner unique = %d", h.partner.Unique())
	}
}

func TestIngestErrors(t *testing.T) {
	h := start(t, "sqlite:orders.db", "orders", "")
	good := order("e-1", "c")
	cases := []struct {
		name          string
		user, token   string
		ctype         string
		path          string
		body          []byte
		code          int
		wantInProblem string
	}{
		{"unknown client", "nobody", "acme-token", "application/json", "/v1/messages/order", good, 401, "unknown client or wrong token"},
		{"wrong token", "acme", "nope", "application/json", "/v1/messages/order", good, 401, "unknown client or wrong token"},
		{"type not allowed", "acme", "acme-token", "application/json", "/v1/messages/note", []byte(`{}`), 403, "may not send"},
		{"unknown type", "acme", "acme-token", "application/json", "/v1/messages/nope", []byte(`{}`), 403, "may not send"},
		{"wrong content type", "acme", "acme-token", "text/plain", "/v1/messages/order", good, 415, "application/json"},
		{"too large", "acme", "acme-token", "application/json", "/v1/messages/order", bytes.Repeat([]byte(" "), 9000), 413, "limit"},
		{"not json", "acme", "acme-token", "application/json", "/v1/messages/order", []byte(`{"id":`), 400, "invalid JSON"},
		{"nesting bomb", "acme", "acme-token", "application/json", "/v1/messages/order", bytes.Repeat([]byte("["), 4000), 400, "invalid JSON"},
		{"schema", "acme", "acme-token", "application/json", "/v1/messages/order", []byte(`{"id":"x","currency":"euro"}`), 400, "violation"},
	}
	for _, c := range cases {
		a := h.do("POST", c.path, c.user, c.token, c.ctype, c.body)
		if a.code != c.code || !strings.Contains(a.raw, c.wantInProblem) {
			t.Errorf("%s: %d %s", c.name, a.code, a.raw)
		}
		if a.code >= 400 && a.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: content type %q", c.name, a.header.Get("Content-Type"))
		}
	}
	// Every violation is listed with its pointer.
	a := h.do("POST", "/v1/messages/order", "acme", "acme-token", "application/json", []byte(`{"id":"x","customer":{"id":"c","email":"nope"},"currency":"euro","items":[],"shipping":{"country":"deu"}}`))
	ptrs := map[string]bool{}
	for _, e := range a.body["errors"].([]any) {
		ptrs[e.(map[string]any)["pointer"].(string)] = true
	}
	for _, want := range []string{"/customer/email", "/currency", "/items", "/shipping/country"} {
		if !ptrs[want] {
			t.Errorf("no violation at %s: %s", want, a.raw)
		}
	}
	// Bearer works; the rate-limited client gets 429 with Retry-After once its burst is spent.
	if a := h.do("POST", "/v1/messages/order", "", "acme-token", "application/json", good); a.code != 202 {
		t.Fatalf("bearer: %d %s", a.code, a.raw)
	}
	var last answer
	for i := range 4 {
		last = h.do("POST", "/v1/messages/order", "limited", "limited-token", "application/json", order(fmt.Sprintf("l-%d", i), "c"))
	}
	if last.code != 429 || last.header.Get("Retry-After") == "" {
		t.Fatalf("rate limit: %d %v %s", last.code, last.header, last.raw)
	}
	// Idempotency-Key and PUT with a client-assigned id.
	note := []byte(`{"text":"hi"}`)
	extra := h.do("PUT", "/v1/messages/order/put-1", "acme", "acme-token", "application/json", order("ignored", "c"))
	if extra.code != 202 || extra.body["id"] != "put-1" {
		t.Fatalf("put: %d %s", extra.code, extra.raw)
	}
	_ = note
	if a := h.do("GET", "/healthz", "", "", "", nil); a.code != 200 {
		t.Fatalf("healthz %d", a.code)
	}
	if a := h.do("GET", "/readyz", "", "", "", nil); a.code != 200 {
		t.Fatalf("readyz %d", a.code)
	}
}

func TestEndToEndPostgres(t *testing.T) {
	dsn := os.Getenv("WEIR_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	table := fmt.Sprintf("e2e_orders_%d", time.Now().UnixNano())
	pg, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if err := pg.Ping(); err != nil {
		t.Fatalf("PostgreSQL at %s: %v (start it, or set WEIR_TEST_POSTGRES)", dsn, err)
	}
	t.Cleanup(func() { pg.Exec("drop table if exists " + table) })
	h := start(t, dsn, table, "")
	const n = 25
	var lines [][]byte
	for i := range n {
		lines = append(lines, order(fmt.Sprintf("p-%d", i), fmt.Sprintf("c-%d", i%4)))
	}
	a := h.do("POST", "/v1/messages/order/batch", "acme", "acme-token", "application/x-ndjson", bytes.Join(lines, []byte("\n")))
	if a.code != 202 || a.body["accepted"] != float64(n) {
		t.Fatalf("batch: %d %s", a.code, a.raw)
	}
	eventually(t, "rows in PostgreSQL", func() bool { return countRows(t, pg, table) == n })
	eventually(t, "deliveries", func() bool { return h.partner.Unique() == n })
	var total float64
	if err := pg.QueryRow(`select total from ` + table + ` where client='acme' and id='p-3'`).Scan(&total); err != nil || total != 2.5 {
		t.Fatalf("total = %v, %v", total, err)
	}
}

// R11: 100 concurrent posts of one message get one receipt and cause one effect.
func TestConcurrentDuplicatesOneEffect(t *testing.T) {
	h := start(t, "sqlite:orders.db", "orders", "")
	body := order("dup-1", "c-1")
	var wg sync.WaitGroup
	codes := make([]int, 100)
	ids := make([]any, 100)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", h.url+"/v1/messages/order", bytes.NewReader(body))
			req.SetBasicAuth("acme", "acme-token")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var r map[string]any
			json.NewDecoder(resp.Body).Decode(&r)
			codes[i], ids[i] = resp.StatusCode, r["id"]
		}()
	}
	wg.Wait()
	accepted := 0
	for i, c := range codes {
		switch {
		case c == 202:
			accepted++
		case c == 200:
		default:
			t.Fatalf("post %d: status %d", i, c)
		}
		if ids[i] != "dup-1" {
			t.Fatalf("post %d: id %v", i, ids[i])
		}
	}
	if accepted != 1 {
		t.Fatalf("%d posts were accepted as new, want 1", accepted)
	}
	db, err := sql.Open("sqlite", filepath.Join(h.dataDir, "orders.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eventually(t, "the row", func() bool { return countRows(t, db, "orders") == 1 })
	eventually(t, "the delivery", func() bool { return h.partner.Unique() == 1 })
	h.stop()
	if n := countRows(t, db, "orders"); n != 1 {
		t.Fatalf("rows = %d", n)
	}
	if n := h.partner.Count(); n != 1 {
		t.Fatalf("partner got %d deliveries", n)
	}
}
