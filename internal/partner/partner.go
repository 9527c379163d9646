// Package partner is the demo partner: an http.Handler that receives Weir's Standard Webhooks
// deliveries the way a careful partner would. It verifies each signature (401 when it does not
// match), remembers what it accepted, and answers 204. `weir demo-partner` serves it so that the
// quickstart has somewhere to deliver to, and end-to-end tests use it to count deliveries and
// distinct webhook-ids (duplicates with the same id are allowed by at-least-once delivery).
//
// FailFirst makes it answer 503 to the first attempts of every webhook-id, to show retries;
// Refuse makes it answer 500 to chosen bodies every time (poison messages, which end as dead
// letters); OnAccept sees every accepted delivery (benchmarks measure end-to-end latency there).
// Everything is kept in memory; Config.Keep bounds the deliveries retained.
package partner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/weirhq/weir/internal/deliver"
)

// Defaults applied by New.
const (
	DefaultMaxBody = 1 << 20
	lastShown      = 10 // deliveries listed by GET /
)

// Config tunes a Receiver.
type Config struct {
	// Secrets verify webhook-signature; any one matching is enough (rotation). With no secrets
	// the receiver does not check signatures at all (it logs a warning once at New) but still
	// requires webhook-id and webhook-timestamp.
	Secrets [][]byte
	// Tolerance bounds the age (and future skew) of webhook-timestamp (default 5 minutes).
	Tolerance time.Duration
	// Logger gets one line per attempt (default: discard).
	Logger *slog.Logger
	// FailFirst answers 503 to the first FailFirst verified attempts of each webhook-id.
	FailFirst int
	// Refuse, when set, is asked about every verified attempt (after FailFirst): true answers
	// 500, every time the same body comes back, as a partner does with a message it can never
	// take (a poison message). Refused attempts count in Attempts, not in Count. It is called
	// concurrently and must not keep body.
	Refuse func(id string, body []byte) bool
	// OnAccept, when set, is called with every accepted attempt (duplicates included), outside
	// the receiver's lock and before the answer is written. It is called concurrently.
	OnAccept func(d Delivery)
	// MaxBody bounds a request body; larger ones get 413 (default 1 MiB).
	MaxBody int64
	// Keep bounds the deliveries retained for Deliveries and GET / (0 keeps all): past Keep,
	// the older half is dropped. Count, Unique and WaitFor stay exact either way.
	Keep int
	// Now is the receiver's clock (default time.Now).
	Now func() time.Time
}

// Delivery is one accepted attempt.
type Delivery struct {
	ID        string    `json:"id"`        // webhook-id
	Timestamp time.Time `json:"timestamp"` // webhook-timestamp, as sent
	Body      []byte    `json:"-"`
	Received  time.Time `json:"received"`
	Attempt   int       `json:"attempt"`   // attempts seen for this id so far, failed ones included
	Duplicate bool      `json:"duplicate"` // an earlier attempt with this id was already accepted
}

// Receiver is the demo partner's http.Handler. It is safe for concurrent use.
type Receiver struct {
	cfg Config

	mu         sync.Mutex
	deliveries []Delivery
	count      int
	attempts   map[string]int  // verified attempts per id, 503s included
	accepted   map[string]bool // ids accepted at least once
	changed    chan struct{}   // closed and replaced whenever a new id is accepted
}

// New returns a Receiver with cfg's defaults applied.
func New(cfg Config) *Receiver {
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = deliver.DefaultTolerance
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.Secrets) == 0 {
		cfg.Logger.Warn("demo partner: no secret configured, signatures are not checked")
	}
	return &Receiver{
		cfg:      cfg,
		attempts: make(map[string]int),
		accepted: make(map[string]bool),
		changed:  make(chan struct{}),
	}
}

// ServeHTTP accepts POST deliveries on any path and answers GET / with a JSON summary.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		rc.receive(w, r)
	case http.MethodGet, http.MethodHead:
		rc.summary(w)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (rc *Receiver) receive(w http.ResponseWriter, r *http.Request) {
	log := rc.cfg.Logger
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rc.cfg.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			log.Warn("webhook rejected", "reason", "body too large", "limit", rc.cfg.MaxBody)
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		log.Warn("webhook rejected", "reason", "body unreadable", "err", err)
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	now := rc.cfg.Now()
	if err := rc.check(r.Header, body, now); err != nil {
		log.Warn("webhook rejected", "id", r.Header.Get(deliver.HeaderID), "reason", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	id := r.Header.Get(deliver.HeaderID)
	sec, _ := strconv.ParseInt(r.Header.Get(deliver.HeaderTimestamp), 10, 64)
	ts := time.Unix(sec, 0)
	refuse := rc.cfg.Refuse != nil && rc.cfg.Refuse(id, body)

	rc.mu.Lock()
	rc.attempts[id]++
	attempt := rc.attempts[id]
	if attempt <= rc.cfg.FailFirst {
		rc.mu.Unlock()
		log.Info("webhook refused on purpose", "id", id, "attempt", attempt, "fail_first", rc.cfg.FailFirst, "status", http.StatusServiceUnavailable)
		http.Error(w, "failing on purpose (fail-first)", http.StatusServiceUnavailable)
		return
	}
	if refuse {
		rc.mu.Unlock()
		log.Info("webhook refused on purpose", "id", id, "attempt", attempt, "status", http.StatusInternalServerError)
		http.Error(w, "refusing this message on purpose (poison)", http.StatusInternalServerError)
		return
	}
	d := Delivery{ID: id, Timestamp: ts, Body: body, Received: now, Attempt: attempt, Duplicate: rc.accepted[id]}
	rc.count++
	if rc.cfg.Keep > 0 && len(rc.deliveries) >= rc.cfg.Keep {
		// Drop the oldest half at once so that trimming costs O(1) per delivery on average.
		n := copy(rc.deliveries, rc.deliveries[len(rc.deliveries)-rc.cfg.Keep/2:])
		clear(rc.deliveries[n:])
		rc.deliveries = rc.deliveries[:n]
	}
	rc.deliveries = append(rc.deliveries, d)
	if !d.Duplicate {
		rc.accepted[id] = true
		close(rc.changed)
		rc.changed = make(chan struct{})
	}
	count, unique := rc.count, len(rc.accepted)
	rc.mu.Unlock()

	log.Info("webhook received", "id", id, "attempt", attempt, "duplicate", d.Duplicate,
		"bytes", len(body), "lag", now.Sub(ts).Round(time.Second), "count", count, "unique", unique)
	if rc.cfg.OnAccept != nil {
		rc.cfg.OnAccept(d)
	}
	w.WriteHeader(http.StatusNoContent)
}

// check verifies the request, or with no secrets only requires the webhook-id and timestamp.
func (rc *Receiver) check(h http.Header, body []byte, now time.Time) error {
	if len(rc.cfg.Secrets) > 0 {
		return deliver.Verify(rc.cfg.Secrets, h, body, rc.cfg.Tolerance, now)
	}
	if h.Get(deliver.HeaderID) == "" || h.Get(deliver.HeaderTimestamp) == "" {
		return deliver.ErrMissingHeader
	}
	if _, err := strconv.ParseInt(h.Get(deliver.HeaderTimestamp), 10, 64); err != nil {
		return deliver.ErrTimestamp
	}
	return nil
}

// summaryJSON is the body of GET /.
type summaryJSON struct {
	Count  int        `json:"count"`
	Unique int        `json:"unique"`
	Last   []lastJSON `json:"last"`
}

type lastJSON struct {
	Delivery
	Bytes int             `json:"bytes"`
	Body  json.RawMessage `json:"body,omitempty"` // only when it is small, valid JSON
}

func (rc *Receiver) summary(w http.ResponseWriter) {
	rc.mu.Lock()
	s := summaryJSON{Count: rc.count, Unique: len(rc.accepted), Last: []lastJSON{}}
	from := max(0, len(rc.deliveries)-lastShown)
	for i := len(rc.deliveries) - 1; i >= from; i-- {
		d := rc.deliveries[i]
		l := lastJSON{Delivery: d, Bytes: len(d.Body)}
		if len(d.Body) <= 4096 && json.Valid(d.Body) {
			l.Body = json.RawMessage(d.Body)
		}
		s.Last = append(s.Last, l)
	}
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s) // a failed write means the client went away
}

// Deliveries returns a copy of the accepted deliveries, oldest first. With Config.Keep set it
// holds only recent ones (at most Keep). Bodies are shared, not copied: do not modify them.
func (rc *Receiver) Deliveries() []Delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Delivery(nil), rc.deliveries...)
}

// Count returns the number of accepted attempts, duplicates included.
func (rc *Receiver) Count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.count
}

// Unique returns the number of distinct webhook-ids accepted.
func (rc *Receiver) Unique() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.accepted)
}

// Attempts returns how many verified attempts arrived for id, refused (FailFirst) ones included.
func (rc *Receiver) Attempts(id string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.attempts[id]
}

// WaitFor blocks until at least n distinct webhook-ids have been accepted, or ctx ends (then it
// returns ctx's error with the count reached).
func (rc *Receiver) WaitFor(ctx context.Context, n int) error {
	for {
		rc.mu.Lock()
		got, ch := len(rc.accepted), rc.changed
		rc.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("partner: %d of %d distinct deliveries: %w", got, n, ctx.Err())
		}
	}
}

var _ http.Handler = (*Receiver)(nil)
