// Package deliver sends messages to partner endpoints as Standard Webhooks
// (https://www.standardwebhooks.com): one signed POST per attempt, with a webhook-id that stays
// the same across attempts and replays, a fresh webhook-timestamp per attempt, and a signature
// per configured secret so that secrets can be rotated.
//
// Deliver makes exactly one attempt and classifies the outcome with internal/fault; the retry
// schedule, dead letters and endpoint disabling (on 410 Gone) belong to the caller. Redirects are
// never followed, and an SSRF guard judges the resolved address of every connection at dial
// time. Secrets and tokens never appear in errors, results or String output.
package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/weirhq/weir/internal/fault"
)

// Defaults applied by New and Deliver.
const (
	DefaultTimeout             = 10 * time.Second
	DefaultMaxResponseSnippet  = 512
	DefaultUserAgent           = "Weir-Webhooks/1"
	DefaultMaxIdleConnsPerHost = 256

	// drainLimit bounds how much of a response body is read. Reading the body to its end lets the
	// connection go back to the pool; a partner that answers with more than this costs us one
	// connection, not unbounded reading.
	drainLimit = 64 << 10
)

// Config tunes a Client. The zero value is usable: private destinations blocked, 10 s per
// attempt, 512-byte snippets.
type Config struct {
	// AllowPrivate permits loopback, private, link-local and other internal destinations for
	// every endpoint. Tests and the quickstart set it; production leaves it off and allows
	// single endpoints with Endpoint.AllowPrivate when really needed.
	AllowPrivate bool
	// MaxResponseSnippet bounds the response body kept in Result.Snippet and in errors
	// (default 512 bytes).
	MaxResponseSnippet int
	// UserAgent is sent with every request (default "Weir-Webhooks/1").
	UserAgent string
	// Timeout bounds an attempt when the endpoint sets none (default 10 s).
	Timeout time.Duration
	// MaxIdleConnsPerHost is the keep-alive pool per partner host (default 256), sized for
	// many deliver workers talking to one partner.
	MaxIdleConnsPerHost int
	// Now stamps webhook-timestamp; tests inject a clock (default time.Now).
	Now func() time.Time
}

// Endpoint is one partner URL with its credentials. It never prints its secrets or token: String,
// GoString and LogValue show only the name and the URL without credentials or query.
type Endpoint struct {
	Name        string
	URL         string
	Secrets     [][]byte // signing secrets; several during a rotation, newest first
	BearerToken string   // sent as Authorization: Bearer when set
	Timeout     time.Duration
	Headers     map[string]string // extra headers; cannot override the webhook and auth headers
	// AllowPrivate lifts the SSRF guard for this endpoint alone.
	AllowPrivate bool
}

// Validate checks the endpoint's configuration: a name, a deliverable URL (CheckURL), and header
// values and token that can go on the wire.
func (e *Endpoint) Validate() error {
	if e.Name == "" {
		return errors.New("deliver: endpoint has no name")
	}
	if err := CheckURL(e.URL); err != nil {
		return fmt.Errorf("endpoint %q: %w", e.Name, err)
	}
	if !validHeaderValue(e.BearerToken) {
		return fmt.Errorf("endpoint %q: bearer token contains control characters", e.Name)
	}
	for k, v := range e.Headers {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") || !validHeaderValue(v) {
			return fmt.Errorf("endpoint %q: header %q is not a valid HTTP header", e.Name, k)
		}
	}
	for i, s := range e.Secrets {
		if len(s) == 0 {
			return fmt.Errorf("endpoint %q: secret %d is empty", e.Name, i+1)
		}
	}
	if e.Timeout < 0 {
		return fmt.Errorf("endpoint %q: negative timeout", e.Name)
	}
	return nil
}

// String shows the endpoint without secrets, token, URL credentials or query.
func (e Endpoint) String() string { return fmt.Sprintf("endpoint %q (%s)", e.Name, redactURL(e.URL)) }

// GoString is String, so that %#v cannot print secrets either.
func (e Endpoint) GoString() string { return e.String() }

// LogValue shows the endpoint in slog without secrets or token.
func (e Endpoint) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", e.Name), slog.String("url", redactURL(e.URL)))
}

// Result is the outcome of one attempt.
type Result struct {
	// Status is the HTTP status the endpoint answered, 0 when no answer arrived.
	Status int
	// Err is nil when the endpoint answered 2xx. Otherwise it is classified with internal/fault:
	// fault.IsPermanent for 3xx, 4xx other than 408/429, bad configuration and blocked
	// destinations; transient for 408, 429, 5xx, timeouts and network errors, with
	// fault.RetryAfter carrying the endpoint's Retry-After. When the caller's ctx ended,
	// fault.IsShutdown(ctx, Err) is true.
	Err error
	// Duration is the wall time of the attempt.
	Duration time.Duration
	// Snippet is the start of the response body (bounded by Config.MaxResponseSnippet).
	Snippet string
}

// Delivered reports whether the endpoint accepted the message (2xx).
func (r Result) Delivered() bool { return r.Err == nil && r.Status >= 200 && r.Status < 300 }

// Gone reports whether the endpoint answered 410 Gone: the partner asks to stop delivering to
// it, and the caller should disable the endpoint rather than retry.
func (r Result) Gone() bool { return r.Status == http.StatusGone }

// Client delivers webhooks. It is safe for concurrent use by any number of deliver workers; each
// keeps its connections alive in a shared pool.
type Client struct {
	cfg     Config
	strict  *http.Client // SSRF guard on
	lenient *http.Client // for AllowPrivate
}

// New returns a Client with cfg's defaults applied.
func New(cfg Config) *Client {
	if cfg.MaxResponseSnippet <= 0 {
		cfg.MaxResponseSnippet = DefaultMaxResponseSnippet
	}
	if cfg.MaxResponseSnippet > drainLimit {
		cfg.MaxResponseSnippet = drainLimit
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxIdleConnsPerHost <= 0 {
		cfg.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{cfg: cfg, lenient: newHTTPClient(cfg, false)}
	c.strict = c.lenient
	if !cfg.AllowPrivate {
		c.strict = newHTTPClient(cfg, true)
	}
	return c
}

// HTTPClient returns a client tuned like the webhook client (pooled keep-alive connections,
// redirects never followed, proxies ignored), with the SSRF guard unless allowPrivate: for
// workflow calls to services.
func HTTPClient(maxIdlePerHost int, allowPrivate bool) *http.Client {
	return newHTTPClient(Config{MaxIdleConnsPerHost: maxIdlePerHost}, !allowPrivate)
}

// newHTTPClient builds the tuned client. Proxies from the environment are ignored on purpose: a
// proxy would make the dial guard judge the proxy's address instead of the partner's.
func newHTTPClient(cfg Config, guard bool) *http.Client {
	// No dial timeout of its own: the attempt's context bounds the dial.
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	if guard {
		d.ControlContext = guardControl
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           4 * cfg.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true, // we keep a raw snippet and never want to inflate a bomb
	}
	return &http.Client{
		Transport: tr,
		// A 3xx is an answer, not an instruction: the caller sees it and fault.HTTP makes it a
		// permanent failure. Following would also let a partner steer us past the SSRF guard's
		// intent (the guard would still check the dial, but the URL would no longer be the
		// configured one).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Close releases idle connections. In-flight deliveries finish normally.
func (c *Client) Close() {
	c.strict.CloseIdleConnections()
	c.lenient.CloseIdleConnections()
}

// Deliver makes one attempt to POST body to ep. id is the webhook-id: the caller passes the same
// id on every attempt and replay of a message so that the partner can deduplicate. The attempt is
// bounded by ep.Timeout (or Config.Timeout) and by ctx.
func (c *Client) Deliver(ctx context.Context, ep *Endpoint, id string, body []byte) Result {
	start := time.Now()
	res := c.attempt(ctx, ep, id, body)
	res.Duration = time.Since(start)
	return res
}

func (c *Client) attempt(ctx context.Context, ep *Endpoint, id string, body []byte) Result {
	if ep == nil {
		return Result{Err: fault.Permanent(errors.New("deliver: nil endpoint"))}
	}
	if id == "" || !validHeaderValue(id) {
		return Result{Err: fault.Permanent(fmt.Errorf("deliver to %q: webhook-id is empty or has control characters", ep.Name))}
	}
	if err := CheckURL(ep.URL); err != nil {
		return Result{Err: fault.Permanent(fmt.Errorf("deliver to %q: %w", ep.Name, err))}
	}
	timeout := ep.Timeout
	if timeout <= 0 {
		timeout = c.cfg.Timeout
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(actx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return Result{Err: fault.Permanent(fmt.Errorf("deliver to %q: cannot build request: %w", ep.Name, ErrURL))}
	}
	h := req.Header
	for k, v := range ep.Headers {
		h.Set(k, v)
	}
	ts := c.cfg.Now()
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", c.cfg.UserAgent)
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if len(ep.Secrets) > 0 {
		h.Set(HeaderSignature, SignAll(ep.Secrets, id, ts, body))
	} else {
		h.Del(HeaderSignature)
	}
	if ep.BearerToken != "" {
		h.Set("Authorization", "Bearer "+ep.BearerToken)
	} else {
		h.Del("Authorization")
	}
	// The webhook-id makes the request safe to replay, so let the transport resend it when a
	// pooled keep-alive connection turns out to be closed by the partner. A nil value marks the
	// request idempotent without sending an Idempotency-Key header (unless the endpoint's
	// headers set one).
	if _, ok := h["Idempotency-Key"]; !ok {
		h["Idempotency-Key"] = nil
	}

	hc := c.strict
	if ep.AllowPrivate {
		hc = c.lenient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Result{Err: c.classify(ctx, actx, ep, timeout, err)}
	}
	defer resp.Body.Close()

	snippet := c.readBody(resp.Body)
	res := Result{Status: resp.StatusCode, Snippet: snippet}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return res
	}
	res.Err = fmt.Errorf("deliver to %q: %w", ep.Name, fault.HTTP(resp.StatusCode, resp.Header.Get("Retry-After"), snippet))
	return res
}

// classify turns a transport error into a fault-classified one. The *url.Error wrapper is
// dropped because its text repeats the URL, which may carry a token in its query.
func (c *Client) classify(ctx, actx context.Context, ep *Endpoint, timeout time.Duration, err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	switch {
	case errors.Is(err, ErrBlocked):
		return fault.Permanent(fmt.Errorf("deliver to %q: %w", ep.Name, err))
	case ctx.Err() != nil:
		// The caller is shutting down or gave up: keep the ctx error visible for fault.IsShutdown.
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return fmt.Errorf("deliver to %q: %w", ep.Name, err)
	case actx.Err() != nil:
		return fmt.Errorf("deliver to %q: no answer within %s: %w", ep.Name, timeout, err)
	default:
		return fmt.Errorf("deliver to %q: %w", ep.Name, err)
	}
}

// readBody keeps a snippet of the body and drains the rest up to drainLimit so the connection
// can be reused. A read error (a partner that hangs after the status line) only shortens the
// snippet: the status already decided the outcome.
func (c *Client) readBody(body io.Reader) string {
	buf := make([]byte, c.cfg.MaxResponseSnippet)
	n, _ := io.ReadFull(body, buf)
	if n == len(buf) {
		_, _ = io.CopyN(io.Discard, body, drainLimit-int64(n))
	}
	return cleanSnippet(buf[:n])
}

// cleanSnippet makes a body prefix safe to show in an error or a log line: valid UTF-8, control
// characters as spaces, trimmed.
func cleanSnippet(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	// Our cut may split the last multi-byte rune; drop that tail rather than show U+FFFD.
	for i := 1; i < utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				b = b[:len(b)-i]
			}
			break
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// redactURL returns scheme://host/path without user info, query or fragment.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<invalid URL>"
	}
	r := url.URL{Scheme: p.Scheme, Host: p.Host, Path: p.Path}
	s := r.String()
	if p.RawQuery != "" {
		s += "?…"
	}
	return s
}
