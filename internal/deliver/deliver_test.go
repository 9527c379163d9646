package deliver_test

import (
	"bytes"
	"context"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/fault"
)

// newServer starts h on 127.0.0.1:0 and closes it when the test ends. Options adjust the
// http.Server before it starts.
func newServer(t testing.TB, h http.Handler, opts ...func(*http.Server)) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	for _, o := range opts {
		o(srv.Config)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t testing.TB, cfg deliver.Config) *deliver.Client {
	t.Helper()
	c := deliver.New(cfg)
	t.Cleanup(c.Close)
	return c
}

// hit is one request as the partner saw it.
type hit struct {
	header http.Header
	body   []byte
	at     time.Time
}

// recorder records every request and answers with reply.
type recorder struct {
	mu    sync.Mutex
	hits  []hit
	reply func(n int, w http.ResponseWriter, r *http.Request) // n: 1-based request number
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.hits = append(rec.hits, hit{header: r.Header.Clone(), body: body, at: time.Now()})
	n := len(rec.hits)
	rec.mu.Unlock()
	if rec.reply != nil {
		rec.reply(n, w, r)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rec *recorder) all() []hit {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]hit(nil), rec.hits...)
}

func TestDeliverStandardWebhooks(t *testing.T) {
	rec := &recorder{}
	srv := newServer(t, rec)
	c := newClient(t, deliver.Config{AllowPrivate: true})
	secret := mustSecret(t, specSecret)
	ep := &deliver.Endpoint{
		Name:        "acme",
		URL:         srv.URL + "/hooks",
		Secrets:     [][]byte{secret},
		BearerToken: "tok-123",
		Headers: map[string]string{
			"X-Tenant":      "acme",
			"webhook-id":    "forged", // cannot override the webhook headers
			"Authorization": "Basic forged",
		},
	}
	body := []byte(`{"order":42}`)
	res := c.Deliver(t.Context(), ep, "msg_42", body)
	if !res.Delivered() || res.Status != http.StatusNoContent || res.Err != nil {
		t.Fatalf("Deliver = %+v", res)
	}
	if res.Duration <= 0 {
		t.Errorf("Duration = %v", res.Duration)
	}

	hits := rec.all()
	if len(hits) != 1 {
		t.Fatalf("%d requests, want 1", len(hits))
	}
	h := hits[0]
	if !bytes.Equal(h.body, body) {
		t.Errorf("body = %q", h.body)
	}
	for k, want := range map[string]string{
		"Content-Type":  "application/json",
		"User-Agent":    deliver.DefaultUserAgent,
		"webhook-id":    "msg_42",
		"Authorization": "Bearer tok-123",
		"X-Tenant":      "acme",
	} {
		if got := h.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := h.header["Idempotency-Key"]; ok {
		t.Error("Idempotency-Key sent on the wire")
	}
	ts, err := strconv.ParseInt(h.header.Get("webhook-timestamp"), 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp: %v", err)
	}
	if d := h.at.Unix() - ts; d < -2 || d > 2 {
		t.Errorf("webhook-timestamp %d is %ds away from the receive time", ts, d)
	}
	// The signature, computed independently from the spec.
	if got, want := h.header.Get("webhook-signature"), refSign(secret, "msg_42", ts, body); got != want {
		t.Errorf("webhook-signature = %q, want %q", got, want)
	}
	if err := deliver.Verify([][]byte{secret}, h.header, h.body, time.Minute, time.Now()); err != nil {
		t.Errorf("Verify on the received request: %v", err)
	}
}

func TestDeliverRotationSendsAllSignatures(t *testing.T) {
	rec := &recorder{}
	srv := newServer(t, rec)
	c := newClient(t, deliver.Config{AllowPrivate: true})
	newS, oldS := mustSecret(t, deliver.GenerateSecret()), mustSecret(t, deliver.GenerateSecret())
	ep := &deliver.Endpoint{Name: "acme", URL: srv.URL, Secrets: [][]byte{newS, oldS}}
	if res := c.Deliver(t.Context(), ep, "msg_rot", []byte(`{"a":1}`)); !res.Delivered() {
		t.Fatalf("Deliver = %+v", res)
	}
	h := rec.all()[0]
	ts, _ := strconv.ParseInt(h.header.Get("webhook-timestamp"), 10, 64)
	want := refSign(newS, "msg_rot", ts, h.body) + " " + refSign(oldS, "msg_rot", ts, h.body)
	if got := h.header.Get("webhook-signature"); got != want {
		t.Fatalf("webhook-signature = %q, want %q", got, want)
	}
	for _, s := range [][]byte{newS, oldS} {
		if err := deliver.Verify([][]byte{s}, h.header, h.body, time.Minute, time.Now()); err != nil {
			t.Fatalf("a receiver with one of the secrets rejects: %v", err)
		}
	}
}

func TestDeliverIDStableTimestampPerAttempt(t *testing.T) {
	rec := &recorder{reply: func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}}
	srv := newServer(t, rec)
	var clock atomic.Int64
	clock.Store(1_700_000_000)
	c := newClient(t, deliver.Config{AllowPrivate: true, Now: func() time.Time { return time.Unix(clock.Load(), 0) }})
	secret := mustSecret(t, deliver.GenerateSecret())
	ep := &deliver.Endpoint{Name: "acme", URL: srv.URL, Secrets: [][]byte{secret}}
	body := []byte(`{"n":1}`)

	first := c.Deliver(t.Context(), ep, "msg_same", body)
	if first.Delivered() || first.Err == nil || fault.IsPermanent(first.Err) || first.Status != 503 {
		t.Fatalf("first attempt = %+v, want a transient 503", first)
	}
	clock.Add(300) // the next scheduled attempt, five minutes later
	second := c.Deliver(t.Context(), ep, "msg_same", body)
	if !second.Delivered() {
		t.Fatalf("second attempt = %+v", second)
	}

	hits := rec.all()
	if len(hits) != 2 {
		t.Fatalf("%d requests, want 2", len(hits))
	}
	for i, want := range []int64{1_700_000_000, 1_700_000_300} {
		h := hits[i].header
		if h.Get("webhook-id") != "msg_same" {
			t.Errorf("attempt %d: webhook-id = %q", i+1, h.Get("webhook-id"))
		}
		if h.Get("webhook-timestamp") != strconv.FormatInt(want, 10) {
			t.Errorf("attempt %d: webhook-timestamp = %q, want %d", i+1, h.Get("webhook-timestamp"), want)
		}
		if h.Get("webhook-signature") != refSign(secret, "msg_same", want, body) {
			t.Errorf("attempt %d: signature not over this attempt's timestamp", i+1)
		}
	}
}

// statusServer answers with the status asked for in X-Want-Status.
func statusServer(t *testing.T) *httptest.Server {
	return newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		code, _ := strconv.Atoi(r.Header.Get("X-Want-Status"))
		if ra := r.Header.Get("X-Want-Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "answer %d\n", code)
	}))
}

func TestDeliverStatusClassification(t *testing.T) {
	srv := statusServer(t)
	c := newClient(t, deliver.Config{AllowPrivate: true})
	type want int
	const (
		ok want = iota
		permanent
		transient
	)
	for _, tc := range []struct {
		code int
		want want
	}{
		{200, ok}, {201, ok}, {202, ok}, {204, ok},
		{301, permanent}, {302, permanent}, {303, permanent}, {307, permanent}, {308, permanent},
		{400, permanent}, {401, permanent}, {403, permanent}, {404, permanent}, {409, permanent},
		{410, permanent}, {413, permanent}, {422, permanent},
		{408, transient}, {429, transient}, {500, transient}, {502, transient}, {503, transient}, {504, transient},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			ep := &deliver.Endpoint{Name: "p", URL: srv.URL, Headers: map[string]string{"X-Want-Status": strconv.Itoa(tc.code)}}
			res := c.Deliver(t.Context(), ep, "msg_"+strconv.Itoa(tc.code), []byte(`{}`))
			if res.Status != tc.code {
				t.Fatalf("Status = %d", res.Status)
			}
			switch tc.want {
			case ok:
				if !res.Delivered() {
					t.Fatalf("not delivered: %v", res.Err)
				}
			case permanent:
				if res.Delivered() || !fault.IsPermanent(res.Err) {
					t.Fatalf("want permanent, got %v", res.Err)
				}
			case transient:
				if res.Delivered() || res.Err == nil || fault.IsPermanent(res.Err) {
					t.Fatalf("want transient, got %v", res.Err)
				}
			}
			if res.Err != nil {
				var se *fault.StatusError
				if !errors.As(res.Err, &se) || se.Code != tc.code {
					t.Fatalf("no fault.StatusError with the code in %v", res.Err)
				}
				if res.Snippet != "answer "+strconv.Itoa(tc.code) || !strings.Contains(res.Err.Error(), res.Snippet) {
					t.Fatalf("snippet %q / error %q", res.Snippet, res.Err)
				}
			}
			if res.Gone() != (tc.code == http.StatusGone) {
				t.Fatalf("Gone() = %v", res.Gone())
			}
		})
	}
}

func TestDeliverRetryAfter(t *testing.T) {
	srv := statusServer(t)
	c := newClient(t, deliver.Config{AllowPrivate: true})
	deliverWith := func(code int, retryAfter string) deliver.Result {
		ep := &deliver.Endpoint{Name: "p", URL: srv.URL, Headers: map[string]string{
			"X-Want-Status": strconv.Itoa(code), "X-Want-Retry-After": retryAfter,
		}}
		return c.Deliver(t.Context(), ep, "msg_ra", []byte(`{}`))
	}

	res := deliverWith(429, "7")
	if d, ok := fault.RetryAfter(res.Err); !ok || d != 7*time.Second || fault.IsPermanent(res.Err) {
		t.Fatalf("429 Retry-After: 7 → %v, %v (err %v)", d, ok, res.Err)
	}
	res = deliverWith(503, time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
	if d, ok := fault.RetryAfter(res.Err); !ok || d < 58*time.Minute || d > time.Hour {
		t.Fatalf("503 Retry-After date → %v, %v", d, ok)
	}
	res = deliverWith(503, "soon")
	if _, ok := fault.RetryAfter(res.Err); ok || res.Err == nil {
		t.Fatalf("unparsable Retry-After should be ignored: %v", res.Err)
	}
}

func TestDeliverRedirectNotFollowed(t *testing.T) {
	var targetHits atomic.Int64
	target := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, code := range []int{301, 302, 307, 308} {
		redirector := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, code)
		}))
		c := newClient(t, deliver.Config{AllowPrivate: true})
		res := c.Deliver(t.Context(), &deliver.Endpoint{Name: "r", URL: redirector.URL}, "msg_r", []byte(`{}`))
		if res.Status != code || res.Delivered() || !fault.IsPermanent(res.Err) {
			t.Fatalf("%d: %+v", code, res)
		}
	}
	if n := targetHits.Load(); n != 0 {
		t.Fatalf("redirect followed %d times", n)
	}
}

func TestDeliverTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) }) // registered after newServer, so it runs before srv.Close
	c := newClient(t, deliver.Config{AllowPrivate: true})
	ep := &deliver.Endpoint{Name: "slow", URL: srv.URL, Timeout: 200 * time.Millisecond}
	res := c.Deliver(t.Context(), ep, "msg_slow", []byte(`{}`))
	if res.Err == nil || res.Status != 0 || fault.IsPermanent(res.Err) {
		t.Fatalf("hanging partner: %+v, want a transient error", res)
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("error does not say timeout: %v", res.Err)
	}
	if fault.IsShutdown(t.Context(), res.Err) {
		t.Error("an attempt timeout must not look like shutdown")
	}
	// A generous ceiling: the endpoint's 200 ms applied, not the 10 s default.
	if res.Duration >= deliver.DefaultTimeout {
		t.Errorf("took %v", res.Duration)
	}
}

func TestDeliverSlowBodyAfterSuccess(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "accepted")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) })
	c := newClient(t, deliver.Config{AllowPrivate: true})
	ep := &deliver.Endpoint{Name: "slow", URL: srv.URL, Timeout: 200 * time.Millisecond}
	res := c.Deliver(t.Context(), ep, "msg_slowbody", []byte(`{}`))
	if !res.Delivered() || res.Snippet != "accepted" {
		t.Fatalf("2xx then a hanging body: %+v", res)
	}
}

func TestDeliverCallerCancel(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices a closed connection only after the body
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) })
	c := newClient(t, deliver.Config{AllowPrivate: true})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	res := c.Deliver(ctx, &deliver.Endpoint{Name: "p", URL: srv.URL}, "msg_c", []byte(`{}`))
	if !fault.IsShutdown(ctx, res.Err) {
		t.Fatalf("cancelled caller: %v, want fault.IsShutdown", res.Err)
	}
}

func TestDeliverSSRFGuard(t *testing.T) {
	rec := &recorder{}
	srv := newServer(t, rec)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	strict := newClient(t, deliver.Config{})

	for _, u := range []string{
		srv.URL,                          // 127.0.0.1 literal
		"http://localhost:" + port + "/", // a name that resolves to loopback
		"http://[::ffff:127.0.0.1]:" + port + "/",
		"http://0.0.0.0:" + port + "/",
	} {
		res := strict.Deliver(t.Context(), &deliver.Endpoint{Name: "internal", URL: u}, "msg_ssrf", []byte(`{}`))
		if !errors.Is(res.Err, deliver.ErrBlocked) || !fault.IsPermanent(res.Err) || res.Status != 0 {
			t.Errorf("%s: %+v, want a permanent ErrBlocked", u, res)
		}
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("guard let %d requests through", n)
	}

	// Allowed per endpoint on a strict client, and for every endpoint by Config.AllowPrivate.
	if res := strict.Deliver(t.Context(), &deliver.Endpoint{Name: "dev", URL: srv.URL, AllowPrivate: true}, "msg_ok", []byte(`{}`)); !res.Delivered() {
		t.Fatalf("Endpoint.AllowPrivate: %+v", res)
	}
	lenient := newClient(t, deliver.Config{AllowPrivate: true})
	if res := lenient.Deliver(t.Context(), &deliver.Endpoint{Name: "dev", URL: srv.URL}, "msg_ok2", []byte(`{}`)); !res.Delivered() {
		t.Fatalf("Config.AllowPrivate: %+v", res)
	}
	// The strict client still refuses after the lenient paths opened connections.
	if res := strict.Deliver(t.Context(), &deliver.Endpoint{Name: "internal", URL: srv.URL}, "msg_again", []byte(`{}`)); !errors.Is(res.Err, deliver.ErrBlocked) {
		t.Fatalf("strict after lenient: %+v", res)
	}
}

func TestDeliverRejectsBadInput(t *testing.T) {
	rec := &recorder{}
	srv := newServer(t, rec)
	c := newClient(t, deliver.Config{AllowPrivate: true})
	good := &deliver.Endpoint{Name: "p", URL: srv.URL}
	for name, res := range map[string]deliver.Result{
		"nil endpoint": c.Deliver(t.Context(), nil, "msg", nil),
		"empty id":     c.Deliver(t.Context(), good, "", nil),
		"id with CRLF": c.Deliver(t.Context(), good, "msg\r\nX-Evil: 1", nil),
		"ftp URL":      c.Deliver(t.Context(), &deliver.Endpoint{Name: "p", URL: "ftp://example.com/x"}, "msg", nil),
		"no host":      c.Deliver(t.Context(), &deliver.Endpoint{Name: "p", URL: "http:///x"}, "msg", nil),
	} {
		if !fault.IsPermanent(res.Err) {
			t.Errorf("%s: %v, want permanent", name, res.Err)
		}
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("%d requests sent for bad input", n)
	}
}

func TestDeliverReadsResponseBounded(t *testing.T) {
	var conns atomic.Int64
	big := bytes.Repeat([]byte("x"), 1<<20)
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("X-Big") != "" {
			w.Write(big)
			return
		}
		w.Write(big[:10_000]) // larger than the snippet, smaller than the drain limit
	}), func(s *http.Server) {
		s.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
	})
	c := newClient(t, deliver.Config{AllowPrivate: true, MaxResponseSnippet: 100})
	ep := &deliver.Endpoint{Name: "p", URL: srv.URL}
	for i := range 20 {
		res := c.Deliver(t.Context(), ep, "msg_"+strconv.Itoa(i), []byte(`{}`))
		if !res.Delivered() || len(res.Snippet) != 100 {
			t.Fatalf("attempt %d: %v, snippet %d bytes", i, res.Err, len(res.Snippet))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 20 sequential deliveries, want 1 (bodies drained, conn reused)", n)
	}
	res := c.Deliver(t.Context(), &deliver.Endpoint{Name: "p", URL: srv.URL, Headers: map[string]string{"X-Big": "1"}}, "msg_big", nil)
	if !res.Delivered() || len(res.Snippet) != 100 {
		t.Fatalf("1 MiB answer: %+v", res)
	}
}

func TestNoSecretsInErrorsOrOutput(t *testing.T) {
	const token = "tok-SUPERSECRET-1234"
	secretText := deliver.GenerateSecret()
	secret := mustSecret(t, secretText)
	failing := statusServer(t)
	release := make(chan struct{})
	hanging := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) })

	withCreds := func(u string) string {
		return strings.Replace(u, "http://", "http://user:pw-SUPERSECRET@", 1) + "/hook?key=q-SUPERSECRET"
	}
	ep := func(u string) *deliver.Endpoint {
		return &deliver.Endpoint{
			Name: "acme", URL: u, Secrets: [][]byte{secret}, BearerToken: token, Timeout: 200 * time.Millisecond,
			Headers: map[string]string{"X-Want-Status": "500"},
		}
	}
	lenient := newClient(t, deliver.Config{AllowPrivate: true})
	strict := newClient(t, deliver.Config{})
	var texts []string
	for _, res := range []deliver.Result{
		lenient.Deliver(t.Context(), ep(withCreds(failing.URL)), "msg_1", []byte(`{}`)), // 500
		lenient.Deliver(t.Context(), ep(withCreds(hanging.URL)), "msg_2", []byte(`{}`)), // timeout
		strict.Deliver(t.Context(), ep(withCreds(failing.URL)), "msg_3", []byte(`{}`)),  // blocked
		lenient.Deliver(t.Context(), ep("http://user:pw-SUPERSECRET@%zz/?key=q-SUPERSECRET"), "msg_4", nil),
		lenient.Deliver(t.Context(), ep("http://127.0.0.1:1/?key=q-SUPERSECRET"), "msg_5", nil), // refused
	} {
		if res.Err == nil {
			t.Fatalf("expected a failure: %+v", res)
		}
		texts = append(texts, res.Err.Error(), fmt.Sprintf("%+v", res))
	}
	e := ep(withCreds("http://partner.example"))
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("endpoint", "ep", e, "epv", *e)
	texts = append(texts, fmt.Sprint(e), fmt.Sprintf("%v %+v %#v %s", *e, *e, *e, *e), fmt.Sprintf("%#v", e), logged.String())

	for _, s := range texts {
		for _, leak := range []string{"SUPERSECRET", strings.TrimPrefix(secretText, "whsec_"), string(secret)} {
			if strings.Contains(s, leak) {
				t.Errorf("leak of %q in %q", leak, s)
			}
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, u := range []string{"http://example.com", "https://example.com:8443/hook?x=1", "http://10.0.0.1/x", "https://[2001:db8::1]/"} {
		if err := deliver.CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v", u, err)
		}
	}
	for _, u := range []string{"", "example.com/hook", "ftp://example.com", "file:///etc/passwd", "http://", "http:///path",
		"javascript:alert(1)", "https:opaque", "http://exa mple.com/", "gopher://x"} {
		if err := deliver.CheckURL(u); !errors.Is(err, deliver.ErrURL) {
			t.Errorf("CheckURL(%q) = %v, want ErrURL", u, err)
		}
	}
}

func TestEndpointValidate(t *testing.T) {
	good := deliver.Endpoint{Name: "p", URL: "https://example.com/h", Secrets: [][]byte{[]byte("k")}, BearerToken: "t"}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	for name, mut := range map[string]func(*deliver.Endpoint){
		"no name":      func(e *deliver.Endpoint) { e.Name = "" },
		"bad url":      func(e *deliver.Endpoint) { e.URL = "ftp://x" },
		"token CRLF":   func(e *deliver.Endpoint) { e.BearerToken = "a\r\nb" },
		"header name":  func(e *deliver.Endpoint) { e.Headers = map[string]string{"X Y": "1"} },
		"header value": func(e *deliver.Endpoint) { e.Headers = map[string]string{"X": "1\n2"} },
		"empty secret": func(e *deliver.Endpoint) { e.Secrets = [][]byte{{}} },
		"neg timeout":  func(e *deliver.Endpoint) { e.Timeout = -time.Second },
	} {
		e := good
		mut(&e)
		err := e.Validate()
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "a\r\nb") {
			t.Errorf("%s: error repeats the token", name)
		}
	}
}
