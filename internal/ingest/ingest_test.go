package ingest_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/ingest"
	"github.com/weirhq/weir/internal/state"
)

// gateway serves a real gateway on the embedded log; health is what /readyz and every commit
// consult, so a test can make the log refuse writes.
func gateway(t *testing.T, maxInFlight int, limiter *rate.Limiter) (*httptest.Server, *atomic.Pointer[error]) {
	t.Helper()
	var health atomic.Pointer[error]
	srv := serve(t, ingest.Config{
		Topic: "process", MaxInFlight: maxInFlight,
		Clients: []ingest.Client{{ID: "acme", TokenHash: sha256.Sum256([]byte("tok")), Types: map[string]bool{"note": true}, Limiter: limiter}},
		Types:   []ingest.Type{{Name: "note", IDPointer: "/id"}},
		Health: func() error {
			if e := health.Load(); e != nil {
				return *e
			}
			return nil
		},
	})
	return srv, &health
}

// serve runs a gateway with cfg over a real embedded log and state store (topic "process").
func serve(t *testing.T, cfg ingest.Config) *httptest.Server {
	t.Helper()
	l, err := embedded.Open(embedded.Config{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.EnsureTopic(context.Background(), buffer.TopicConfig{Name: "process", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	store, err := state.New(l)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ingest.New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url, path, ctype string, body io.Reader) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", url+path, body)
	req.SetBasicAuth("acme", "tok")
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// Once the log refuses writes, nothing gets a 2xx: not new messages, and not resends of
// accepted ones either (their receipts may describe messages that never became durable).
func TestNoReceiptWhileTheLogRefusesWrites(t *testing.T) {
	srv, health := gateway(t, 16, nil)
	if r := post(t, srv.URL, "/v1/messages/note", "application/json", strings.NewReader(`{"id":"n1"}`)); r.StatusCode != 202 {
		t.Fatalf("first post: %d", r.StatusCode)
	}
	if r := post(t, srv.URL, "/v1/messages/note", "application/json", strings.NewReader(`{"id":"n1"}`)); r.StatusCode != 200 {
		t.Fatalf("resend: %d", r.StatusCode)
	}
	broken := error(errors.New("fsync failed"))
	health.Store(&broken)
	for _, body := range []string{`{"id":"n1"}`, `{"id":"n2"}`} {
		r := post(t, srv.URL, "/v1/messages/note", "application/json", strings.NewReader(body))
		if r.StatusCode != 503 || r.Header.Get("Retry-After") == "" {
			t.Fatalf("%s while the log refuses writes: %d", body, r.StatusCode)
		}
	}
	if r, _ := http.Get(srv.URL + "/readyz"); r.StatusCode != 503 {
		t.Fatalf("readyz: %d", r.StatusCode)
	}
}

// Beyond MaxInFlight requests at once, a request is refused at once, before its body is read.
func TestInFlightLimit(t *testing.T) {
	srv, _ := gateway(t, 1, nil)
	// The first request on a raw connection: its headers and half its body are on the wire (an
	// http.Client may keep a streamed body, or even the headers, in its buffer), so the server is
	// inside the handler, reading, holding the one slot.
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rest := `"slow"}`
	head := "POST /v1/messages/note HTTP/1.1\r\nHost: weir\r\nAuthorization: Basic " +
		base64.StdEncoding.EncodeToString([]byte("acme:tok")) + "\r\nContent-Type: application/json\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(`{"id":`)+len(rest)) + `{"id":`
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	first := make(chan int, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := post(t, srv.URL, "/v1/messages/note", "application/json", strings.NewReader(`{"id":"x"}`))
		if r.StatusCode == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second request was not refused: %d", r.StatusCode)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := conn.Write([]byte(rest)); err != nil {
		t.Fatal(err)
	}
	if code := <-first; code != 202 {
		t.Fatalf("first request: %d", code)
	}
}

// A batch larger than the client's burst can never pass: 413, not a 429 to retry forever.
func TestBatchOverBurst(t *testing.T) {
	srv, _ := gateway(t, 16, rate.NewLimiter(10, 2))
	r := post(t, srv.URL, "/v1/messages/note/batch", "application/x-ndjson", strings.NewReader("{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n"))
	if r.StatusCode != 413 {
		t.Fatalf("batch over burst: %d", r.StatusCode)
	}
	r = post(t, srv.URL, "/v1/messages/note/batch", "application/x-ndjson", strings.NewReader("{\"id\":\"a\"}\n{\"id\":\"b\"}\n"))
	if r.StatusCode != 202 {
		t.Fatalf("batch within burst: %d", r.StatusCode)
	}
	r = post(t, srv.URL, "/v1/messages/note", "application/json", strings.NewReader(`{"id":"d"}`))
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d", r.StatusCode)
	}
}
