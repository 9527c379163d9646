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

// slow is a POST of a note whose body arrives in two halves: its headers and the first half
// are on the wire, on a raw connection (an http.Client may keep a streamed body, or even the
// headers, in its buffer), so once the server reads it, it sits in the handler holding a slot.
type slow struct {
	t      *testing.T
	conn   net.Conn
	rest   string
	answer chan int
}

func slowRequest(t *testing.T, url, user, token string) *slow {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	half, rest := `{"id":`, `"slow"}`
	head := "POST /v1/messages/note HTTP/1.1\r\nHost: weir\r\nAuthorization: Basic " +
		base64.StdEncoding.EncodeToString([]byte(user+":"+token)) + "\r\nContent-Type: application/json\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(half)+len(rest)) + half
	if _, err := conn.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	s := &slow{t: t, conn: conn, rest: rest, answer: make(chan int, 1)}
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			s.answer <- 0
			return
		}
		resp.Body.Close()
		s.answer <- resp.StatusCode
	}()
	return s
}

// finish sends the rest of the body and returns the answer's status.
func (s *slow) finish() int {
	if _, err := s.conn.Write([]byte(s.rest)); err != nil {
		s.t.Fatal(err)
	}
	return <-s.answer
}

// holding posts notes as user until one gets want, and reports true; or false when none did
// within a second: the slow request then reached the server while a note held the slot it
// needed, and was refused (its answer waits behind the unsent half of its body).
func (s *slow) holding(url, user, token string, want int) bool {
	s.t.Helper()
	deadline := time.Now().Add(time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		if r := post2(s.t, url, user, token, fmt.Sprintf(`{"id":"%s-%d"}`, user, n)); r == want {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.conn.Close()
	return false
}

// holdSlot starts slow requests until one holds its slot (see holding).
func holdSlot(t *testing.T, url, user, token string, want int) *slow {
	t.Helper()
	for range 20 {
		if s := slowRequest(t, url, user, token); s.holding(url, user, token, want) {
			return s
		}
	}
	t.Fatal("no slow request got to hold a slot")
	return nil
}

// Beyond MaxInFlight requests at once, a request is refused at once, before its body is read.
func TestInFlightLimit(t *testing.T) {
	srv, _ := gateway(t, 1, nil)
	s := holdSlot(t, srv.URL, "acme", "tok", 503)
	if code := s.finish(); code != 202 {
		t.Fatalf("first request: %d", code)
	}
}

// A client over its share of the request slots gets 429; another client still gets in.
func TestInFlightFairShare(t *testing.T) {
	srv := serve(t, ingest.Config{Topic: "process", MaxInFlight: 4, MaxInFlightPerClient: 1,
		Clients: []ingest.Client{
			{ID: "noisy", TokenHash: sha256.Sum256([]byte("n")), Types: map[string]bool{"note": true}},
			{ID: "quiet", TokenHash: sha256.Sum256([]byte("q")), Types: map[string]bool{"note": true}},
		},
		Types: []ingest.Type{{Name: "note", IDPointer: "/id"}}})
	s := holdSlot(t, srv.URL, "noisy", "n", 429)
	if r := post2(t, srv.URL, "quiet", "q", `{"id":"q-1"}`); r != 202 {
		t.Fatalf("the quiet client was refused (%d) while the noisy one held its share", r)
	}
	if code := s.finish(); code != 202 {
		t.Fatalf("the noisy client's slow request: %d", code)
	}
	if r := post2(t, srv.URL, "noisy", "n", `{"id":"n-after"}`); r != 202 {
		t.Fatalf("the noisy client, its request done: %d", r)
	}
}

func post2(t *testing.T, url, user, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/messages/note", strings.NewReader(body))
	req.SetBasicAuth(user, token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
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
