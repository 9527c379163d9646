// Package bench is Weir's load generator, behind `weir bench`: it posts the reference order (or
// any JSON template) to the ingestion API (DESIGN.md §3) as single messages or NDJSON batches,
// closed loop as fast as the server answers or open loop along a rate Schedule (a fixed rate, or
// phases such as a spike), and reports throughput, latency quantiles, errors by cause and a
// per-second series, which WriteSVG draws as a chart.
//
// Figures only mean something next to a ceiling measured on the same machine in the same run,
// so the package also provides that ceiling: a bare net/http server (Ceiling) that Run can be
// pointed at, and Compare to put the two side by side.
//
// Each message gets a unique id "b-<seed>-<n>" and a key (customer.id) drawn from Config.Keys
// customers, spliced into the template bytes: generating a message costs an append, not a JSON
// encode.
package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weirhq/weir/internal/fault"
)

// Modes of Config.Mode.
const (
	// ModeSingle posts one JSON message per request to /v1/messages/{type}.
	ModeSingle = "single"
	// ModeBatch posts Config.BatchSize NDJSON lines per request to /v1/messages/{type}/batch.
	ModeBatch = "batch"
)

// Defaults applied by Run to zero Config fields.
const (
	DefaultBatchSize   = 100
	DefaultConnections = 64
	DefaultDuration    = 10 * time.Second
	DefaultKeys        = 1000
	DefaultTimeout     = 10 * time.Second
)

// Bounds on Config, so a typo cannot ask for a million goroutines or a gigabyte request.
const (
	maxConnections = 10_000
	maxBatchSize   = 100_000
	maxResponse    = 16 << 20 // response bytes read; the rest is discarded
)

// Config describes one load run. URL and Type are required; other fields left zero take their
// defaults.
type Config struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:8080; the ingestion paths are added.
	URL string
	// Type is the message type posted to.
	Type string
	// Client and Token authenticate with HTTP Basic. With only Token set, it is sent as a
	// Bearer token; with neither, requests carry no credentials.
	Client, Token string
	// Mode is ModeSingle (default) or ModeBatch.
	Mode string
	// BatchSize is the number of messages per batch request (default 100).
	BatchSize int
	// Connections is the number of connections, each with one request in flight (default 64).
	Connections int
	// Duration is how long requests are sent (default 10s, or the Schedule's). Requests in
	// flight at the end are waited for and counted.
	Duration time.Duration
	// Rate, when > 0, sends that many requests per second (open loop) whatever the server's
	// answers, and measures latency from the time each request was due: the schedule of one
	// phase of Duration. 0 (and no Schedule) sends as fast as the connections get answers
	// (closed loop).
	Rate float64
	// Schedule, instead of Rate, sends open loop along its phases (see Schedule); the run lasts
	// their sum, and Duration must be left zero or equal to it.
	Schedule Schedule
	// Seed goes into every message id ("b-<seed>-<n>") and picks the keys; 0 means one from the
	// clock, so that reruns against the same server are not duplicates. The report says which.
	Seed int64
	// Keys is the number of distinct customer.id values drawn from (default 1000).
	Keys int
	// Payload is the JSON object template; default the 512-byte reference order (DefaultPayload).
	// Its top-level "id" and "customer.id" are replaced per message; an id is added if missing.
	Payload []byte
	// Timeout bounds each request (default 10s); a request that takes longer counts as
	// "timeout". In open loop, a request still waiting for a free connection Timeout after it
	// was due is not sent and counts as "expired": its client would have given up by then, and
	// the generator does not pile up a debt of stale requests that would hide a recovery.
	Timeout time.Duration
	// HonorRetryAfter makes a connection answered 429 or 503 with Retry-After wait that long
	// before its next request (never past the end of the run), as a polite partner would. By
	// default the generator keeps pushing, which measures how cheaply the server refuses load.
	HonorRetryAfter bool
	// Poison is the fraction (0..1) of messages marked as poison: PoisonMember is added to them,
	// chosen from the seed (reproducible), for a receiver that refuses them (see IsPoison).
	Poison float64
	// Messages, when > 0, stops the run once that many messages were sent (the last batch is
	// cut short to fit); Duration still bounds it. 0: no limit.
	Messages int64
	// Progress, if set, receives one line per second with the elapsed time, the last second's
	// target and sent rate (open loop), req/s and msg/s answered, p50 and p99, answers by
	// status class and the gauges below. It is written from one goroutine.
	Progress io.Writer
	// Backlog and Resident, if set, are read once per second (from the monitor goroutine) and
	// recorded in each Sample: the server's backlog (messages accepted but not yet through its
	// last stage) and its resident memory in bytes. Only a server in the same process can
	// tell; either may be nil.
	Backlog, Resident func() int64

	// interval is the progress and series interval; tests shorten it. Zero means one second.
	interval time.Duration
}

// withDefaults returns a copy of cfg with defaults applied, or an error naming every invalid
// field.
func (cfg Config) withDefaults() (Config, error) {
	c := cfg
	if c.Mode == "" {
		c.Mode = ModeSingle
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Connections == 0 {
		c.Connections = DefaultConnections
	}
	var errs []error
	if len(c.Schedule) > 0 {
		c.Schedule = slices.Clone(c.Schedule)
		if err := c.Schedule.validate(); err != nil {
			errs = append(errs, err)
		}
		if c.Rate != 0 {
			errs = append(errs, errors.New("rate and schedule: set one of them"))
		}
		if sum := c.Schedule.Duration(); c.Duration != 0 && c.Duration != sum {
			errs = append(errs, fmt.Errorf("duration %s: the schedule lasts %s", c.Duration, sum))
		}
		c.Duration = c.Schedule.Duration()
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Keys == 0 {
		c.Keys = DefaultKeys
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if len(c.Payload) == 0 {
		c.Payload = referenceOrder
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixMilli()
	}
	if c.interval == 0 {
		c.interval = time.Second
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url %q: want http(s)://host[:port]", c.URL))
	}
	if c.Type == "" {
		errs = append(errs, errors.New("type: required"))
	}
	if c.Mode != ModeSingle && c.Mode != ModeBatch {
		errs = append(errs, fmt.Errorf("mode %q: want %q or %q", c.Mode, ModeSingle, ModeBatch))
	}
	if c.BatchSize < 1 || c.BatchSize > maxBatchSize {
		errs = append(errs, fmt.Errorf("batch size %d: want 1..%d", c.BatchSize, maxBatchSize))
	}
	if c.Connections < 1 || c.Connections > maxConnections {
		errs = append(errs, fmt.Errorf("connections %d: want 1..%d", c.Connections, maxConnections))
	}
	if c.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration %s: want > 0", c.Duration))
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate %v: want >= 0", c.Rate))
	}
	if c.Poison < 0 || c.Poison > 1 || math.IsNaN(c.Poison) {
		errs = append(errs, fmt.Errorf("poison %v: want a fraction in 0..1", c.Poison))
	}
	if c.Messages < 0 {
		errs = append(errs, fmt.Errorf("messages %d: want >= 0", c.Messages))
	}
	if c.Keys < 1 {
		errs = append(errs, fmt.Errorf("keys %d: want >= 1", c.Keys))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s: want > 0", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("bench: invalid config: %w", err)
	}
	if c.Rate > 0 {
		c.Schedule = Constant(c.Rate, c.Duration)
	}
	return c, nil
}

// Run sends load as cfg describes and reports what happened. It returns an error only for an
// invalid Config. If ctx ends early, Run stops at once (requests in flight are abandoned and not
// counted) and returns the report so far, marked Interrupted, together with ctx's error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	gen, err := newGenerator(c.Payload, c.Seed, c.Keys)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if gen.xml && (c.Mode == ModeBatch || c.Poison > 0) {
		return nil, errors.New("bench: an XML payload is sent one document per request, without poison")
	}
	gen.setPoison(c.Poison)
	r := newRunner(ctx, c, gen)
	defer r.transport.CloseIdleConnections()
	rep := r.run()
	if rep.Interrupted {
		return rep, ctx.Err()
	}
	return rep, nil
}

// runner is the state of one Run.
type runner struct {
	cfg       Config
	gen       *generator
	endpoint  string
	header    http.Header // template; each connection clones it
	transport *http.Transport
	client    *http.Client

	ctx         context.Context    // the caller's: abandons requests in flight
	issueCtx    context.Context    // ends at the end of Duration: no new requests after it
	stopIssuing context.CancelFunc // ends issueCtx early (Config.Messages reached)
	stopped     atomic.Bool        // issueCtx has ended; cheaper to poll than ctx.Err
	start       time.Time
	end         time.Time

	seq     atomic.Uint64  // message numbers handed out
	issued  atomic.Int64   // requests sent, including abandoned ones
	tickets chan time.Time // open loop: when each request is due
	conns   []*conn

	// Owned by the monitor goroutine, then by run after it returns.
	// The last sample ended at lastAt, with these totals and histograms; it began at prevAt
	// (kept in case the run's final stub is folded into it).
	series             []Sample
	lastAt, prevAt     time.Time
	lastSeen, prevSeen totals
	lastHist, prevHist *histSnapshot
}

// conn is one connection's goroutine state. The counters are atomics because the monitor reads
// them while the connection runs; failures is read only after the connection has finished.
type conn struct {
	hist                         histogram
	requests, ok, messages, errs atomic.Int64
	rejected, duplicates, bytes  atomic.Int64
	poisoned                     atomic.Int64
	classes                      [numClasses]atomic.Int64 // failed requests by class
	failures                     map[string]int64         // by kind, as in Report.Errors
}

// Classes of failed requests, as the per-second samples count them.
const (
	class429    = iota // 429 Too Many Requests
	class503           // 503 Service Unavailable
	class5xx           // any other 5xx
	classOther         // any other status that is not 2xx
	classFailed        // no usable answer: timeout, expired, conn, bad_response
	numClasses
)

// classOf returns the class of a failure kind of Report.Errors.
func classOf(kind string) int {
	switch {
	case kind == "429":
		return class429
	case kind == "503":
		return class503
	case len(kind) == 3 && kind[0] == '5':
		return class5xx
	case len(kind) == 3 && kind[0] >= '1' && kind[0] <= '9':
		return classOther
	default:
		return classFailed
	}
}

// totals is a sum of the connections' counters at one moment.
type totals struct {
	sent, requests, messages, ok, errs int64
	classes                            [numClasses]int64
}

func newRunner(ctx context.Context, c Config, gen *generator) *runner {
	r := &runner{cfg: c, gen: gen, ctx: ctx}
	r.endpoint = strings.TrimRight(c.URL, "/") + "/v1/messages/" + url.PathEscape(c.Type)
	ct := "application/json"
	if gen.xml {
		ct = "application/xml"
	}
	if c.Mode == ModeBatch {
		r.endpoint += "/batch"
		ct = "application/x-ndjson"
	}
	r.header = http.Header{
		"Content-Type": {ct},
		"Accept":       {"application/json"},
		"User-Agent":   {"weir-bench"},
	}
	switch {
	case c.Client != "":
		r.header["Authorization"] = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(c.Client+":"+c.Token))}
	case c.Token != "":
		r.header["Authorization"] = []string{"Bearer " + c.Token}
	}
	bodySize := gen.size + 32
	if c.Mode == ModeBatch {
		bodySize = (gen.size + 32) * c.BatchSize
	}
	r.transport = &http.Transport{
		Proxy:               nil, // a benchmark measures the server, not a proxy from the environment
		DialContext:         (&net.Dialer{Timeout: c.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        c.Connections,
		MaxIdleConnsPerHost: c.Connections,
		MaxConnsPerHost:     c.Connections,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     min(max(bodySize, 4<<10), 64<<10),
		ReadBufferSize:      16 << 10,
		TLSHandshakeTimeout: c.Timeout,
	}
	r.client = &http.Client{Transport: r.transport, Timeout: c.Timeout}
	return r
}

// run drives the connections until the end of Duration (or ctx), then builds the report.
func (r *runner) run() *Report {
	c := r.cfg
	r.start = time.Now()
	r.end = r.start.Add(c.Duration)
	issueCtx, cancel := context.WithDeadline(r.ctx, r.end)
	defer cancel()
	r.issueCtx, r.stopIssuing = issueCtx, cancel
	context.AfterFunc(issueCtx, func() { r.stopped.Store(true) })

	var due int64 // open loop: requests scheduled within Duration
	var workers sync.WaitGroup
	if len(c.Schedule) > 0 {
		due = c.Schedule.Due()
		r.tickets = make(chan time.Time, c.Connections)
		workers.Go(r.dispatch)
	}
	r.conns = make([]*conn, c.Connections)
	for i := range r.conns {
		cn := &conn{failures: map[string]int64{}}
		r.conns[i] = cn
		workers.Go(func() { r.work(cn) })
	}
	r.lastAt, r.prevAt = r.start, r.start
	r.lastHist, r.prevHist = new(histSnapshot), new(histSnapshot)
	done := make(chan struct{})
	var monitor sync.WaitGroup
	monitor.Go(func() { r.monitor(done) })
	workers.Wait()
	finished := time.Now()
	close(done)
	monitor.Wait()
	r.sample(finished, true)

	rep := &Report{
		URL:         r.endpoint,
		Type:        c.Type,
		Mode:        c.Mode,
		Connections: c.Connections,
		Seed:        c.Seed,
		Started:     r.start,
		Duration:    finished.Sub(r.start),
		Interrupted: r.ctx.Err() != nil,
		Errors:      map[string]int64{},
		Series:      r.series,
	}
	if c.Mode == ModeBatch {
		rep.BatchSize = c.BatchSize
	}
	if len(c.Schedule) > 0 {
		rep.Schedule = c.Schedule
		rep.Rate, _ = c.Schedule.constant()
	}
	var hs histSnapshot
	for _, cn := range r.conns {
		rep.Requests += cn.requests.Load()
		rep.OK += cn.ok.Load()
		rep.Messages += cn.messages.Load()
		rep.Rejected += cn.rejected.Load()
		rep.Duplicates += cn.duplicates.Load()
		rep.Poisoned += cn.poisoned.Load()
		rep.Bytes += cn.bytes.Load()
		rep.ErrorCount += cn.errs.Load()
		for k, v := range cn.failures {
			rep.Errors[k] += v
		}
		cn.hist.addTo(&hs)
	}
	if len(c.Schedule) > 0 {
		if rep.Interrupted {
			// Only what was due before the interruption could have been sent.
			due = min(due, c.Schedule.DueBefore(finished.Sub(r.start)))
		}
		if c.Messages > 0 {
			// Nothing is due after the request that carries the last message.
			per := int64(r.perRequest())
			due = min(due, (c.Messages+per-1)/per)
		}
		rep.Missed = max(0, due-r.issued.Load()-rep.Errors["expired"])
	}
	if secs := rep.Duration.Seconds(); secs > 0 {
		rep.ReqPerSec = float64(rep.Requests) / secs
		rep.MsgPerSec = float64(rep.Messages) / secs
	}
	rep.Latency = hs.latency()
	return rep
}

// dispatch hands out the open loop's due times, on schedule. When every connection is busy it
// blocks, then hands out the overdue times at once: each carries the time it was due, so the
// latency the connections measure includes the wait.
func (r *runner) dispatch() {
	defer close(r.tickets)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for off := range r.cfg.Schedule.Times() {
		at := r.start.Add(off)
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-r.issueCtx.Done():
				return
			}
		}
		select {
		case r.tickets <- at:
		case <-r.issueCtx.Done():
			return
		}
	}
}

// work is one connection's loop: build a body, post it, account for the answer.
func (r *runner) work(cn *conn) {
	header := r.header.Clone()
	var (
		buf  []byte
		prev *reqBody
		resp bytes.Buffer
	)
	for !r.stopped.Load() {
		var due time.Time
		if r.tickets != nil {
			var ok bool
			select {
			case due, ok = <-r.tickets:
				if !ok {
					return
				}
			case <-r.issueCtx.Done():
				return
			}
			if r.stopped.Load() {
				return // due at the very end: too late to count
			}
			if time.Since(due) > r.cfg.Timeout {
				cn.fail("expired") // its client would have given up waiting for a connection
				continue
			}
		}
		// The transport may still be reading the previous body after Do returns (a server can
		// answer before reading it all); it closes the body when done, and only then may the
		// buffer be reused.
		if prev != nil {
			select {
			case <-prev.closed:
			case <-r.ctx.Done():
				return
			}
		}
		var poisoned int64
		var more bool
		if buf, poisoned, more = r.appendBody(buf[:0]); !more {
			r.stopIssuing()
			return
		}
		prev = newReqBody(buf)
		if wait := r.post(cn, header, prev, due, poisoned, &resp); wait > 0 && !r.pause(wait) {
			return
		}
	}
}

// appendBody appends one request's body: a message, or BatchSize NDJSON lines. It returns how
// many of them are poison, and false when Config.Messages were all sent already.
func (r *runner) appendBody(dst []byte) ([]byte, int64, bool) {
	n := uint64(1)
	if r.cfg.Mode == ModeBatch {
		n = uint64(r.cfg.BatchSize)
	}
	first := r.seq.Add(n) - n + 1
	if limit := uint64(r.cfg.Messages); limit > 0 {
		if first > limit {
			return dst, 0, false
		}
		n = min(n, limit-first+1)
	}
	var poisoned int64
	for i := range n {
		if r.gen.isPoison(first + i) {
			poisoned++
		}
		dst = r.gen.appendMessage(dst, first+i)
		if r.cfg.Mode == ModeBatch {
			dst = append(dst, '\n')
		}
	}
	return dst, poisoned, true
}

// post sends one request and accounts for its answer. due is when it should have gone out (open
// loop) or zero (closed loop: now); poisoned is how many of its messages are poison. It returns how long the server asked to be left alone, if
// it did and the config says to listen.
func (r *runner) post(cn *conn, header http.Header, body *reqBody, due time.Time, poisoned int64, resp *bytes.Buffer) time.Duration {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodPost, r.endpoint, body)
	if err != nil {
		// The endpoint was validated; this cannot fail for one request and not the others.
		body.Close()
		cn.fail("conn")
		return 0
	}
	req.ContentLength = int64(body.r.Len())
	req.Header = header
	sent := time.Now()
	if due.IsZero() {
		due = sent
	}
	r.issued.Add(1)
	cn.bytes.Add(req.ContentLength)
	res, err := r.client.Do(req)
	if err == nil {
		resp.Reset()
		_, err = resp.ReadFrom(io.LimitReader(res.Body, maxResponse))
		io.Copy(io.Discard, res.Body) // so the connection can be reused
		res.Body.Close()
	}
	done := time.Now()
	if err != nil {
		if r.ctx.Err() != nil {
			return 0 // the caller ended the run: neither OK nor the server's failure
		}
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			cn.fail("timeout")
		} else {
			cn.fail("conn")
		}
		return 0
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		cn.fail(strconv.Itoa(res.StatusCode))
		if r.cfg.HonorRetryAfter && (res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable) {
			if d, ok := fault.ParseRetryAfter(res.Header.Get("Retry-After"), done); ok {
				return d
			}
		}
		return 0
	}
	accepted := int64(1)
	if r.cfg.Mode == ModeBatch {
		var out struct {
			Accepted *int64 `json:"accepted"`
			Rejected int64  `json:"rejected"`
		}
		if json.Unmarshal(resp.Bytes(), &out) != nil || out.Accepted == nil {
			cn.fail("bad_response")
			return 0
		}
		accepted = *out.Accepted
		cn.rejected.Add(out.Rejected)
	}
	if d := bytes.Count(resp.Bytes(), []byte(`"duplicate":true`)); d > 0 {
		cn.duplicates.Add(int64(d))
	}
	cn.hist.record(done.Sub(due))
	cn.messages.Add(accepted)
	cn.poisoned.Add(poisoned)
	cn.ok.Add(1)
	cn.requests.Add(1)
	return 0
}

// pause waits d, but never past the end of the run; it reports whether the run goes on.
func (r *runner) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.issueCtx.Done():
		return false
	}
}

// fail counts a failed request under kind. Only the connection's goroutine calls it.
func (cn *conn) fail(kind string) {
	cn.failures[kind]++
	cn.classes[classOf(kind)].Add(1)
	cn.errs.Add(1)
	cn.requests.Add(1)
}

// monitor samples every interval and writes the progress line, until done closes.
func (r *runner) monitor(done <-chan struct{}) {
	t := time.NewTicker(r.cfg.interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			s := r.sample(now, false)
			if r.cfg.Progress != nil {
				io.WriteString(r.cfg.Progress, s.progress(len(r.cfg.Schedule) > 0))
			}
		}
	}
}

// totals sums the connections' counters.
func (r *runner) totals() totals {
	t := totals{sent: r.issued.Load()}
	for _, cn := range r.conns {
		t.requests += cn.requests.Load()
		t.messages += cn.messages.Load()
		t.ok += cn.ok.Load()
		t.errs += cn.errs.Load()
		for i := range t.classes {
			t.classes[i] += cn.classes[i].Load()
		}
	}
	return t
}

// sample appends the interval since the previous sample to the series and returns it. The last
// sample of a run is folded into the one before when it is under half an interval, so that a
// stub of a few milliseconds does not show as a dip or a spike.
func (r *runner) sample(now time.Time, last bool) Sample {
	cur := r.totals()
	hist := new(histSnapshot)
	for _, cn := range r.conns {
		cn.hist.addTo(hist)
	}
	from, since, histFrom := r.lastAt, r.lastSeen, r.lastHist
	if last {
		if !now.After(r.lastAt) {
			return Sample{Elapsed: now.Sub(r.start)}
		}
		if n := len(r.series); n > 0 && now.Sub(r.lastAt) < r.cfg.interval/2 {
			from, since, histFrom = r.prevAt, r.prevSeen, r.prevHist
			r.series = r.series[:n-1]
		}
	}
	s := Sample{
		Elapsed:     now.Sub(r.start),
		Sent:        cur.sent - since.sent,
		Requests:    cur.requests - since.requests,
		Messages:    cur.messages - since.messages,
		Errors:      cur.errs - since.errs,
		OK:          cur.ok - since.ok,
		TooMany:     cur.classes[class429] - since.classes[class429],
		Unavailable: cur.classes[class503] - since.classes[class503],
		ServerError: cur.classes[class5xx] - since.classes[class5xx],
		OtherStatus: cur.classes[classOther] - since.classes[classOther],
		Failed:      cur.classes[classFailed] - since.classes[classFailed],
	}
	lat := hist.minus(histFrom)
	s.P50, s.P99 = lat.quantile(0.50), lat.quantile(0.99)
	if secs := now.Sub(from).Seconds(); secs > 0 {
		s.SentPerSec = float64(s.Sent) / secs
		s.ReqPerSec = float64(s.Requests) / secs
		s.MsgPerSec = float64(s.Messages) / secs
		if sched := r.cfg.Schedule; len(sched) > 0 {
			due := sched.DueBefore(now.Sub(r.start)) - sched.DueBefore(from.Sub(r.start))
			s.TargetReqPerSec = float64(due) / secs
			s.TargetMsgPerSec = s.TargetReqPerSec * float64(r.perRequest())
		}
	}
	if f := r.cfg.Backlog; f != nil {
		v := f()
		s.Backlog = &v
	}
	if f := r.cfg.Resident; f != nil {
		v := f()
		s.Resident = &v
	}
	r.series = append(r.series, s)
	r.prevAt, r.prevSeen, r.prevHist = from, since, histFrom
	r.lastAt, r.lastSeen, r.lastHist = now, cur, hist
	return s
}

// perRequest is the number of messages in a full request.
func (r *runner) perRequest() int {
	if r.cfg.Mode == ModeBatch {
		return r.cfg.BatchSize
	}
	return 1
}

// reqBody is a request body that tells when the transport is done with it (Close), so that its
// buffer can be reused.
type reqBody struct {
	r      bytes.Reader
	closed chan struct{}
	once   sync.Once
}

func newReqBody(b []byte) *reqBody {
	rb := &reqBody{closed: make(chan struct{})}
	rb.r.Reset(b)
	return rb
}

func (b *reqBody) Read(p []byte) (int, error) { return b.r.Read(p) }

// Close marks the body done; the transport calls it once it no longer reads the body.
func (b *reqBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}
