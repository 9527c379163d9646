package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/retry"
	"github.com/weirhq/weir/internal/state"
)

const (
	topic    = "deliver.acme" // the stage under test
	oldTopic = "deliver.old"  // a second stage, which tests may remove from the config
	opsTopic = "ops"          // where notifications go (not a stage)
	endpoint = "acme-ep"
)

// t0 is when the fake clock starts: the first failure of every test.
var t0 = time.Date(2030, 3, 4, 5, 6, 7, 0, time.UTC)

// fakeClock is a retry.Clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// harness is a state store on an embedded log with the retry machinery over it, driven by a
// fake clock and a jitter source that returns 0.5 (no jitter) unless a test configures another.
type harness struct {
	t       *testing.T
	log     *embedded.Log
	store   *state.Store
	clock   *fakeClock
	retries *retry.Retries

	mu        sync.Mutex
	known     map[string]bool
	consumers map[string]buffer.Consumer
}

func newHarness(t *testing.T, configure ...func(*retry.Config)) *harness {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := embedded.Open(embedded.Config{Dir: t.TempDir(), Logger: quiet, CleanupInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for _, name := range []string{topic, oldTopic, opsTopic} {
		if err := l.EnsureTopic(context.Background(), buffer.TopicConfig{Name: name, Partitions: 2, Groups: []string{"test"}}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := state.New(l)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, log: l, store: s, clock: &fakeClock{now: t0},
		known: map[string]bool{topic: true, oldTopic: true}, consumers: map[string]buffer.Consumer{}}
	cfg := retry.Config{Store: s, Clock: h.clock, Rand: constRand(0.5), Logger: quiet}
	for _, c := range configure {
		c(&cfg)
	}
	h.retries = retry.New(cfg, h.isKnown)
	return h
}

func (h *harness) isKnown(topic string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.known[topic]
}

func (h *harness) setKnown(topic string, known bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.known[topic] = known
}

// stage is a deliver stage on topic with the default deliver policy.
func (h *harness) stage(topic string, onGone func()) retry.Stage {
	return retry.Stage{Topic: topic, Name: "deliver", Endpoint: endpoint,
		Policy: func(string) retry.Policy { return retry.DeliverPolicy() }, OnGone: onGone}
}

// consumer returns the test group's consumer of topic (one per topic and harness).
func (h *harness) consumer(topic string) buffer.Consumer {
	h.t.Helper()
	if c, ok := h.consumers[topic]; ok {
		return c
	}
	c, err := h.log.Consume(context.Background(), topic, "test")
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	h.consumers[topic] = c
	return c
}

// ingest appends m to topic and returns it as the stage reads it.
func (h *harness) ingest(topic string, m message.Message) buffer.Record {
	h.t.Helper()
	if err := h.log.Append(context.Background(), topic, []buffer.Message{{Key: []byte(m.Key), Value: m.Encode()}}); err != nil {
		h.t.Fatal(err)
	}
	return h.fetchOne(topic)
}

// fetchOne reads the one record that must be waiting in topic.
func (h *harness) fetchOne(topic string) buffer.Record {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	recs, err := h.consumer(topic).Fetch(ctx, 10)
	if err != nil {
		h.t.Fatalf("fetch from %s: %v", topic, err)
	}
	if len(recs) != 1 {
		h.t.Fatalf("fetched %d records from %s, want 1", len(recs), topic)
	}
	return recs[0]
}

// expectNone checks that nothing more was appended to topic.
func (h *harness) expectNone(topic string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	recs, err := h.consumer(topic).Fetch(ctx, 10)
	if len(recs) > 0 {
		h.t.Fatalf("%d unexpected records in %s, the first: %q", len(recs), topic, recs[0].Value)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		h.t.Fatalf("fetch from %s: %v", topic, err)
	}
}

// fail hands failed records to st's handler, which must accept them.
func (h *harness) fail(st retry.Stage, recs []buffer.Record, errs ...error) {
	h.t.Helper()
	if err := h.retries.Handler(st)(recs, errs); err != nil {
		h.t.Fatalf("handler: %v", err)
	}
}

// pending returns every retry in the store, earliest first.
func (h *harness) pending() []state.Retry {
	h.t.Helper()
	due, next, err := h.store.DueRetries(t0.Add(100*365*24*time.Hour), 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	if !next.IsZero() {
		h.t.Fatalf("retries due after a century: next at %s", next)
	}
	return due
}

func (h *harness) countRetries() int {
	h.t.Helper()
	n, err := h.store.CountRetries()
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) letters() []state.DeadLetter {
	h.t.Helper()
	ls, err := h.store.DeadLetters(state.LetterFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	return ls
}

// onlyLetter returns the one dead letter in the store.
func (h *harness) onlyLetter() state.DeadLetter {
	h.t.Helper()
	ls := h.letters()
	if len(ls) != 1 {
		h.t.Fatalf("%d dead letters, want 1: %+v", len(ls), ls)
	}
	return ls[0]
}

func (h *harness) runDue() time.Time {
	h.t.Helper()
	next, err := h.retries.RunDue(context.Background())
	if err != nil {
		h.t.Fatalf("RunDue: %v", err)
	}
	return next
}

func (h *harness) replay(ids ...string) []string {
	h.t.Helper()
	done, err := h.retries.Replay(context.Background(), ids)
	if err != nil {
		h.t.Fatalf("replay %v: %v", ids, err)
	}
	return done
}

func (h *harness) trail(id string) []state.Event {
	h.t.Helper()
	tr, err := h.store.Trail("acme", id)
	if err != nil {
		h.t.Fatal(err)
	}
	return tr
}

func newMessage(id string) message.Message {
	return message.Message{ID: id, Client: "acme", Type: "order", Key: "key-" + id, Endpoint: endpoint,
		ReceivedAt: t0.Add(-time.Minute), Payload: []byte(`{"order":"` + id + `"}`)}
}

func decode(t *testing.T, b []byte) message.Message {
	t.Helper()
	m, err := message.Decode(b)
	if err != nil {
		t.Fatalf("decode envelope: %v", err)
	}
	return m
}

// A message that fails every attempt runs on the deliver schedule, exactly, and is
// dead-lettered after its eighth failure.
func TestRetryScheduleUntilExhausted(t *testing.T) {
	h := newHarness(t)
	st := h.stage(topic, nil)
	m := newMessage("m1")
	rec := h.ingest(topic, m)

	// When each attempt runs, counted from the first: written out, not derived from the policy.
	want := []time.Duration{0, 5 * time.Second, 5*time.Minute + 5*time.Second, 35*time.Minute + 5*time.Second,
		2*time.Hour + 35*time.Minute + 5*time.Second, 7*time.Hour + 35*time.Minute + 5*time.Second,
		17*time.Hour + 35*time.Minute + 5*time.Second, 27*time.Hour + 35*time.Minute + 5*time.Second}
	var attempts []time.Time
	for i := range 8 {
		now := h.clock.Now()
		attempts = append(attempts, now)
		got := decode(t, rec.Value)
		if got.Attempt != uint32(i) {
			t.Fatalf("attempt %d: envelope says %d failed attempts", i+1, got.Attempt)
		}
		if i > 0 && !got.FailedAt.Equal(t0) {
			t.Fatalf("attempt %d: first failure %s, want %s", i+1, got.FailedAt, t0)
		}
		if got.ID != m.ID || string(got.Payload) != string(m.Payload) || string(rec.Key) != m.Key {
			t.Fatalf("attempt %d: message changed: %+v, key %q", i+1, got, rec.Key)
		}

		h.fail(st, []buffer.Record{rec}, errTransient)
		if i == 7 {
			break
		}

		p := h.pending()
		if len(p) != 1 {
			t.Fatalf("after failure %d: %d retries pending, want 1", i+1, len(p))
		}
		due := p[0].Due
		if !due.Equal(now.Add(deliverWaits[i])) {
			t.Fatalf("after failure %d at %s: due %s, want %s", i+1, now, due, now.Add(deliverWaits[i]))
		}
		if p[0].Topic != topic || string(p[0].Key) != m.Key {
			t.Fatalf("retry entry: topic %q key %q", p[0].Topic, p[0].Key)
		}
		if e := decode(t, p[0].Value); e.Attempt != uint32(i+1) || !e.FailedAt.Equal(t0) {
			t.Fatalf("retry entry envelope: attempt %d, first failure %s", e.Attempt, e.FailedAt)
		}

		// A nanosecond early nothing is re-injected, and RunDue says when to look again.
		h.clock.Set(due.Add(-time.Nanosecond))
		if next := h.runDue(); !next.Equal(due) {
			t.Fatalf("RunDue before the due time: next %s, want %s", next, due)
		}
		if n := h.countRetries(); n != 1 {
			t.Fatalf("RunDue before the due time took the retry: %d left", n)
		}

		h.clock.Set(due)
		if next := h.runDue(); !next.IsZero() {
			t.Fatalf("RunDue at the due time: next %s, want none", next)
		}
		if n := h.countRetries(); n != 0 {
			t.Fatalf("RunDue at the due time left %d retries", n)
		}
		rec = h.fetchOne(topic)
	}

	for i, at := range attempts {
		if !at.Equal(t0.Add(want[i])) {
			t.Errorf("attempt %d ran at t0+%s, want t0+%s", i+1, at.Sub(t0), want[i])
		}
	}
	if n := h.countRetries(); n != 0 {
		t.Fatalf("%d retries left after the schedule ran out", n)
	}
	d := h.onlyLetter()
	if d.Reason != state.ReasonExhausted || d.Attempts != 8 {
		t.Errorf("dead letter: reason %q attempts %d, want exhausted after 8", d.Reason, d.Attempts)
	}
	if !d.FirstAt.Equal(t0) || !d.LastAt.Equal(attempts[7]) {
		t.Errorf("dead letter: first %s last %s, want %s and %s", d.FirstAt, d.LastAt, t0, attempts[7])
	}
	if d.Topic != topic || d.Stage != "deliver" || d.Endpoint != endpoint || d.Client != m.Client ||
		d.Type != m.Type || d.MessageID != m.ID || string(d.Key) != m.Key || !strings.Contains(d.Error, errTransient.Error()) {
		t.Errorf("dead letter: %+v", d)
	}
	if e := decode(t, d.Message); e.Attempt != 7 || !e.FailedAt.Equal(t0) {
		t.Errorf("dead letter envelope: attempt %d, first failure %s; want it as it failed (7, %s)", e.Attempt, e.FailedAt, t0)
	}
	if next := h.runDue(); !next.IsZero() {
		t.Fatalf("RunDue after dead-lettering: next %s", next)
	}
	h.expectNone(topic)
}

// RunDue before any retry falls due appends nothing, however often it runs.
func TestRunDueBeforeDueReinjectsNothing(t *testing.T) {
	h := newHarness(t)
	rec := h.ingest(topic, newMessage("early"))
	if next := h.runDue(); !next.IsZero() {
		t.Fatalf("RunDue with no retries: next %s", next)
	}
	h.fail(h.stage(topic, nil), []buffer.Record{rec}, errTransient)
	due := t0.Add(5 * time.Second)
	for _, at := range []time.Time{t0, t0.Add(time.Second), due.Add(-time.Nanosecond)} {
		h.clock.Set(at)
		if next := h.runDue(); !next.Equal(due) {
			t.Fatalf("RunDue at %s: next %s, want %s", at, next, due)
		}
	}
	h.expectNone(topic)
	if n := h.countRetries(); n != 1 {
		t.Fatalf("%d retries pending, want 1", n)
	}
	h.clock.Set(due)
	h.runDue()
	if got := decode(t, h.fetchOne(topic).Value); got.ID != "early" || got.Attempt != 1 {
		t.Fatalf("re-injected %+v", got)
	}
}

// How the classifier's verdict turns into a retry or a dead letter.
func TestFailureClassification(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		noOnGone  bool          // the stage has no OnGone hook
		rand      float64       // jitter source (0.5: none)
		reason    string        // dead-letter reason, "" when retried
		wait      time.Duration // for retries
		code      int
		response  string
		goneCalls int
	}{
		{name: "permanent", err: fault.Permanent(errors.New("mapping failed")), rand: 0.5, reason: state.ReasonPermanent},
		{name: "wrapped permanent", err: fmt.Errorf("persist: %w", fault.Permanent(errors.New("bad row"))), rand: 0.5,
			reason: state.ReasonPermanent},
		{name: "410 with OnGone", err: fault.HTTP(410, "", "endpoint removed"), rand: 0.5, reason: state.ReasonGone,
			code: 410, response: "endpoint removed", goneCalls: 1},
		{name: "410 without OnGone", err: fault.HTTP(410, "", ""), noOnGone: true, rand: 0.5, reason: state.ReasonPermanent, code: 410},
		{name: "302 redirect", err: fault.HTTP(302, "", ""), rand: 0.5, reason: state.ReasonPermanent, code: 302},
		{name: "400", err: fault.HTTP(400, "", `{"error":"bad"}`), rand: 0.5, reason: state.ReasonPermanent, code: 400,
			response: `{"error":"bad"}`},
		{name: "503 Retry-After 7", err: fault.HTTP(503, "7", ""), rand: 0.5, wait: 7 * time.Second, code: 503},
		{name: "503 Retry-After 7, max jitter", err: fault.HTTP(503, "7", ""), rand: math.Nextafter(1, 0), wait: 7 * time.Second, code: 503},
		{name: "503", err: fault.HTTP(503, "", "busy"), rand: 0.5, wait: 5 * time.Second, code: 503, response: "busy"},
		{name: "429", err: fault.HTTP(429, "", ""), rand: 0.5, wait: 5 * time.Second, code: 429},
		{name: "408", err: fault.HTTP(408, "", ""), rand: 0.5, wait: 5 * time.Second, code: 408},
		{name: "429 jittered low", err: fault.HTTP(429, "", ""), rand: 0, wait: 4500 * time.Millisecond, code: 429},
		{name: "network error", err: errTransient, rand: 0.5, wait: 5 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(cfg *retry.Config) { cfg.Rand = constRand(c.rand) })
			gone := 0
			st := h.stage(topic, func() { gone++ })
			if c.noOnGone {
				st.OnGone = nil
			}
			m := newMessage("c1")
			h.fail(st, []buffer.Record{h.ingest(topic, m)}, c.err)
			if gone != c.goneCalls {
				t.Errorf("OnGone called %d times, want %d", gone, c.goneCalls)
			}

			if c.reason == "" {
				p := h.pending()
				if len(p) != 1 {
					t.Fatalf("%d retries, want 1", len(p))
				}
				if w := p[0].Due.Sub(t0); w != c.wait {
					t.Errorf("retry in %s, want %s", w, c.wait)
				}
				if ls := h.letters(); len(ls) != 0 {
					t.Errorf("a retried failure was also dead-lettered: %+v", ls)
				}
				return
			}
			if n := h.countRetries(); n != 0 {
				t.Errorf("%d retries for a dead-lettered failure", n)
			}
			d := h.onlyLetter()
			if d.Reason != c.reason || d.Code != c.code || d.Response != c.response {
				t.Errorf("dead letter: reason %q code %d response %q; want %q %d %q", d.Reason, d.Code, d.Response,
					c.reason, c.code, c.response)
			}
			if d.Attempts != 1 || !d.FirstAt.Equal(t0) || !d.LastAt.Equal(t0) {
				t.Errorf("dead letter: attempts %d first %s last %s; want 1 attempt at %s", d.Attempts, d.FirstAt, d.LastAt, t0)
			}
			if d.Error != c.err.Error() || d.MessageID != m.ID || d.Topic != topic {
				t.Errorf("dead letter: %+v", d)
			}
		})
	}
}

// A record whose envelope does not decode is kept as it is, as a permanent dead letter.
func TestUndecodableRecordIsDeadLettered(t *testing.T) {
	h := newHarness(t)
	rec := buffer.Record{Topic: topic, Partition: 1, Offset: 7, Key: []byte("k"), Value: []byte("not an envelope")}
	h.fail(h.stage(topic, nil), []buffer.Record{rec}, errTransient)
	d := h.onlyLetter()
	if d.Reason != state.ReasonPermanent || string(d.Message) != "not an envelope" || string(d.Key) != "k" ||
		d.Attempts != 1 || !strings.Contains(d.Error, "malformed") {
		t.Fatalf("dead letter: %+v", d)
	}
	if n := h.countRetries(); n != 0 {
		t.Fatalf("%d retries for an undecodable record", n)
	}
}

// One handler call with records of every fate: each gets its own outcome, and Outcome hears of
// them once.
func TestHandlerBatch(t *testing.T) {
	type outcome struct {
		topic   string
		retried int
		dead    []string
	}
	var outcomes []outcome
	h := newHarness(t, func(cfg *retry.Config) {
		cfg.Outcome = func(topic string, retried int, dead []state.DeadLetter) {
			o := outcome{topic: topic, retried: retried}
			for _, d := range dead {
				o.dead = append(o.dead, d.MessageID+":"+d.Reason)
			}
			outcomes = append(outcomes, o)
		}
	})
	var recs []buffer.Record
	for _, id := range []string{"b1", "b2", "b3", "b4"} {
		recs = append(recs, h.ingest(topic, newMessage(id)))
	}
	h.fail(h.stage(topic, nil), recs, errTransient, fault.Permanent(errors.New("no")), fault.HTTP(429, "60", ""),
		fault.HTTP(404, "", ""))

	want := []outcome{{topic: topic, retried: 2, dead: []string{"b2:permanent", "b4:permanent"}}}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Fatalf("outcomes %+v, want %+v", outcomes, want)
	}
	p := h.pending()
	if len(p) != 2 {
		t.Fatalf("%d retries, want 2", len(p))
	}
	if a, b := decode(t, p[0].Value), decode(t, p[1].Value); a.ID != "b1" || !p[0].Due.Equal(t0.Add(5*time.Second)) ||
		b.ID != "b3" || !p[1].Due.Equal(t0.Add(time.Minute)) {
		t.Fatalf("retries: %s at %s, %s at %s", a.ID, p[0].Due, b.ID, p[1].Due)
	}
	ls := h.letters()
	if len(ls) != 2 || ls[0].ID == ls[1].ID {
		t.Fatalf("dead letters: %+v", ls)
	}
}

// Every failure leaves a status event: when the next attempt runs, or why and where the message
// was dead-lettered.
func TestStatusEvents(t *testing.T) {
	h := newHarness(t)
	st := h.stage(topic, nil)
	m := newMessage("s1")
	rec := h.ingest(topic, m)

	h.fail(st, []buffer.Record{rec}, fault.HTTP(503, "", ""))
	tr := h.trail(m.ID)
	if len(tr) != 1 {
		t.Fatalf("trail after one failure: %+v", tr)
	}
	e := tr[0]
	if e.Status != state.StatusRetrying || !e.NextAt.Equal(t0.Add(5*time.Second)) || e.Attempts != 1 ||
		!e.At.Equal(t0) || e.Code != 503 || e.Stage != "deliver" || e.Endpoint != endpoint || e.Type != m.Type {
		t.Fatalf("retrying event: %+v", e)
	}

	h.clock.Set(t0.Add(5 * time.Second))
	h.runDue()
	h.fail(st, []buffer.Record{h.fetchOne(topic)}, errTransient)
	second := t0.Add(5 * time.Second)
	h.clock.Set(second.Add(5 * time.Minute))
	h.runDue()
	h.fail(st, []buffer.Record{h.fetchOne(topic)}, fault.HTTP(422, "", "invalid"))

	tr = h.trail(m.ID)
	if len(tr) != 3 {
		t.Fatalf("trail after three failures: %+v", tr)
	}
	if e := tr[1]; e.Status != state.StatusRetrying || e.Attempts != 2 || !e.At.Equal(second) ||
		!e.NextAt.Equal(second.Add(5*time.Minute)) || e.Error != errTransient.Error() {
		t.Fatalf("second retrying event: %+v", e)
	}
	d := h.onlyLetter()
	e = tr[2]
	if e.Status != state.StatusDead || e.Reason != state.ReasonPermanent || e.Letter != d.ID || e.Letter == "" ||
		e.Attempts != 3 || e.Code != 422 || !e.NextAt.IsZero() || !e.At.Equal(second.Add(5*time.Minute)) {
		t.Fatalf("dead-lettered event: %+v (letter %s)", e, d.ID)
	}
	if d.Attempts != 3 || !d.FirstAt.Equal(t0) || !d.LastAt.Equal(e.At) {
		t.Fatalf("dead letter: %+v", d)
	}
}

// deadLetter makes m fail once transiently and then permanently, and returns its dead letter.
func (h *harness) deadLetter(topic string, m message.Message) state.DeadLetter {
	h.t.Helper()
	st := h.stage(topic, nil)
	h.fail(st, []buffer.Record{h.ingest(topic, m)}, errTransient)
	h.clock.Advance(5 * time.Second)
	h.runDue()
	h.fail(st, []buffer.Record{h.fetchOne(topic)}, fault.Permanent(errors.New("rejected")))
	ls, err := h.store.DeadLetters(state.LetterFilter{Type: m.Type, Client: m.Client})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, d := range ls {
		if d.MessageID == m.ID {
			return d
		}
	}
	h.t.Fatalf("no dead letter for %s", m.ID)
	return state.DeadLetter{}
}

// A replay appends the message once, as new, however often it is asked for.
func TestReplay(t *testing.T) {
	h := newHarness(t)
	m := newMessage("r1")
	d := h.deadLetter(topic, m)
	if e := decode(t, d.Message); e.Attempt != 1 || !e.FailedAt.Equal(t0) {
		t.Fatalf("dead letter envelope: attempt %d first failure %s", e.Attempt, e.FailedAt)
	}

	if done := h.replay(d.ID); !slices.Equal(done, []string{d.ID}) {
		t.Fatalf("replayed %v, want [%s]", done, d.ID)
	}
	rec := h.fetchOne(topic)
	got := decode(t, rec.Value)
	if got.Attempt != 0 || !got.FailedAt.IsZero() {
		t.Fatalf("replayed envelope: attempt %d first failure %s, want a fresh schedule", got.Attempt, got.FailedAt)
	}
	if got.ID != m.ID || got.Client != m.Client || got.Type != m.Type || string(got.Payload) != string(m.Payload) ||
		string(rec.Key) != m.Key || !got.ReceivedAt.Equal(m.ReceivedAt) {
		t.Fatalf("replayed message %+v (key %q), want %+v", got, rec.Key, m)
	}
	if _, err := h.store.DeadLetter(d.ID); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("dead letter after replay: %v", err)
	}
	// The store stamps the replayed event with the wall clock, not the retry clock, so it is
	// looked up by status rather than position in the trail.
	replayed := 0
	for _, e := range h.trail(m.ID) {
		if e.Status == state.StatusReplayed {
			replayed++
			if e.Letter != d.ID || e.Stage != "deliver" || e.Endpoint != endpoint {
				t.Errorf("replayed event: %+v", e)
			}
		}
	}
	if replayed != 1 {
		t.Fatalf("%d replayed events, want 1", replayed)
	}

	if done := h.replay(d.ID); len(done) != 0 {
		t.Fatalf("second replay replayed %v", done)
	}
	h.expectNone(topic)

	// The replayed message fails again: a fresh schedule, from its first wait.
	now := h.clock.Now()
	h.fail(h.stage(topic, nil), []buffer.Record{rec}, errTransient)
	p := h.pending()
	if len(p) != 1 || !p[0].Due.Equal(now.Add(5*time.Second)) {
		t.Fatalf("retry after replay: %+v, want one due at %s", p, now.Add(5*time.Second))
	}
	if e := decode(t, p[0].Value); e.Attempt != 1 || !e.FailedAt.Equal(now) {
		t.Fatalf("retry after replay: attempt %d first failure %s", e.Attempt, e.FailedAt)
	}
}

func TestReplayConcurrent(t *testing.T) {
	h := newHarness(t)
	d := h.deadLetter(topic, newMessage("c1"))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done []string
		errs []error
	)
	start := make(chan struct{})
	for range 10 {
		wg.Go(func() {
			<-start
			ids, err := h.retries.Replay(context.Background(), []string{d.ID})
			mu.Lock()
			defer mu.Unlock()
			done = append(done, ids...)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("replay errors: %v", errs)
	}
	if !slices.Equal(done, []string{d.ID}) {
		t.Fatalf("10 concurrent replays replayed %v, want [%s] once", done, d.ID)
	}
	if got := decode(t, h.fetchOne(topic).Value); got.ID != "c1" {
		t.Fatalf("replayed %s", got.ID)
	}
	h.expectNone(topic)
}

// Replay with one id listed twice must still append the message once.
func TestReplayDuplicateIDInOneCall(t *testing.T) {
	h := newHarness(t)
	d := h.deadLetter(topic, newMessage("dup"))
	if done := h.replay(d.ID, d.ID); len(done) != 1 {
		t.Errorf("replay [id id] reported %v", done)
	}
	h.fetchOne(topic)
	h.expectNone(topic)
}

// A replay into a stage that is no longer configured is refused, whole, and keeps the letters.
func TestReplayUnknownStage(t *testing.T) {
	h := newHarness(t)
	live := h.deadLetter(topic, newMessage("live"))
	old := h.deadLetter(oldTopic, newMessage("old"))
	h.setKnown(oldTopic, false)

	done, err := h.retries.Replay(context.Background(), []string{live.ID, old.ID, "ffffffffffffffffffffffff"})
	var unknown *retry.UnknownStageError
	if !errors.As(err, &unknown) {
		t.Fatalf("replay into a removed stage: %v, %v; want *retry.UnknownStageError", done, err)
	}
	if !slices.Equal(unknown.IDs, []string{old.ID}) || !strings.Contains(err.Error(), old.ID) {
		t.Fatalf("unknown ids %v (%q), want [%s]", unknown.IDs, err, old.ID)
	}
	if len(done) != 0 {
		t.Fatalf("refused replay reported %v", done)
	}
	for _, id := range []string{live.ID, old.ID} {
		if _, err := h.store.DeadLetter(id); err != nil {
			t.Fatalf("dead letter %s after a refused replay: %v", id, err)
		}
	}
	h.expectNone(topic)
	h.expectNone(oldTopic)

	// Once the stage is back, the replay runs.
	h.setKnown(oldTopic, true)
	if done := h.replay(old.ID); !slices.Equal(done, []string{old.ID}) {
		t.Fatalf("replayed %v", done)
	}
	if got := decode(t, h.fetchOne(oldTopic).Value); got.ID != "old" || got.Attempt != 0 {
		t.Fatalf("replayed %+v", got)
	}
}

// A retry whose stage left the config becomes a dead letter when it falls due; the others are
// re-injected as usual.
func TestOrphanedRetryBecomesDeadLetter(t *testing.T) {
	h := newHarness(t)
	h.fail(h.stage(topic, nil), []buffer.Record{h.ingest(topic, newMessage("stays"))}, errTransient)
	h.fail(h.stage(oldTopic, nil), []buffer.Record{h.ingest(oldTopic, newMessage("orphan"))}, errTransient)
	h.setKnown(oldTopic, false)

	due := t0.Add(5 * time.Second)
	h.clock.Set(due)
	if next := h.runDue(); !next.IsZero() {
		t.Fatalf("next %s", next)
	}
	if n := h.countRetries(); n != 0 {
		t.Fatalf("%d retries left", n)
	}
	if got := decode(t, h.fetchOne(topic).Value); got.ID != "stays" || got.Attempt != 1 {
		t.Fatalf("re-injected %+v", got)
	}
	h.expectNone(oldTopic)

	d := h.onlyLetter()
	if d.Reason != state.ReasonRemoved || d.Topic != oldTopic || d.MessageID != "orphan" || d.Client != "acme" ||
		d.Endpoint != endpoint || d.Attempts != 1 || !d.FirstAt.Equal(t0) || !d.LastAt.Equal(due) ||
		!strings.Contains(d.Error, oldTopic) {
		t.Fatalf("orphan dead letter: %+v", d)
	}

	// Back in the config, the orphan can be replayed into its stage.
	h.setKnown(oldTopic, true)
	h.replay(d.ID)
	if got := decode(t, h.fetchOne(oldTopic).Value); got.ID != "orphan" || got.Attempt != 0 || !got.FailedAt.IsZero() {
		t.Fatalf("replayed orphan %+v", got)
	}
}

// New dead letters are announced in the same batch that stores them.
func TestNotify(t *testing.T) {
	var calls [][]string
	h := newHarness(t, func(cfg *retry.Config) {
		cfg.Notify = func(letters []state.DeadLetter) (string, []buffer.Message) {
			var ids []string
			for _, d := range letters {
				ids = append(ids, d.MessageID+":"+d.Reason)
			}
			calls = append(calls, ids)
			return opsTopic, []buffer.Message{{Key: []byte("ops"), Value: []byte(strings.Join(ids, ","))}}
		}
	})
	st := h.stage(topic, nil)

	// A retry alone announces nothing.
	h.fail(st, []buffer.Record{h.ingest(topic, newMessage("n0"))}, errTransient)
	if len(calls) != 0 {
		t.Fatalf("Notify called for a retry: %v", calls)
	}
	h.expectNone(opsTopic)

	recs := []buffer.Record{h.ingest(topic, newMessage("n1")), h.ingest(topic, newMessage("n2")), h.ingest(topic, newMessage("n3"))}
	h.fail(st, recs, fault.Permanent(errors.New("no")), errTransient, fault.HTTP(400, "", ""))
	if len(calls) != 1 || !slices.Equal(calls[0], []string{"n1:permanent", "n3:permanent"}) {
		t.Fatalf("Notify calls %v", calls)
	}
	if got := h.fetchOne(opsTopic); string(got.Value) != "n1:permanent,n3:permanent" {
		t.Fatalf("notification %q", got.Value)
	}
	h.expectNone(opsTopic)
	if ls := h.letters(); len(ls) != 2 || ls[0].MessageID != "n1" || ls[1].MessageID != "n3" {
		t.Fatalf("dead letters %+v", ls)
	}
	if n := h.countRetries(); n != 2 {
		t.Fatalf("%d retries, want 2", n)
	}
}

// Notify returning no messages does not lose the dead letters.
func TestNotifyWithoutMessages(t *testing.T) {
	h := newHarness(t, func(cfg *retry.Config) {
		cfg.Notify = func([]state.DeadLetter) (string, []buffer.Message) { return opsTopic, nil }
	})
	h.fail(h.stage(topic, nil), []buffer.Record{h.ingest(topic, newMessage("quiet"))}, fault.Permanent(errors.New("no")))
	if d := h.onlyLetter(); d.MessageID != "quiet" {
		t.Fatalf("dead letter %+v", d)
	}
	h.expectNone(opsTopic)
}

// When the notification cannot be appended, nothing of the batch is written and the handler
// fails, so that the stage does not commit past the records.
func TestNotifyFailureWritesNothing(t *testing.T) {
	h := newHarness(t, func(cfg *retry.Config) {
		cfg.Notify = func([]state.DeadLetter) (string, []buffer.Message) {
			return "no-such-topic", []buffer.Message{{Value: []byte("x")}}
		}
	})
	m1, m2 := newMessage("a1"), newMessage("a2")
	recs := []buffer.Record{h.ingest(topic, m1), h.ingest(topic, m2)}
	err := h.retries.Handler(h.stage(topic, nil))(recs, []error{fault.Permanent(errors.New("no")), errTransient})
	if !errors.Is(err, embedded.ErrUnknownTopic) {
		t.Fatalf("handler: %v, want the append's error", err)
	}
	if ls := h.letters(); len(ls) != 0 {
		t.Fatalf("dead letters written without their notification: %+v", ls)
	}
	if n := h.countRetries(); n != 0 {
		t.Fatalf("%d retries written by a failed batch", n)
	}
	if tr := h.trail(m1.ID); len(tr) != 0 {
		t.Fatalf("events written by a failed batch: %+v", tr)
	}
}

// A record handled twice (the stage crashed before committing past it, so the log delivers it
// again) must leave one retry, not two: Retry documents that the entry's key makes it unique.
func TestRecordHandledTwiceKeepsOneRetry(t *testing.T) {
	h := newHarness(t)
	st := h.stage(topic, nil)
	rec := h.ingest(topic, newMessage("twice"))
	h.fail(st, []buffer.Record{rec}, errTransient)
	h.clock.Advance(time.Second) // the restart
	h.fail(st, []buffer.Record{rec}, errTransient)
	if n := h.countRetries(); n != 1 {
		t.Errorf("%d retries for one failed record, want 1", n)
	}
	h.clock.Advance(time.Hour)
	h.runDue()
	h.fetchOne(topic)
	h.expectNone(topic)
}
