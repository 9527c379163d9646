package ingest_test

// Edge cases of POST /v1/files (multipart uploads): what is refused before any file is looked
// at (media type, size, number of files, credentials, message type, rate) and how each file of
// an upload gets its own result.

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/weirhq/weir/internal/format/libxml"
	"github.com/weirhq/weir/internal/ingest"
)

// filesGateway serves a real gateway on the embedded log with two clients of type note: acme
// (JSON only) and xmlco, which has an XML dialect (the XML converted to JSON, the id read with
// XPath). edit may change the config first.
func filesGateway(t *testing.T, edit func(*ingest.Config)) *httptest.Server {
	t.Helper()
	cfg := ingest.Config{
		Topic: "process",
		Clients: []ingest.Client{
			{ID: "acme", TokenHash: sha256.Sum256([]byte("tok")), Types: map[string]bool{"note": true}},
			{ID: "xmlco", TokenHash: sha256.Sum256([]byte("xml-tok")), Types: map[string]bool{"note": true, "other": true}},
		},
		Types: []ingest.Type{
			{Name: "note", IDPointer: "/id", XML: []*ingest.XMLInput{{Clients: map[string]bool{"xmlco": true}, IDXPath: "/note/@id"}}},
			{Name: "other"},
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	return serve(t, cfg)
}

// part is one part of a multipart body: a field when file is empty, else a file.
type part struct {
	name, file, ctype, body string
}

func form(parts ...part) (string, *strings.Builder) {
	var b strings.Builder
	w := multipart.NewWriter(&b)
	for _, p := range parts {
		hdr := textproto.MIMEHeader{}
		if p.file == "" {
			hdr.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q`, p.name))
		} else {
			hdr.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.name, p.file))
		}
		if p.ctype != "" {
			hdr.Set("Content-Type", p.ctype)
		}
		pw, _ := w.CreatePart(hdr)
		io.WriteString(pw, p.body)
	}
	w.Close()
	return w.FormDataContentType(), &b
}

// creds are the form fields client_id, token and message_type (empty ones are left out).
func creds(client, token, typ string) []part {
	var ps []part
	for _, kv := range [][2]string{{"client_id", client}, {"token", token}, {"message_type", typ}} {
		if kv[1] != "" {
			ps = append(ps, part{name: kv[0], body: kv[1]})
		}
	}
	return ps
}

type reply struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func send(t *testing.T, srv *httptest.Server, ctype string, body io.Reader) reply {
	t.Helper()
	req, err := http.NewRequest("POST", srv.URL+"/v1/files", body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

func upload(t *testing.T, srv *httptest.Server, parts ...part) reply {
	t.Helper()
	ct, b := form(parts...)
	return send(t, srv, ct, strings.NewReader(b.String()))
}

// problemIs checks a problem answer: status, content type and problem type.
func problemIs(t *testing.T, what string, r reply, code int, kind string) {
	t.Helper()
	if r.code != code || r.header.Get("Content-Type") != "application/problem+json" || r.body["type"] != "https://weir.dev/problems/"+kind {
		t.Errorf("%s: %d %s %s, want %d %s", what, r.code, r.header.Get("Content-Type"), r.raw, code, kind)
	}
}

func results(t *testing.T, r reply) []map[string]any {
	t.Helper()
	list, _ := r.body["results"].([]any)
	out := make([]map[string]any, len(list))
	for i, e := range list {
		out[i], _ = e.(map[string]any)
	}
	return out
}

func TestFilesRefusesOtherMediaTypes(t *testing.T) {
	srv := filesGateway(t, nil)
	_, good := form(append(creds("acme", "tok", "note"), part{name: "file", file: "a.json", ctype: "application/json", body: `{"id":"a"}`})...)
	for _, ct := range []string{"", "application/json", "text/plain", "multipart/form-data", "multipart/mixed; boundary=x", "application/x-www-form-urlencoded", "multipart/form-data; boundary"} {
		problemIs(t, fmt.Sprintf("Content-Type %q", ct), send(t, srv, ct, strings.NewReader(good.String())), 415, "unsupported-media-type")
	}
}

func TestFilesBodyLimit(t *testing.T) {
	srv := filesGateway(t, func(c *ingest.Config) { c.MaxBody = 4096 })
	big := strings.Repeat("x", 5000)
	parts := append(creds("acme", "tok", "note"), part{name: "file", file: "big.json", ctype: "application/json", body: `{"id":"big","pad":"` + big + `"}`})
	// Declared too large: refused before reading.
	problemIs(t, "Content-Length over the limit", upload(t, srv, parts...), 413, "too-large")
	// Chunked, with no length: refused once the limit is crossed.
	ct, b := form(parts...)
	problemIs(t, "chunked over the limit", send(t, srv, ct, io.MultiReader(strings.NewReader(b.String()))), 413, "too-large")
	// Within the limit: fine.
	small := append(creds("acme", "tok", "note"), part{name: "file", file: "small.json", ctype: "application/json", body: `{"id":"small"}`})
	if r := upload(t, srv, small...); r.code != 202 {
		t.Fatalf("small upload: %d %s", r.code, r.raw)
	}
}

func TestFilesTooMany(t *testing.T) {
	srv := filesGateway(t, func(c *ingest.Config) { c.MaxBody = 8 << 20 })
	files := func(n int) []part {
		ps := creds("acme", "tok", "note")
		for i := range n {
			ps = append(ps, part{name: "file", file: fmt.Sprintf("n%d.json", i), ctype: "application/json", body: fmt.Sprintf(`{"id":"n%d"}`, i)})
		}
		return ps
	}
	problemIs(t, "1001 files", upload(t, srv, files(1001)...), 413, "too-many-files")
	r := upload(t, srv, files(1000)...)
	if r.code != 202 || r.body["accepted"] != 1000.0 || len(results(t, r)) != 1000 {
		t.Fatalf("1000 files: %d %.300s", r.code, r.raw)
	}
}

func TestFilesCredentialsTypeAndEmptyUpload(t *testing.T) {
	srv := filesGateway(t, func(c *ingest.Config) { c.Clients[0].Limiter = rate.NewLimiter(10, 2) })
	file := part{name: "file", file: "a.json", ctype: "application/json", body: `{"id":"a"}`}
	cases := []struct {
		what  string
		parts []part
		code  int
		kind  string
	}{
		{"wrong token", append(creds("acme", "nope", "note"), file), 401, "unauthorized"},
		{"no token", append(creds("acme", "", "note"), file), 401, "unauthorized"},
		{"unknown client", append(creds("nobody", "tok", "note"), file), 401, "unauthorized"},
		{"no client", append(creds("", "tok", "note"), file), 401, "unauthorized"},
		{"no message type", append(creds("acme", "tok", ""), file), 403, "type-not-allowed"},
		{"unknown message type", append(creds("acme", "tok", "nope"), file), 403, "type-not-allowed"},
		{"type not allowed", append(creds("acme", "tok", "other"), file), 403, "type-not-allowed"},
		{"no file", creds("acme", "tok", "note"), 400, "no-file"},
		{"a field named file is no file", append(creds("acme", "tok", "note"), part{name: "file", body: `{"id":"x"}`}), 400, "no-file"},
		{"more files than the burst", append(creds("acme", "tok", "note"), file, file, file), 413, "over-burst"},
	}
	for _, c := range cases {
		r := upload(t, srv, c.parts...)
		problemIs(t, c.what, r, c.code, c.kind)
		if c.code == 401 && r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", c.what)
		}
	}
	// The credentials must come before the first file: nothing more is read for a stranger.
	parts := append([]part{file}, part{name: "client_id", body: "acme"}, part{name: "token", body: "tok"}, part{name: "message_type", body: "note"})
	problemIs(t, "credentials after the file", upload(t, srv, parts...), 401, "unauthorized")
	// message_type may come after the files, and fields are trimmed.
	parts = []part{{name: "client_id", body: " acme\n"}, {name: "token", body: "tok"}, file, {name: "message_type", body: "note"}}
	if r := upload(t, srv, parts...); r.code != 202 {
		t.Errorf("message_type after the file: %d %s", r.code, r.raw)
	}
}

func TestFilesUnreadableMultipart(t *testing.T) {
	srv := filesGateway(t, nil)
	ct, b := form(append(creds("acme", "tok", "note"), part{name: "file", file: "a.json", ctype: "application/json", body: `{"id":"a"}`})...)
	truncated := b.String()[:b.Len()-20]
	problemIs(t, "truncated multipart", send(t, srv, ct, strings.NewReader(truncated)), 400, "unreadable-body")
	problemIs(t, "malformed part header", send(t, srv, "multipart/form-data; boundary=zzz",
		strings.NewReader("--zzz\r\nthis is no header\r\n\r\nx\r\n--zzz--\r\n")), 400, "unreadable-body")
	// A body without a single boundary holds no part at all: no credentials either.
	problemIs(t, "no part", send(t, srv, "multipart/form-data; boundary=zzz", strings.NewReader(`{"id":"a"}`)), 401, "unauthorized")
}

func TestFilesPerFileResults(t *testing.T) {
	srv := filesGateway(t, nil)
	r := upload(t, srv, append(creds("acme", "tok", "note"),
		part{name: "file", file: "a.json", ctype: "application/json", body: `{"id":"a","n":1}`},
		part{name: "file", file: "b.json", body: `{"id":"b"}`}, // no Content-Type: JSON by its name (the client has no dialect)
		part{name: "file", file: "broken.json", ctype: "application/json", body: `{"id":`},
		part{name: "file", file: "notes.txt", ctype: "text/plain", body: `hello`},
		part{name: "file", file: "a-again.json", ctype: "application/json", body: `{"id":"a","n":1}`},
		part{name: "file", file: "a-other.json", ctype: "application/json", body: `{"id":"a","n":2}`},
		part{name: "file", file: "no-id.json", ctype: "application/json", body: `{"n":3}`},
	)...)
	if r.code != 207 || r.body["accepted"] != 3.0 || r.body["rejected"] != 4.0 {
		t.Fatalf("mixed upload: %d %s", r.code, r.raw)
	}
	want := []struct {
		file, status, id string
		code             float64
		dup              bool
	}{
		{"a.json", "accepted", "a", 202, false},
		{"b.json", "accepted", "b", 202, false},
		{"broken.json", "rejected", "", 400, false},
		{"notes.txt", "rejected", "", 415, false},
		{"a-again.json", "accepted", "a", 200, true},
		{"a-other.json", "rejected", "a", 409, false},
		{"no-id.json", "rejected", "", 400, false},
	}
	res := results(t, r)
	if len(res) != len(want) {
		t.Fatalf("results: %s", r.raw)
	}
	for i, w := range want {
		got := res[i]
		id, _ := got["id"].(string)
		dup, _ := got["duplicate"].(bool)
		if got["file"] != w.file || got["status"] != w.status || got["code"] != w.code || id != w.id || dup != w.dup {
			t.Errorf("result %d: %v, want %+v", i, got, w)
		}
		if w.status == "rejected" && got["error"] == "" {
			t.Errorf("result %d: no error: %v", i, got)
		}
	}
	// The same upload again: a and b are duplicates now.
	r = upload(t, srv, append(creds("acme", "tok", "note"),
		part{name: "file", file: "a.json", ctype: "application/json", body: `{"id":"a","n":1}`},
		part{name: "file", file: "b.json", body: `{"id":"b"}`})...)
	if r.code != 202 {
		t.Fatalf("again: %d %s", r.code, r.raw)
	}
	for i, got := range results(t, r) {
		if got["code"] != 200.0 || got["duplicate"] != true {
			t.Errorf("again, result %d: %v", i, got)
		}
	}
	// Nothing good: 400 with every result.
	r = upload(t, srv, append(creds("acme", "tok", "note"),
		part{name: "file", file: "x.xml", ctype: "application/xml", body: `<note id="x"/>`})...)
	if r.code != 400 || r.body["rejected"] != 1.0 || results(t, r)[0]["code"] != 415.0 {
		t.Errorf("XML from a client without a dialect: %d %s", r.code, r.raw)
	}
}

func TestFilesXMLDialect(t *testing.T) {
	if !libxml.Available() {
		t.Skip("built without cgo: no XML")
	}
	srv := filesGateway(t, nil)
	r := upload(t, srv, append(creds("xmlco", "xml-tok", "note"),
		part{name: "file", file: "n1.xml", ctype: "application/xml", body: `<note id="n1"><text>hi</text></note>`},
		part{name: "file", file: "n2.xml", body: "<note id=\"n2\"><text>ho</text></note>\n"}, // no Content-Type: the dialect's XML
		part{name: "file", file: "n3.json", ctype: "application/json", body: `{"id":"n3"}`},
		part{name: "file", file: "broken.xml", ctype: "text/xml", body: "<note id=\"n4\">\n  <text>hi</txet>\n</note>"},
		part{name: "file", file: "doctype.xml", ctype: "text/xml", body: "<?xml version=\"1.0\"?>\n<!DOCTYPE note [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<note id=\"n5\">&x;</note>"},
		part{name: "file", file: "no-id.xml", ctype: "text/xml", body: `<note><text>hi</text></note>`},
	)...)
	if r.code != 207 || r.body["accepted"] != 3.0 || r.body["rejected"] != 3.0 {
		t.Fatalf("XML upload: %d %s", r.code, r.raw)
	}
	res := results(t, r)
	for i, id := range []string{"n1", "n2", "n3"} {
		if res[i]["code"] != 202.0 || res[i]["id"] != id {
			t.Errorf("result %d: %v, want 202 %s", i, res[i], id)
		}
	}
	errs, _ := res[3]["errors"].([]any)
	if res[3]["code"] != 400.0 || len(errs) == 0 {
		t.Fatalf("broken.xml: %v", res[3])
	}
	if e := errs[0].(map[string]any); e["line"] != 2.0 || e["column"] == nil || !strings.Contains(e["message"].(string), "mismatch") {
		t.Errorf("broken.xml: first error %v, want line 2 with a column", e)
	}
	if res[4]["code"] != 400.0 || !strings.Contains(fmt.Sprint(res[4]["errors"]), "DOCTYPE declarations are not allowed") || strings.Contains(r.raw, "root:") {
		t.Errorf("doctype.xml: %v", res[4])
	}
	if res[5]["code"] != 400.0 || !strings.Contains(fmt.Sprint(res[5]["error"]), "/note/@id") {
		t.Errorf("no-id.xml: %v", res[5])
	}
	// The accepted ones are there, under the sender's id.
	for _, id := range []string{"n1", "n2", "n3"} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/messages/"+id, nil)
		req.SetBasicAuth("xmlco", "xml-tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("status of %s: %d", id, resp.StatusCode)
		}
	}
}
