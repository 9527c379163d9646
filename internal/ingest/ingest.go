// Package ingest is Weir's HTTP gateway for partners: it authenticates each client, enforces
// limits, decodes and validates every message against its type's schema, assigns ids, drops
// duplicates, and answers 202 only after the message is durably in the log.
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/format"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/state"
)

// Client is an authenticated partner.
type Client struct {
	ID        string
	TokenHash [sha256.Size]byte
	Types     map[string]bool
	Limiter   *rate.Limiter // nil: unlimited

	active *atomic.Int64 // requests of the client in flight (with Config.MaxInFlightPerClient); New sets it
}

// Type is what ingest needs to know about a message type.
type Type struct {
	Name       string
	Schema     *format.Schema // nil: any JSON document
	KeyPointer string         // ordering key; empty: the message id
	IDPointer  string         // message id; empty: Idempotency-Key header or a UUIDv7
	// Expect lists the trail entries that mean "done": "persist", "deliver:<endpoint>" and
	// "workflow".
	Expect []string
	// Workflow is set when the type runs a workflow (GET /v1/workflows/{id} looks there).
	Workflow bool
	// Topic, when set, is where the type's messages are appended instead of Config.Topic (a type
	// that only runs a workflow goes straight to the workflow stage).
	Topic string
	// XML lists the XML dialects the type accepts (none: JSON only).
	XML []*XMLInput
}

// Store is where ingest appends accepted messages and reads what it remembers of them;
// *state.Store implements it on the embedded log.
type Store interface {
	// Append appends msgs to topic durably together with their receipts (accepts): when it
	// returns nil both are fsync'd; on error neither may be acknowledged.
	Append(ctx context.Context, topic string, msgs []buffer.Message, accepts []state.Accept) error
	Receipt(client, typ, id string) (state.Receipt, bool, error)
	// Trail is a message's status trail; types are the client's, whose receipts give the
	// "accepted" events.
	Trail(client, id string, types ...string) ([]state.Event, error)
	WorkflowRun(id string) (*state.Run, error)
}

// Config configures a Gateway.
type Config struct {
	Topic         string // topic accepted messages are appended to
	MaxBody       int64
	MaxBatchLines int
	// MaxInFlight bounds the ingest requests being served at once; beyond it a request gets 503
	// with Retry-After at once, so memory stays bounded (each may hold up to MaxBody).
	MaxInFlight int
	// MaxInFlightPerClient bounds one client's requests in flight (0: none beyond MaxInFlight);
	// beyond it the client gets 429, and the other clients keep their share.
	MaxInFlightPerClient int
	Clients              []Client
	Types                []Type
	Logger               *slog.Logger
	// Health reports why the log cannot take writes (nil when it can); /readyz uses it.
	Health func() error
	// Admit, when set, says why ingest must not take messages now (the backlog is above its
	// high-water mark, the disk is nearly full) and when to come back; "" lets them in. Refused
	// requests get 429 with Retry-After before their body is read.
	Admit func() (reason string, retryAfter time.Duration)
	// OnAccepted is told how many messages of a type were just accepted (optional: metrics).
	OnAccepted func(typ string, n int)
}

// Gateway serves the ingestion API. It is an http.Handler.
type Gateway struct {
	cfg     Config
	store   Store
	clients map[string]*Client
	byHash  map[[sha256.Size]byte]*Client
	types   map[string]*Type
	mux     *http.ServeMux
	locks   [4096]sync.Mutex // dedup stripes, held across check, append and receipt
	seed    maphash.Seed
	dummy   [sha256.Size]byte
	ready   atomic.Bool
	slots   chan struct{} // one per request in flight, MaxInFlight in all
	active  atomic.Int64  // requests in flight

	accepted atomic.Int64
	lastAt   atomic.Int64 // the latest acceptance time handed out (unix µs)
}

// stamp returns the acceptance time of a new message: now at microsecond precision (what the
// SQL sinks store), and always later than every earlier one, so that "the message accepted last
// wins" (the sinks' upsert guard) has no ties, not even within one batch.
func (g *Gateway) stamp() time.Time {
	now := time.Now().UnixMicro()
	for {
		last := g.lastAt.Load()
		next := max(now, last+1)
		if g.lastAt.CompareAndSwap(last, next) {
			return time.UnixMicro(next).UTC()
		}
	}
}

// New builds a gateway that appends accepted messages through store.
func New(cfg Config, store Store) (*Gateway, error) {
	if cfg.Topic == "" {
		return nil, errors.New("ingest: no topic")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.MaxBatchLines <= 0 {
		cfg.MaxBatchLines = 10000
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 512
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Gateway{cfg: cfg, store: store, seed: maphash.MakeSeed(),
		clients: map[string]*Client{}, byHash: map[[sha256.Size]byte]*Client{}, types: map[string]*Type{}}
	g.dummy = sha256.Sum256([]byte("weir: no such client"))
	g.slots = make(chan struct{}, cfg.MaxInFlight)
	for i := range cfg.Clients {
		c := &cfg.Clients[i]
		c.active = new(atomic.Int64)
		g.clients[c.ID] = c
		g.byHash[c.TokenHash] = c
	}
	for i := range cfg.Types {
		g.types[cfg.Types[i].Name] = &cfg.Types[i]
	}
	g.mux = http.NewServeMux()
	g.mux.HandleFunc("POST /v1/messages/{type}", g.handleOne)
	g.mux.HandleFunc("PUT /v1/messages/{type}/{id}", g.handleOne)
	g.mux.HandleFunc("POST /v1/messages/{type}/batch", g.handleBatch)
	g.mux.HandleFunc("POST /v1/files", g.handleFiles)
	g.mux.HandleFunc("GET /v1/messages/{id}", g.handleStatus)
	g.mux.HandleFunc("GET /v1/workflows/{id}", g.handleWorkflow)
	g.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	g.mux.HandleFunc("GET /readyz", g.handleReady)
	g.ready.Store(true)
	return g, nil
}

// ServeHTTP implements http.Handler. Beyond MaxInFlight requests at once, API requests are
// refused with 503 and Retry-After before their body is read.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		select {
		case g.slots <- struct{}{}:
		default:
			writeProblem(w, unavailable(fmt.Sprintf("more than %d requests in flight", g.cfg.MaxInFlight)))
			return
		}
		g.active.Add(1)
		defer func() {
			g.active.Add(-1)
			<-g.slots
		}()
		if g.cfg.Admit != nil && r.Method != http.MethodGet {
			if reason, after := g.cfg.Admit(); reason != "" {
				p := problem(http.StatusTooManyRequests, "overloaded", "Too many requests", reason)
				p.retryAfter = after
				writeProblem(w, p)
				return
			}
		}
	}
	g.mux.ServeHTTP(w, r)
}

// Wait returns once no API request is in flight, or when ctx ends. The app calls it after the
// HTTP server stopped accepting and before it closes the log the handlers write to.
func (g *Gateway) Wait(ctx context.Context) error {
	for g.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// SetReady flips /readyz; the app clears it when shutdown starts.
func (g *Gateway) SetReady(ok bool) { g.ready.Store(ok) }

// InFlight returns the API requests being served now.
func (g *Gateway) InFlight() int64 { return g.active.Load() }

// Accepted returns the number of messages accepted since start.
func (g *Gateway) Accepted() int64 { return g.accepted.Load() }

func (g *Gateway) handleReady(w http.ResponseWriter, _ *http.Request) {
	if !g.ready.Load() {
		writeProblem(w, problem(http.StatusServiceUnavailable, "not-ready", "Not ready", "weir is starting or shutting down"))
		return
	}
	if g.cfg.Health != nil {
		if err := g.cfg.Health(); err != nil {
			writeProblem(w, problem(http.StatusServiceUnavailable, "not-ready", "Not ready", "the log cannot accept writes"))
			return
		}
	}
	w.Write([]byte("ready\n"))
}

// authenticate checks HTTP Basic (client id : token) or a Bearer token. Unknown clients and
// wrong tokens get the same answer, and both paths compare hashes in constant time.
func (g *Gateway) authenticate(r *http.Request) (*Client, *Problem) {
	if id, token, ok := r.BasicAuth(); ok {
		return g.check(id, token)
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		sum := sha256.Sum256([]byte(strings.TrimSpace(h[7:])))
		if c := g.byHash[sum]; c != nil && subtle.ConstantTimeCompare(sum[:], c.TokenHash[:]) == 1 {
			return c, nil
		}
	}
	return nil, errUnauthorized
}

// check authenticates a client id and token.
func (g *Gateway) check(id, token string) (*Client, *Problem) {
	sum := sha256.Sum256([]byte(token))
	c := g.clients[id]
	want := &g.dummy
	if c != nil {
		want = &c.TokenHash
	}
	if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 && c != nil {
		return c, nil
	}
	return nil, errUnauthorized
}

// admit authenticates the request and resolves the message type it addresses.
func (g *Gateway) admit(r *http.Request, n int) (*Client, *Type, func(), *Problem) {
	c, p := g.authenticate(r)
	if p != nil {
		return nil, nil, nil, p
	}
	name := r.PathValue("type")
	t := g.types[name]
	if t == nil || !c.Types[name] {
		// An unknown type and a forbidden one look alike, so clients cannot probe for types.
		return nil, nil, nil, problem(http.StatusForbidden, "type-not-allowed", "Message type not allowed",
			fmt.Sprintf("client %q may not send message type %q", c.ID, name))
	}
	// Fair share: one client cannot hold every request slot and starve the others.
	if most := g.cfg.MaxInFlightPerClient; most > 0 {
		if c.active.Add(1) > int64(most) {
			c.active.Add(-1)
			p := problem(http.StatusTooManyRequests, "client-in-flight", "Too many requests",
				fmt.Sprintf("client %q has %d requests in flight, its share (limits.max_inflight_per_client)", c.ID, most))
			p.retryAfter = time.Second
			return nil, nil, nil, p
		}
	}
	release := func() {
		if g.cfg.MaxInFlightPerClient > 0 {
			c.active.Add(-1)
		}
	}
	if p := limit(c, n); p != nil {
		release()
		return nil, nil, nil, p
	}
	return c, t, release, nil
}

// limit takes n messages from the client's token bucket, or says when to come back.
func limit(c *Client, n int) *Problem {
	if c.Limiter == nil || n == 0 {
		return nil
	}
	res := c.Limiter.ReserveN(time.Now(), n)
	if res.OK() && res.Delay() == 0 {
		return nil
	}
	if !res.OK() {
		// More messages than the bucket holds: waiting would never help.
		return problem(http.StatusRequestEntityTooLarge, "over-burst", "Batch larger than the rate limit's burst",
			fmt.Sprintf("client %q may send at most %d messages in one request", c.ID, c.Limiter.Burst()))
	}
	delay := max(res.Delay(), time.Second)
	res.Cancel()
	p := problem(http.StatusTooManyRequests, "rate-limited", "Too many requests", fmt.Sprintf("client %q is over its rate limit", c.ID))
	p.retryAfter = delay
	return p
}

// readBody reads a body of one of the given media types, and returns it with its media type.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request, types ...string) ([]byte, string, *Problem) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	okType := false
	for _, t := range types {
		okType = okType || (err == nil && ct == t)
	}
	if !okType {
		return nil, "", problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			fmt.Sprintf("send Content-Type %s", strings.Join(types, " or ")))
	}
	if r.ContentLength > g.cfg.MaxBody {
		return nil, "", tooLarge(g.cfg.MaxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, "", tooLarge(g.cfg.MaxBody)
		}
		return nil, "", problem(http.StatusBadRequest, "unreadable-body", "Unreadable body", err.Error())
	}
	return body, ct, nil
}

func unavailable(detail string) *Problem {
	p := problem(http.StatusServiceUnavailable, "unavailable", "Temporarily unavailable", detail)
	p.retryAfter = time.Second
	return p
}

func tooLarge(limit int64) *Problem {
	return problem(http.StatusRequestEntityTooLarge, "too-large", "Body too large", fmt.Sprintf("the limit is %d bytes", limit))
}

// candidate is a message that passed validation and waits to be appended.
type candidate struct {
	msg  message.Message
	hash [sha256.Size]byte
	dup  bool // a duplicate of an accepted message: answer with the original receipt
	prob *Problem
}

// prepare validates one JSON document and builds its message; id may come from the request.
func (g *Gateway) prepare(c *Client, t *Type, body []byte, id string, now time.Time) candidate {
	return g.prepareDoc(c, t, body, id, "", now)
}

// prepareDoc is prepare with the ordering key given (an XML dialect's), or empty for the type's.
func (g *Gateway) prepareDoc(c *Client, t *Type, body []byte, id, key string, now time.Time) candidate {
	doc, err := format.Decode(body)
	if err != nil {
		return candidate{prob: problem(http.StatusBadRequest, "invalid-json", "Invalid JSON", err.Error())}
	}
	if t.Schema != nil {
		if v := t.Schema.Validate(doc); v != nil {
			p := problem(http.StatusBadRequest, "validation", "Message does not match its schema",
				fmt.Sprintf("%d violation(s) of the %s schema", len(v), t.Name))
			p.Errors = v
			return candidate{prob: p}
		}
	}
	if id == "" && t.IDPointer != "" {
		var ok bool
		if id, ok = format.LookupString(doc, t.IDPointer); !ok {
			return candidate{prob: problem(http.StatusBadRequest, "missing-id", "Missing message id",
				fmt.Sprintf("no string or number at %s (the type's id pointer) and no Idempotency-Key header", t.IDPointer))}
		}
	}
	if id == "" {
		id = uuid.Must(uuid.NewV7()).String()
	}
	if len(id) > 200 {
		return candidate{prob: problem(http.StatusBadRequest, "bad-id", "Bad message id", "ids are at most 200 bytes")}
	}
	if key == "" && t.KeyPointer != "" {
		k, ok := format.LookupString(doc, t.KeyPointer)
		if !ok {
			return candidate{prob: problem(http.StatusBadRequest, "missing-key", "Missing ordering key",
				fmt.Sprintf("no string or number at %s (the type's key pointer)", t.KeyPointer))}
		}
		key = k
	}
	if key == "" {
		key = id
	}
	return candidate{
		msg:  message.Message{ID: id, Client: c.ID, Type: t.Name, Key: key, ReceivedAt: now, Payload: body},
		hash: sha256.Sum256(body),
	}
}

func (g *Gateway) stripe(c *candidate) int {
	var h maphash.Hash
	h.SetSeed(g.seed)
	h.WriteString(c.msg.Client)
	h.WriteByte(0)
	h.WriteString(c.msg.Type)
	h.WriteByte(0)
	h.WriteString(c.msg.ID)
	return int(h.Sum64() % uint64(len(g.locks)))
}

// commit dedups the candidates and appends the new ones durably; it returns a problem only when
// the log refused the append (then nothing of the call was acknowledged).
func (g *Gateway) commit(ctx context.Context, cands []*candidate) *Problem {
	var stripes []int
	seen := map[int]bool{}
	for _, c := range cands {
		s := g.stripe(c)
		if !seen[s] {
			seen[s] = true
			stripes = append(stripes, s)
		}
	}
	slices.Sort(stripes) // one lock order for every request: no deadlock
	for _, s := range stripes {
		g.locks[s].Lock()
	}
	defer func() {
		for _, s := range stripes {
			g.locks[s].Unlock()
		}
	}()
	// A receipt is readable as soon as its batch is written, before the fsync. Under the stripe
	// locks no other request for these ids can read it until the append's outcome is known, and
	// once an fsync failed the log refuses everything, so a resend never gets a receipt for a
	// message that is not durable.
	if g.cfg.Health != nil {
		if err := g.cfg.Health(); err != nil {
			return unavailable("the log cannot accept messages now")
		}
	}

	var msgs []buffer.Message
	var accepts []state.Accept
	inCall := map[string]*candidate{}
	for _, c := range cands {
		r, found, err := g.store.Receipt(c.msg.Client, c.msg.Type, c.msg.ID)
		if err != nil {
			return unavailable("the state store cannot be read")
		}
		if first := inCall[c.msg.ID]; first != nil {
			found, r = true, state.Receipt{BodyHash: first.hash, AcceptedAt: first.msg.ReceivedAt}
		}
		if found {
			if r.BodyHash != c.hash {
				c.prob = problem(http.StatusConflict, "conflict", "Id already used",
					fmt.Sprintf("message id %q was accepted before with a different body", c.msg.ID))
				c.prob.ID = c.msg.ID
			} else {
				c.dup = true
			}
			continue
		}
		inCall[c.msg.ID] = c
		msgs = append(msgs, buffer.Message{Key: []byte(c.msg.Key), Value: c.msg.Encode()})
		accepts = append(accepts, state.Accept{Client: c.msg.Client, Type: c.msg.Type, ID: c.msg.ID,
			Receipt: state.Receipt{BodyHash: c.hash, AcceptedAt: c.msg.ReceivedAt}})
	}
	if len(msgs) == 0 {
		return nil
	}
	// Not cancelled with the request: the stripe locks must be held until the append's outcome
	// is known, even when the client hangs up during the fsync.
	topic := g.cfg.Topic
	if t := g.types[cands[0].msg.Type]; t != nil && t.Topic != "" {
		topic = t.Topic // every candidate of a call has the type of its path
	}
	if err := g.store.Append(context.WithoutCancel(ctx), topic, msgs, accepts); err != nil {
		g.cfg.Logger.Error("append to log failed", "err", err)
		return unavailable("the log cannot accept messages now")
	}
	g.accepted.Add(int64(len(msgs)))
	if g.cfg.OnAccepted != nil {
		g.cfg.OnAccepted(cands[0].msg.Type, len(msgs))
	}
	return nil
}

// Receipt is the answer for an accepted message.
type Receipt struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

func (g *Gateway) handleOne(w http.ResponseWriter, r *http.Request) {
	c, t, release, p := g.admit(r, 1)
	if p != nil {
		writeProblem(w, p)
		return
	}
	defer release()
	x := t.dialect(c)
	accept := []string{"application/json"}
	if x != nil {
		accept = append(accept, xmlTypes...)
	}
	body, ct, p := g.readBody(w, r, accept...)
	if p != nil {
		if x == nil && isXML(r.Header.Get("Content-Type")) {
			p.Detail = fmt.Sprintf("client %q sends message type %q as JSON: no XML dialect of the type is configured for it", c.ID, t.Name)
		}
		writeProblem(w, p)
		return
	}
	id := r.PathValue("id")
	if id == "" {
		id = r.Header.Get("Idempotency-Key")
	}
	var cand candidate
	if ct == "application/json" {
		cand = g.prepare(c, t, body, id, g.stamp())
	} else {
		cand = g.prepareXML(c, t, x, body, id, g.stamp())
	}
	if cand.prob != nil {
		writeProblem(w, cand.prob)
		return
	}
	if p := g.commit(r.Context(), []*candidate{&cand}); p != nil {
		writeProblem(w, p)
		return
	}
	switch {
	case cand.prob != nil:
		writeProblem(w, cand.prob)
	case cand.dup:
		writeJSON(w, http.StatusOK, Receipt{ID: cand.msg.ID, Status: state.StatusAccepted, Duplicate: true})
	default:
		writeJSON(w, http.StatusAccepted, Receipt{ID: cand.msg.ID, Status: state.StatusAccepted})
	}
}

// Outcome is one message's result in an answer about several (NDJSON lines, uploaded files).
type Outcome struct {
	ID        string             `json:"id,omitempty"`
	Status    string             `json:"status"` // accepted | rejected
	Code      int                `json:"code"`
	Error     string             `json:"error,omitempty"`
	Errors    []format.Violation `json:"errors,omitempty"`
	Duplicate bool               `json:"duplicate,omitempty"`
}

// outcomes sums up candidates after their commit: each one's result, the counts, and the
// answer's status (202 all accepted, 207 some, 400 none).
func outcomes(cands []candidate) (out []Outcome, accepted, rejected, status int) {
	out = make([]Outcome, len(cands))
	for i := range cands {
		cd := &cands[i]
		o := Outcome{ID: cd.msg.ID}
		switch {
		case cd.prob != nil:
			o.Status, o.Code, o.Error, o.Errors = "rejected", cd.prob.Status, cd.prob.Detail, cd.prob.Errors
			if o.ID == "" {
				o.ID = cd.prob.ID
			}
			rejected++
		case cd.dup:
			o.Status, o.Code, o.Duplicate = state.StatusAccepted, http.StatusOK, true
			accepted++
		default:
			o.Status, o.Code = state.StatusAccepted, http.StatusAccepted
			accepted++
		}
		out[i] = o
	}
	status = http.StatusAccepted
	switch {
	case accepted == 0:
		status = http.StatusBadRequest
	case rejected > 0:
		status = http.StatusMultiStatus
	}
	return out, accepted, rejected, status
}

// LineResult is the outcome of one NDJSON line.
type LineResult struct {
	Line int `json:"line"`
	Outcome
}

// BatchResult answers an NDJSON batch.
type BatchResult struct {
	Accepted int          `json:"accepted"`
	Rejected int          `json:"rejected"`
	Results  []LineResult `json:"results"`
}

func (g *Gateway) handleBatch(w http.ResponseWriter, r *http.Request) {
	c, t, release, p := g.admit(r, 0)
	if p != nil {
		writeProblem(w, p)
		return
	}
	defer release()
	body, _, p := g.readBody(w, r, "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")
	if p != nil {
		writeProblem(w, p)
		return
	}
	var lines [][]byte
	var lineNo []int
	n := 0
	for len(body) > 0 {
		var line []byte
		line, body, _ = bytes.Cut(body, []byte{'\n'})
		n++
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		lines = append(lines, line)
		lineNo = append(lineNo, n)
	}
	if len(lines) == 0 {
		writeProblem(w, problem(http.StatusBadRequest, "empty-batch", "Empty batch", "the body holds no NDJSON line"))
		return
	}
	if len(lines) > g.cfg.MaxBatchLines {
		writeProblem(w, problem(http.StatusRequestEntityTooLarge, "too-many-lines", "Batch too large",
			fmt.Sprintf("at most %d lines per batch", g.cfg.MaxBatchLines)))
		return
	}
	if p := limit(c, len(lines)); p != nil {
		writeProblem(w, p)
		return
	}
	cands := make([]candidate, len(lines))
	valid := make([]*candidate, 0, len(lines))
	for i, line := range lines {
		cands[i] = g.prepare(c, t, line, "", g.stamp())
		if cands[i].prob == nil {
			valid = append(valid, &cands[i])
		}
	}
	if len(valid) > 0 {
		if p := g.commit(r.Context(), valid); p != nil {
			writeProblem(w, p)
			return
		}
	}
	outs, accepted, rejected, status := outcomes(cands)
	res := BatchResult{Accepted: accepted, Rejected: rejected, Results: make([]LineResult, len(lines))}
	for i, o := range outs {
		res.Results[i] = LineResult{Line: lineNo[i], Outcome: o}
	}
	writeJSON(w, status, res)
}

// Status is the answer of GET /v1/messages/{id}.
type Status struct {
	ID     string `json:"id"`
	Type   string `json:"type,omitempty"`
	Status string `json:"status"`
	// NextAttemptAt is the earliest scheduled retry of a stage that is retrying.
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	// Reason says why a stage dead-lettered the message.
	Reason string        `json:"dead_letter_reason,omitempty"`
	Trail  []state.Event `json:"trail"`
}

func (g *Gateway) handleStatus(w http.ResponseWriter, r *http.Request) {
	c, p := g.authenticate(r)
	if p != nil {
		writeProblem(w, p)
		return
	}
	id := r.PathValue("id")
	trail, err := g.store.Trail(c.ID, id, slices.Sorted(maps.Keys(c.Types))...)
	if err != nil {
		writeProblem(w, unavailable("the state store cannot be read"))
		return
	}
	if len(trail) == 0 {
		writeProblem(w, errNotFound)
		return
	}
	st := Status{ID: id, Trail: trail}
	for _, e := range trail {
		if e.Type != "" {
			st.Type = e.Type
		}
	}
	st.Status = g.overall(st.Type, trail)
	for _, e := range latest(trail) {
		switch e.Status {
		case state.StatusRetrying:
			if st.NextAttemptAt.IsZero() || e.NextAt.Before(st.NextAttemptAt) {
				st.NextAttemptAt = e.NextAt
			}
		case state.StatusDead:
			st.Reason = e.Reason
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// latest returns the latest event of each stage and endpoint (trail is oldest first).
func latest(trail []state.Event) map[string]state.Event {
	out := map[string]state.Event{}
	for _, e := range trail {
		out[e.Stage+"\x00"+e.Endpoint] = e
	}
	return out
}

// overall sums a trail up from the latest event of each stage and endpoint: dead-lettered,
// failed or retrying when any is; delivered (or persisted) once every expected effect happened;
// otherwise the latest status.
func (g *Gateway) overall(typ string, trail []state.Event) string {
	done := map[string]bool{}
	worst := ""
	for _, e := range latest(trail) {
		switch e.Status {
		case state.StatusDead:
			worst = e.Status
		case state.StatusFailed, state.StatusRetrying:
			if worst != state.StatusDead {
				worst = e.Status
			}
		case state.StatusPersisted:
			done["persist"] = true
		case state.StatusDelivered:
			done["deliver:"+e.Endpoint] = true
		case state.StatusWorkflowCompleted:
			done["workflow"] = true
		case state.StatusWorkflowFailed:
			if worst == "" {
				worst = state.StatusFailed
			}
		}
	}
	if worst != "" {
		return worst
	}
	if t := g.types[typ]; t != nil && len(t.Expect) > 0 {
		all := true
		delivers := false
		for _, want := range t.Expect {
			all = all && done[want]
			delivers = delivers || strings.HasPrefix(want, "deliver:")
		}
		switch {
		case all && delivers:
			return state.StatusDelivered
		case all && t.Workflow:
			return state.StatusCompleted
		case all:
			return state.StatusPersisted
		}
	}
	return trail[len(trail)-1].Status
}

// handleWorkflow answers GET /v1/workflows/{id}: the run of the sender's message id (or run
// id) with each step's status, attempts, timings and last error. Another client's run is a 404,
// the same as an unknown one.
func (g *Gateway) handleWorkflow(w http.ResponseWriter, r *http.Request) {
	c, p := g.authenticate(r)
	if p != nil {
		writeProblem(w, p)
		return
	}
	id := r.PathValue("id")
	var ids []string
	if strings.HasPrefix(id, "wf_") {
		ids = append(ids, id)
	}
	for typ := range c.Types {
		if t := g.types[typ]; t != nil && t.Workflow {
			ids = append(ids, state.RunID(c.ID, typ, id))
		}
	}
	for _, rid := range ids {
		run, err := g.store.WorkflowRun(rid)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			writeProblem(w, unavailable("the state store cannot be read"))
			return
		}
		if run.Client != c.ID {
			continue
		}
		writeJSON(w, http.StatusOK, run)
		return
	}
	writeProblem(w, errNotFound)
}
