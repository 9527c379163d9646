package partner_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/partner"
)

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func secret(t *testing.T) []byte {
	t.Helper()
	b, err := deliver.ParseSecret(deliver.GenerateSecret())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign follows the Standard Webhooks scheme independently of package deliver.
func sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.%s", id, ts, body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// post sends one webhook; sig "" means sign properly with key.
func post(t *testing.T, url string, key []byte, id string, ts time.Time, body []byte, sig string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if sig == "" {
		sig = sign(key, id, ts.Unix(), body)
	}
	if id != "" {
		req.Header.Set("webhook-id", id)
	}
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestReceiverAcceptsSigned(t *testing.T) {
	key := secret(t)
	rc := partner.New(partner.Config{Secrets: [][]byte{key}})
	srv := newServer(t, rc)
	now := time.Now()
	body := []byte(`{"order":1}`)
	if code := post(t, srv.URL+"/any/path", key, "msg_1", now, body, ""); code != http.StatusNoContent {
		t.Fatalf("status %d, want 204", code)
	}
	if rc.Count() != 1 || rc.Unique() != 1 {
		t.Fatalf("count %d unique %d", rc.Count(), rc.Unique())
	}
	d := rc.Deliveries()[0]
	if d.ID != "msg_1" || d.Timestamp.Unix() != now.Unix() || !bytes.Equal(d.Body, body) || d.Attempt != 1 || d.Duplicate {
		t.Fatalf("delivery = %+v", d)
	}
	if d.Received.IsZero() {
		t.Fatal("no receive time")
	}
}

func TestReceiverRejectsBadSignatures(t *testing.T) {
	key, other := secret(t), secret(t)
	rc := partner.New(partner.Config{Secrets: [][]byte{key}, Tolerance: time.Minute})
	srv := newServer(t, rc)
	now := time.Now()
	body := []byte(`{"order":1}`)
	for name, code := range map[string]int{
		"wrong secret":   post(t, srv.URL, other, "msg_1", now, body, ""),
		"tampered body":  post(t, srv.URL, key, "msg_1", now, body, sign(key, "msg_1", now.Unix(), []byte(`{"order":2}`))),
		"old timestamp":  post(t, srv.URL, key, "msg_1", now.Add(-2*time.Minute), body, ""),
		"future":         post(t, srv.URL, key, "msg_1", now.Add(2*time.Minute), body, ""),
		"no id":          post(t, srv.URL, key, "", now, body, sign(key, "", now.Unix(), body)),
		"garbage header": post(t, srv.URL, key, "msg_1", now, body, "v1,nope"),
	} {
		if code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, code)
		}
	}
	if rc.Count() != 0 || rc.Attempts("msg_1") != 0 {
		t.Fatalf("rejected attempts recorded: count %d attempts %d", rc.Count(), rc.Attempts("msg_1"))
	}
}

func TestReceiverWithoutSecretsSkipsSignature(t *testing.T) {
	rc := partner.New(partner.Config{})
	srv := newServer(t, rc)
	if code := post(t, srv.URL, nil, "msg_1", time.Now(), []byte(`{}`), "v1,whatever"); code != http.StatusNoContent {
		t.Fatalf("status %d", code)
	}
	if code := post(t, srv.URL, nil, "", time.Now(), []byte(`{}`), "v1,whatever"); code != http.StatusUnauthorized {
		t.Fatalf("missing webhook-id: status %d", code)
	}
}

func TestReceiverFailFirstAndDuplicates(t *testing.T) {
	key := secret(t)
	rc := partner.New(partner.Config{Secrets: [][]byte{key}, FailFirst: 2})
	srv := newServer(t, rc)
	body := []byte(`{}`)
	var got []int
	for range 4 {
		got = append(got, post(t, srv.URL, key, "msg_1", time.Now(), body, ""))
	}
	want := []int{503, 503, 204, 204}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	if post(t, srv.URL, key, "msg_2", time.Now(), body, "") != 503 {
		t.Fatal("FailFirst is per webhook-id")
	}
	if rc.Count() != 2 || rc.Unique() != 1 || rc.Attempts("msg_1") != 4 || rc.Attempts("msg_2") != 1 {
		t.Fatalf("count %d unique %d attempts %d/%d", rc.Count(), rc.Unique(), rc.Attempts("msg_1"), rc.Attempts("msg_2"))
	}
	ds := rc.Deliveries()
	if ds[0].Attempt != 3 || ds[0].Duplicate || ds[1].Attempt != 4 || !ds[1].Duplicate {
		t.Fatalf("deliveries %+v", ds)
	}
}

func TestReceiverWaitFor(t *testing.T) {
	key := secret(t)
	rc := partner.New(partner.Config{Secrets: [][]byte{key}})
	srv := newServer(t, rc)

	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for i := range 20 {
		wg.Go(func() {
			id := "msg_" + strconv.Itoa(i%10) // every id twice
			post(t, srv.URL, key, id, time.Now(), []byte(`{}`), "")
		})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := rc.WaitFor(ctx, 10); err != nil {
		t.Fatalf("WaitFor(10): %v", err)
	}
	wg.Wait()
	if rc.Unique() != 10 || rc.Count() != 20 {
		t.Fatalf("unique %d count %d", rc.Unique(), rc.Count())
	}

	short, cancel2 := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel2()
	err := rc.WaitFor(short, 11)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "10 of 11") {
		t.Fatalf("WaitFor(11) = %v", err)
	}
}

func TestReceiverSummary(t *testing.T) {
	key := secret(t)
	rc := partner.New(partner.Config{Secrets: [][]byte{key}})
	srv := newServer(t, rc)
	for i := range 12 {
		post(t, srv.URL, key, "msg_"+strconv.Itoa(i), time.Now(), []byte(`{"n":`+strconv.Itoa(i)+`}`), "")
	}
	post(t, srv.URL, key, "msg_bin", time.Now(), []byte("not json"), "")

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var s struct {
		Count  int `json:"count"`
		Unique int `json:"unique"`
		Last   []struct {
			ID    string          `json:"id"`
			Bytes int             `json:"bytes"`
			Body  json.RawMessage `json:"body"`
		} `json:"last"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.Count != 13 || s.Unique != 13 || len(s.Last) != 10 {
		t.Fatalf("summary: count %d unique %d last %d", s.Count, s.Unique, len(s.Last))
	}
	if s.Last[0].ID != "msg_bin" || s.Last[0].Body != nil || s.Last[0].Bytes != 8 {
		t.Fatalf("newest first, non-JSON body omitted: %+v", s.Last[0])
	}
	var compact bytes.Buffer
	if s.Last[1].ID != "msg_11" || json.Compact(&compact, s.Last[1].Body) != nil || compact.String() != `{"n":11}` {
		t.Fatalf("second newest: %+v", s.Last[1])
	}
}

func TestReceiverLimitsAndMethods(t *testing.T) {
	key := secret(t)
	rc := partner.New(partner.Config{Secrets: [][]byte{key}, MaxBody: 100})
	srv := newServer(t, rc)
	if code := post(t, srv.URL, key, "msg_big", time.Now(), bytes.Repeat([]byte("x"), 101), ""); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d", code)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
}

func TestReceiverKeepBoundsMemory(t *testing.T) {
	key := secret(t)
	rc := partner.New(partner.Config{Secrets: [][]byte{key}, Keep: 4})
	srv := newServer(t, rc)
	for i := range 10 {
		post(t, srv.URL, key, "msg_"+strconv.Itoa(i), time.Now(), []byte(`{}`), "")
	}
	ds := rc.Deliveries()
	if len(ds) == 0 || len(ds) > 4 || ds[len(ds)-1].ID != "msg_9" {
		t.Fatalf("kept %d, last %+v", len(ds), ds[len(ds)-1])
	}
	if rc.Count() != 10 || rc.Unique() != 10 {
		t.Fatalf("count %d unique %d", rc.Count(), rc.Unique())
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestReceiverLogsOneLinePerDelivery(t *testing.T) {
	secretText := deliver.GenerateSecret()
	key, _ := deliver.ParseSecret(secretText)
	var logs syncBuffer
	rc := partner.New(partner.Config{Secrets: [][]byte{key}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv := newServer(t, rc)
	post(t, srv.URL, key, "msg_1", time.Now(), []byte(`{}`), "")
	post(t, srv.URL, key, "msg_2", time.Now(), []byte(`{}`), "")
	post(t, srv.URL, key, "msg_3", time.Now(), []byte(`{}`), "v1,forged")

	out := logs.String()
	if n := strings.Count(out, "webhook received"); n != 2 {
		t.Errorf("%d 'webhook received' lines, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, "webhook rejected") || !strings.Contains(out, "id=msg_3") {
		t.Errorf("rejection not logged:\n%s", out)
	}
	if strings.Contains(out, strings.TrimPrefix(secretText, "whsec_")) {
		t.Error("secret in the log")
	}
}

// TestDeliverToReceiver runs the real client against the real receiver: retries with the same
// webhook-id, a rotation the partner has only half done, and many concurrent deliveries.
func TestDeliverToReceiver(t *testing.T) {
	oldKey, newKey := secret(t), secret(t)
	rc := partner.New(partner.Config{Secrets: [][]byte{oldKey}, FailFirst: 1})
	srv := newServer(t, rc)
	c := deliver.New(deliver.Config{AllowPrivate: true})
	t.Cleanup(c.Close)
	ep := &deliver.Endpoint{Name: "demo", URL: srv.URL + "/webhooks", Secrets: [][]byte{newKey, oldKey}}

	first := c.Deliver(t.Context(), ep, "msg_a", []byte(`{"a":1}`))
	if first.Status != 503 || first.Err == nil || fault.IsPermanent(first.Err) {
		t.Fatalf("first attempt: %+v, want transient 503", first)
	}
	if second := c.Deliver(t.Context(), ep, "msg_a", []byte(`{"a":1}`)); !second.Delivered() {
		t.Fatalf("second attempt: %+v", second)
	}

	const n = 50
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for i := range n {
		wg.Go(func() {
			id := "msg_" + strconv.Itoa(i)
			for attempt := 0; attempt < 3; attempt++ { // FailFirst=1: the second attempt lands
				if c.Deliver(t.Context(), ep, id, []byte(`{}`)).Delivered() {
					return
				}
			}
		})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := rc.WaitFor(ctx, n+1); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if rc.Count() != n+1 || rc.Unique() != n+1 {
		t.Fatalf("count %d unique %d", rc.Count(), rc.Unique())
	}
	// A receiver that knows neither secret refuses with 401, a permanent failure.
	stranger := newServer(t, partner.New(partner.Config{Secrets: [][]byte{secret(t)}}))
	res := c.Deliver(t.Context(), &deliver.Endpoint{Name: "x", URL: stranger.URL, Secrets: [][]byte{newKey}}, "msg_z", []byte(`{}`))
	if res.Status != 401 || !fault.IsPermanent(res.Err) {
		t.Fatalf("unknown secret: %+v", res)
	}
}

func TestReceiverRefuseAndOnAccept(t *testing.T) {
	key := secret(t)
	var mu sync.Mutex
	var seen []partner.Delivery
	rc := partner.New(partner.Config{Secrets: [][]byte{key},
		Refuse: func(id string, body []byte) bool { return bytes.Contains(body, []byte(`"poison"`)) },
		OnAccept: func(d partner.Delivery) {
			mu.Lock()
			seen = append(seen, d)
			mu.Unlock()
		}})
	srv := newServer(t, rc)
	poison, good := []byte(`{"note":"poison"}`), []byte(`{"note":"fine"}`)
	var got []int
	for range 3 {
		got = append(got, post(t, srv.URL, key, "msg_p", time.Now(), poison, ""))
	}
	got = append(got, post(t, srv.URL, key, "msg_g", time.Now(), good, ""))
	if want := []int{500, 500, 500, 204}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	// Refusal still needs a valid signature: a forged poison body is a 401, not a 500.
	if code := post(t, srv.URL, key, "msg_p", time.Now(), poison, "v1,nope"); code != http.StatusUnauthorized {
		t.Fatalf("unsigned poison: status %d, want 401", code)
	}
	if rc.Count() != 1 || rc.Unique() != 1 || rc.Attempts("msg_p") != 3 {
		t.Fatalf("count %d unique %d attempts %d", rc.Count(), rc.Unique(), rc.Attempts("msg_p"))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0].ID != "msg_g" || !bytes.Equal(seen[0].Body, good) || seen[0].Received.IsZero() {
		t.Fatalf("OnAccept saw %+v", seen)
	}
}
