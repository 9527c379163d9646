package app_test

// End-to-end tests of XML partners on the example examples/xml-partner, run as shipped (its
// weir.yaml, XSDs and stylesheets): two XML dialects of the order type end as the same canonical
// message as a JSON order, in SQLite and at a real partner that verifies signatures; invalid
// documents are rejected with the errors of the example's golden corpus; the upload path
// POST /v1/files answers per file.

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"mime/multipart"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/format/libxml"
	"github.com/weirhq/weir/internal/partner"
	"github.com/weirhq/weir/internal/pipeline"
)

const xmlExample = "../../examples/xml-partner"

// xmlTokens are the example's published demo tokens.
var xmlTokens = map[string]string{"acme": "acme-token", "globex": "globex-token", "demo": "demo-token"}

// startXMLExample runs weir on examples/xml-partner/weir.yaml as it is, with the partner URL,
// its secret and the data dir from the environment, as `weir serve` would read them.
func startXMLExample(t *testing.T) *harness {
	t.Helper()
	if !libxml.Available() {
		t.Skip("built without cgo: no XML")
	}
	sec, err := deliver.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	rcv := partner.New(partner.Config{Secrets: [][]byte{sec}})
	ps := httptest.NewServer(rcv)
	t.Cleanup(ps.Close)
	t.Setenv("WEIR_DEMO_PARTNER_URL", ps.URL+"/webhook")
	t.Setenv("WEIR_DEMO_SECRET", secret)
	t.Setenv("WEIR_DATA_DIR", t.TempDir())
	return launch(t, filepath.Join(xmlExample, "weir.yaml"), rcv)
}

func exampleFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(xmlExample, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenDoc is one document of examples/xml-partner/testdata/golden.json.
type goldenDoc struct {
	File        string `json:"file"`
	Client      string `json:"client"`
	ContentType string `json:"content_type"`
	Status      int    `json:"status"`
	ID          string `json:"id"`
	Canonical   string `json:"canonical"`
	Problem     string `json:"problem"`
	Errors      []struct {
		Line    int    `json:"line"`
		Column  int    `json:"column"`
		Message string `json:"message"`
	} `json:"errors"`
}

func golden(t *testing.T) []goldenDoc {
	t.Helper()
	var g struct {
		Documents []goldenDoc `json:"documents"`
	}
	if err := json.Unmarshal(exampleFile(t, "testdata/golden.json"), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Documents) == 0 {
		t.Fatal("golden.json lists no document")
	}
	return g.Documents
}

func goldenFile(t *testing.T, file string) goldenDoc {
	t.Helper()
	for _, d := range golden(t) {
		if d.File == file {
			return d
		}
	}
	t.Fatalf("%s is not in golden.json", file)
	return goldenDoc{}
}

// checkErrors compares the errors of a problem or a file result with the golden ones: as many,
// in order, on the same lines, at the same columns where the golden one has one, and with the
// golden message in theirs. Every well-formedness error must have a column.
func checkErrors(t *testing.T, what string, d goldenDoc, got any) {
	t.Helper()
	list, _ := got.([]any)
	if len(list) != len(d.Errors) {
		t.Errorf("%s: %d errors, golden has %d: %v", what, len(list), len(d.Errors), got)
		return
	}
	for i, want := range d.Errors {
		e, _ := list[i].(map[string]any)
		line, _ := e["line"].(float64)
		col, _ := e["column"].(float64)
		msg, _ := e["message"].(string)
		if int(line) != want.Line || (want.Column != 0 && int(col) != want.Column) || !strings.Contains(msg, want.Message) {
			t.Errorf("%s: error %d is line %v column %v %q; golden: line %d column %d %q", what, i, line, col, msg, want.Line, want.Column, want.Message)
		}
		if d.Problem == "invalid-xml" && col <= 0 {
			t.Errorf("%s: error %d of a document that is not well-formed has no column: %v", what, i, e)
		}
	}
}

// withoutStamp decodes a delivered or stored order and drops ingested_at, the one field that
// differs between two messages of the same order; it must be there.
func withoutStamp(t *testing.T, what string, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %v: %s", what, err, body)
	}
	if _, ok := m["ingested_at"].(string); !ok {
		t.Errorf("%s: no ingested_at: %s", what, body)
	}
	delete(m, "ingested_at")
	return m
}

// orderTotal is what transform.jq computes from a canonical order.
func orderTotal(t *testing.T, canonical []byte) float64 {
	t.Helper()
	var o struct {
		Items []struct {
			Qty   float64 `json:"qty"`
			Price float64 `json:"price"`
		} `json:"items"`
	}
	if err := json.Unmarshal(canonical, &o); err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, it := range o.Items {
		sum += it.Qty * it.Price
	}
	return math.Round(sum*100) / 100
}

// row is an order as the SQLite sink stored it.
type row struct {
	Key, Customer, Currency string
	Total                   float64
	Payload                 string
}

func orderRow(t *testing.T, db *sql.DB, client, id string) row {
	t.Helper()
	var r row
	err := db.QueryRow(`select msg_key, customer_id, currency, total, payload from orders where client = ? and id = ? and type = 'order'`,
		client, id).Scan(&r.Key, &r.Customer, &r.Currency, &r.Total, &r.Payload)
	if err != nil {
		t.Fatalf("row %s/%s: %v", client, id, err)
	}
	return r
}

// delivered returns the body delivered for client's order id, under its webhook-id (the partner
// verified its signature: it records nothing else).
func delivered(t *testing.T, rcv *partner.Receiver, client, id string) []byte {
	t.Helper()
	wid := pipeline.WebhookID(client, "order", id)
	var body []byte
	for _, d := range rcv.Deliveries() {
		if d.ID == wid {
			if body != nil && !bytes.Equal(body, d.Body) {
				t.Errorf("two different bodies delivered for %s/%s", client, id)
			}
			body = d.Body
		}
	}
	if body == nil {
		t.Fatalf("nothing delivered for %s/%s", client, id)
	}
	return body
}

func openOrders(t *testing.T, h *harness) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(h.dataDir, "xml-partner.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestXMLPartnersEndToEnd(t *testing.T) {
	h := startXMLExample(t)
	docs := golden(t)

	// Every document of the corpus gets its golden answer.
	var valid []goldenDoc
	for _, d := range docs {
		a := h.do("POST", "/v1/messages/order", d.Client, xmlTokens[d.Client], d.ContentType, exampleFile(t, d.File))
		if a.code != d.Status {
			t.Errorf("%s from %s: %d, golden %d: %s", d.File, d.Client, a.code, d.Status, a.raw)
			continue
		}
		if d.Status == 202 {
			if a.body["id"] != d.ID || a.body["status"] != "accepted" {
				t.Errorf("%s: receipt %s, want id %s", d.File, a.raw, d.ID)
			}
			valid = append(valid, d)
			continue
		}
		if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: content type %q", d.File, ct)
		}
		if want := "https://weir.dev/problems/" + d.Problem; a.body["type"] != want {
			t.Errorf("%s: problem %v, golden %s: %s", d.File, a.body["type"], want, a.raw)
		}
		checkErrors(t, d.File, d, a.body["errors"])
	}
	if t.Failed() {
		t.FailNow()
	}
	dialects := map[string]bool{}
	for _, d := range valid {
		dialects[d.Client] = true
	}
	if !dialects["acme"] || !dialects["globex"] {
		t.Fatalf("the corpus must hold valid documents of both dialects: %v", dialects)
	}

	// The same orders as JSON from the JSON client, under another id (another client's webhook-ids
	// differ anyway: they are derived from client, type and id).
	for _, d := range valid {
		a := h.do("POST", "/v1/messages/order", "demo", "demo-token", "application/json", exampleFile(t, d.Canonical),
			"Idempotency-Key", "json-"+d.ID)
		if a.code != 202 || a.body["id"] != "json-"+d.ID {
			t.Fatalf("JSON twin of %s: %d %s", d.File, a.code, a.raw)
		}
	}

	db := openOrders(t, h)
	n := 2 * len(valid)
	eventually(t, "rows in SQLite", func() bool { return countRows(t, db, "orders") == n })
	eventually(t, "signed deliveries at the partner", func() bool { return h.partner.Unique() == n })

	// An XML order and its JSON twin are the same message: the same columns, the same payload,
	// the same delivered body (but for the time each was ingested).
	for _, d := range valid {
		canonical := exampleFile(t, d.Canonical)
		var c struct {
			Customer struct {
				ID string `json:"id"`
			} `json:"customer"`
			Currency string `json:"currency"`
		}
		json.Unmarshal(canonical, &c)
		x, j := orderRow(t, db, d.Client, d.ID), orderRow(t, db, "demo", "json-"+d.ID)
		if x.Key != c.Customer.ID || x.Customer != c.Customer.ID || x.Currency != strings.ToUpper(c.Currency) || x.Total != orderTotal(t, canonical) {
			t.Errorf("%s: row %+v, want key and customer %s, currency %s, total %v", d.File, x, c.Customer.ID, c.Currency, orderTotal(t, canonical))
		}
		if x.Key != j.Key || x.Customer != j.Customer || x.Currency != j.Currency || x.Total != j.Total {
			t.Errorf("%s: XML row %+v, JSON row %+v", d.File, x, j)
		}
		xp, jp := withoutStamp(t, d.File+" stored", []byte(x.Payload)), withoutStamp(t, d.File+" JSON twin stored", []byte(j.Payload))
		if !reflect.DeepEqual(xp, jp) {
			t.Errorf("%s: stored payloads differ:\n XML  %s\n JSON %s", d.File, x.Payload, j.Payload)
		}
		xd := withoutStamp(t, d.File+" delivered", delivered(t, h.partner, d.Client, d.ID))
		jd := withoutStamp(t, d.File+" JSON twin delivered", delivered(t, h.partner, "demo", "json-"+d.ID))
		if !reflect.DeepEqual(xd, jd) {
			t.Errorf("%s: delivered bodies differ:\n XML  %v\n JSON %v", d.File, xd, jd)
		}
		if xd["id"] != d.ID || xd["item_count"] == nil || xd["total"] != x.Total {
			t.Errorf("%s: delivered %v", d.File, xd)
		}
	}
	eventually(t, "acme's order delivered", func() bool {
		return h.do("GET", "/v1/messages/PO-ACME-2026-004711", "acme", "acme-token", "", nil).body["status"] == "delivered"
	})

	// A client without a dialect posts JSON only.
	if a := h.do("POST", "/v1/messages/order", "demo", "demo-token", "application/xml", exampleFile(t, "acme-order.xml")); a.code != 415 ||
		a.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("XML from a client without a dialect: %d %s", a.code, a.raw)
	}
	// Each client has its own dialect: ACME's document is not Globex's.
	if a := h.do("POST", "/v1/messages/order", "globex", "globex-token", "application/xml", exampleFile(t, "acme-order.xml")); a.code != 400 ||
		!strings.Contains(a.raw, "No matching global declaration") {
		t.Errorf("ACME's order from globex: %d %s", a.code, a.raw)
	}
	// XXE: the DOCTYPE is refused before any entity is declared, nothing is read.
	a := h.do("POST", "/v1/messages/order", "acme", "acme-token", "application/xml", exampleFile(t, "testdata/acme/invalid/xxe.xml"))
	if a.code != 400 || !strings.Contains(a.raw, "DOCTYPE declarations are not allowed") || strings.Contains(a.raw, "root:") {
		t.Errorf("XXE: %d %s", a.code, a.raw)
	}

	// A byte-identical resend is a duplicate; the same order number with another body is a
	// conflict (the receipt hashes the XML as sent).
	acme := exampleFile(t, "acme-order.xml")
	if a := h.do("POST", "/v1/messages/order", "acme", "acme-token", "text/xml", acme); a.code != 200 || a.body["duplicate"] != true ||
		a.body["id"] != "PO-ACME-2026-004711" {
		t.Errorf("resend: %d %s", a.code, a.raw)
	}
	changed := bytes.Replace(acme, []byte(`qty="12"`), []byte(`qty="13"`), 1)
	if bytes.Equal(changed, acme) {
		t.Fatal("acme-order.xml has no line with qty=\"12\"")
	}
	if a := h.do("POST", "/v1/messages/order", "acme", "acme-token", "application/xml", changed); a.code != 409 || a.body["id"] != "PO-ACME-2026-004711" {
		t.Errorf("same order number, other body: %d %s", a.code, a.raw)
	}
	globex := exampleFile(t, "globex-order.xml")
	if a := h.do("POST", "/v1/messages/order", "globex", "globex-token", "application/xml", globex); a.code != 200 || a.body["duplicate"] != true {
		t.Errorf("globex resend: %d %s", a.code, a.raw)
	}
	h.stop()
	if got := countRows(t, db, "orders"); got != n {
		t.Errorf("rows after the resends = %d, want %d", got, n)
	}
	if h.partner.Unique() != n || h.partner.Count() != n {
		t.Errorf("partner: %d unique, %d in all, want %d", h.partner.Unique(), h.partner.Count(), n)
	}
}

// filePart is one file of a multipart upload.
type filePart struct{ name, ctype, path string }

// upload builds a multipart/form-data body with the given fields (name, value pairs) and files
// read from the example.
func upload(t *testing.T, fields []string, files ...filePart) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		w.WriteField(fields[i], fields[i+1])
	}
	for _, f := range files {
		hdr := textproto.MIMEHeader{}
		hdr.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, f.name))
		if f.ctype != "" {
			hdr.Set("Content-Type", f.ctype)
		}
		p, err := w.CreatePart(hdr)
		if err != nil {
			t.Fatal(err)
		}
		p.Write(exampleFile(t, f.path))
	}
	w.Close()
	return w.FormDataContentType(), b.Bytes()
}

func TestXMLFilesUpload(t *testing.T) {
	h := startXMLExample(t)
	db := openOrders(t, h)
	files := []filePart{
		{"globex-order.xml", "text/xml", "globex-order.xml"},
		{"bad.xml", "application/xml", "testdata/globex/invalid/schema-violations.xml"},
		{"single-item.xml", "", "testdata/globex/valid/single-item.xml"}, // no Content-Type: the dialect's XML
	}
	ctype, body := upload(t, []string{"client_id", "globex", "token", "globex-token", "message_type", "order"}, files...)
	a := h.do("POST", "/v1/files", "", "", ctype, body)
	if a.code != 207 || a.body["accepted"] != 2.0 || a.body["rejected"] != 1.0 {
		t.Fatalf("upload: %d %s", a.code, a.raw)
	}
	res, _ := a.body["results"].([]any)
	if len(res) != 3 {
		t.Fatalf("results: %s", a.raw)
	}
	want := []struct {
		file, id, status string
		code             float64
	}{
		{"globex-order.xml", "GX-2026-118804", "accepted", 202},
		{"bad.xml", "", "rejected", 400},
		{"single-item.xml", "GX-2026-118900", "accepted", 202},
	}
	for i, w := range want {
		r := res[i].(map[string]any)
		id, _ := r["id"].(string)
		if r["file"] != w.file || id != w.id || r["status"] != w.status || r["code"] != w.code {
			t.Errorf("result %d: %v, want %+v", i, r, w)
		}
	}
	bad := res[1].(map[string]any)
	checkErrors(t, "bad.xml", goldenFile(t, "testdata/globex/invalid/schema-violations.xml"), bad["errors"])

	eventually(t, "the uploaded orders in SQLite", func() bool { return countRows(t, db, "orders") == 2 })
	eventually(t, "the uploaded orders at the partner", func() bool { return h.partner.Unique() == 2 })
	for _, id := range []string{"GX-2026-118804", "GX-2026-118900"} {
		orderRow(t, db, "globex", id)
		delivered(t, h.partner, "globex", id)
	}

	// The same upload again: the good files are duplicates with their ids, the bad one is bad.
	a = h.do("POST", "/v1/files", "", "", ctype, body)
	if a.code != 207 || a.body["accepted"] != 2.0 || a.body["rejected"] != 1.0 {
		t.Fatalf("upload again: %d %s", a.code, a.raw)
	}
	for _, i := range []int{0, 2} {
		if r := a.body["results"].([]any)[i].(map[string]any); r["code"] != 200.0 || r["duplicate"] != true || r["id"] != want[i].id {
			t.Errorf("again, result %d: %v", i, r)
		}
	}

	// Only bad files: 400, with every result.
	ctype2, body2 := upload(t, []string{"client_id", "acme", "token", "acme-token", "message_type", "order"},
		filePart{"xxe.xml", "application/xml", "testdata/acme/invalid/xxe.xml"},
		filePart{"unclosed.xml", "application/xml", "testdata/acme/invalid/unclosed-tag.xml"})
	if a := h.do("POST", "/v1/files", "", "", ctype2, body2); a.code != 400 || a.body["rejected"] != 2.0 ||
		!strings.Contains(a.raw, "DOCTYPE declarations are not allowed") {
		t.Errorf("only bad files: %d %s", a.code, a.raw)
	} else {
		res := a.body["results"].([]any)
		checkErrors(t, "xxe.xml", goldenFile(t, "testdata/acme/invalid/xxe.xml"), res[0].(map[string]any)["errors"])
		checkErrors(t, "unclosed.xml", goldenFile(t, "testdata/acme/invalid/unclosed-tag.xml"), res[1].(map[string]any)["errors"])
	}

	// A JSON client uploads JSON files; its XML files are refused one by one (415).
	ctype3, body3 := upload(t, []string{"client_id", "demo", "token", "demo-token", "message_type", "order"},
		filePart{"order.json", "application/json", "acme-order.json"},
		filePart{"order.xml", "application/xml", "acme-order.xml"})
	if a := h.do("POST", "/v1/files", "", "", ctype3, body3); a.code != 207 {
		t.Fatalf("JSON client's upload: %d %s", a.code, a.raw)
	} else if r := a.body["results"].([]any); r[0].(map[string]any)["code"] != 202.0 || r[1].(map[string]any)["code"] != 415.0 {
		t.Errorf("JSON client's upload: %s", a.raw)
	}
	eventually(t, "the JSON upload in SQLite", func() bool { return countRows(t, db, "orders") == 3 })
	eventually(t, "the JSON upload at the partner", func() bool { return h.partner.Unique() == 3 })
	orderRow(t, db, "demo", "PO-ACME-2026-004711")

	// Credentials and the message type are checked like the message API's.
	fields := func(kv ...string) []string {
		f := []string{"client_id", "globex", "token", "globex-token", "message_type", "order"}
		for i := 0; i+1 < len(kv); i += 2 {
			for j := 0; j < len(f); j += 2 {
				if f[j] == kv[i] {
					f[j+1] = kv[i+1]
				}
			}
		}
		var out []string
		for j := 0; j < len(f); j += 2 {
			if f[j+1] != "-" {
				out = append(out, f[j], f[j+1])
			}
		}
		return out
	}
	one := filePart{"globex-order.xml", "text/xml", "globex-order.xml"}
	for _, c := range []struct {
		name   string
		fields []string
		code   int
		detail string
	}{
		{"wrong token", fields("token", "acme-token"), 401, "unknown client or wrong token"},
		{"no token", fields("token", "-"), 401, "unknown client or wrong token"},
		{"unknown client", fields("client_id", "initech"), 401, "unknown client or wrong token"},
		{"no message type", fields("message_type", "-"), 403, "may not send"},
		{"unknown message type", fields("message_type", "invoice"), 403, "may not send"},
	} {
		ct, b := upload(t, c.fields, one)
		a := h.do("POST", "/v1/files", "", "", ct, b)
		if a.code != c.code || !strings.Contains(a.raw, c.detail) || a.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s", c.name, a.code, a.raw)
		}
	}
	h.stop()
	if got := countRows(t, db, "orders"); got != 3 {
		t.Errorf("rows = %d, want 3 (two XML uploads, one JSON)", got)
	}
	if h.partner.Unique() != 3 {
		t.Errorf("partner unique = %d, want 3", h.partner.Unique())
	}
	if n := h.partner.Count(); n != 3 {
		t.Errorf("partner got %d deliveries, want 3", n)
	}
}

// The example carries copies of the quickstart's order schema and jq step: XML orders must end
// as the quickstart's canonical order.
func TestXMLExampleSharesTheQuickstartOrder(t *testing.T) {
	for _, name := range []string{"order.schema.json", "transform.jq"} {
		if !bytes.Equal(exampleFile(t, name), quickstartFile(t, name)) {
			t.Errorf("examples/xml-partner/%s differs from examples/quickstart/%s", name, name)
		}
	}
}
