package retry

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/state"
)

// Clock tells the time; tests move it by hand.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Stage describes the stage whose failures a Handler takes.
type Stage struct {
	Topic    string // where a retry or a replay is appended
	Name     string // process, persist or deliver: for trails and dead letters
	Endpoint string // for deliver stages
	// Policy returns the schedule for a message type (the step's or the endpoint's).
	Policy func(typ string) Policy
	// OnGone is called when a partner answered 410 Gone (deliver stages): disable the endpoint.
	OnGone func()
	// Strict reports whether a message type keeps strict per-key order: while one of its
	// messages waits for a retry, the later ones of its key wait behind it (optional).
	Strict func(typ string) bool
}

// Config configures the retry machinery.
type Config struct {
	Store *state.Store
	Clock Clock          // default: the real clock
	Rand  func() float64 // jitter source in [0, 1) (default math/rand)
	// Notify, when set, turns new dead letters into messages for an operations webhook: the
	// returned topic and messages are appended in the same fsync'd batch as the dead letters.
	Notify func(letters []state.DeadLetter) (topic string, msgs []buffer.Message)
	// Outcome, when set, is told what became of each stage's failures (for metrics).
	Outcome func(topic string, retried int, dead []state.DeadLetter)
	Logger  *slog.Logger
	// Leases, when set, makes the scheduler run on one instance at a time: the one holding the
	// "retry-scheduler" lease as Holder. Its re-injections are fenced by the lease.
	Leases state.Leases
	Holder string
}

// schedulerLease is the lease of the instance that re-injects due retries; its TTL bounds how
// long retries wait when that instance dies.
const (
	schedulerLease    = "retry-scheduler"
	schedulerLeaseTTL = 10 * time.Second
)

// Retries is Weir's failure handling: it turns stage failures into durable retries and dead
// letters, re-injects due retries (Run), and replays dead letters.
type Retries struct {
	cfg   Config
	wake  chan struct{}
	known func(topic string) bool

	mu      sync.Mutex
	deadlog time.Time // the last dead-letter log line (sampled to one a second)

	// The scheduler's scans start at low: everything due before it was re-injected already, and
	// deleted entries (which Pebble keeps until a compaction) need not be stepped over again. A
	// stage that schedules a retry due before low lowers it (mu guards it).
	low      time.Time
	written  uint64    // retries scheduled so far: a scan that saw this change keeps low
	fullScan time.Time // the last scan from the start (one a minute, against clock jumps)

	fence *state.Lease // the scheduler's lease while Run holds it
}

// lower makes the next scan start no later than due.
func (r *Retries) lower(due time.Time) {
	r.mu.Lock()
	if due.Before(r.low) {
		r.low = due
	}
	r.written++
	r.mu.Unlock()
}

// New returns the failure handling over cfg.Store. known reports whether a topic still exists;
// retries whose stage left the config become dead letters.
func New(cfg Config, known func(topic string) bool) *Retries {
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Retries{cfg: cfg, wake: make(chan struct{}, 1), known: known}
}

// Handler returns the runtime.Config.Fail hook of a stage without strict-order types.
func (r *Retries) Handler(st Stage) func(recs []buffer.Record, errs []error) error {
	st.Strict = nil
	return (&StageHandler{r: r, st: st}).Fail
}

// StageHandler is the failure handling of one stage: its Fail, Hold and Done methods are the
// stage's runtime hooks, all called from the stage's one dispatching goroutine.
type StageHandler struct {
	r     *Retries
	st    Stage
	holds map[string]string // "type\x00key" of each held strict-order key → its holder
}

// For returns the failure handling of a stage, with the held keys it left at the last stop.
func (r *Retries) For(st Stage) (*StageHandler, error) {
	h := &StageHandler{r: r, st: st, holds: map[string]string{}}
	if st.Strict != nil {
		var err error
		if h.holds, err = r.cfg.Store.Holds(st.Topic); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func holdID(typ, key string) string { return typ + "\x00" + key }

func holderOf(m *message.Message) string { return state.Holder(m.Client, m.ID, m.ReceivedAt) }

// Hold decides about a message of a held strict-order key before it runs: the holder runs (its
// retry, the one released in its turn, or a replay of it); any other message is parked behind
// it. A record whose failure is already recorded — handled again after a crash — is finished
// without running or parking: its chain of retries goes on.
func (h *StageHandler) Hold(rec buffer.Record) (bool, error) {
	if len(h.holds) == 0 {
		return false, nil
	}
	m, err := message.Decode(rec.Value)
	if err != nil {
		return false, nil
	}
	holder, held := h.holds[holdID(m.Type, m.Key)]
	if !held {
		return false, nil
	}
	if m.Attempt == 0 && !m.Released {
		marked, err := h.r.cfg.Store.Marked(h.st.Topic, m.Client, m.Type, m.ID, m.ReceivedAt)
		if err != nil {
			return false, err
		}
		if marked > 0 {
			return true, nil
		}
	}
	if holderOf(&m) == holder {
		return false, nil
	}
	return true, h.r.cfg.Store.Park(state.Hold{Topic: h.st.Topic, Type: m.Type, Key: m.Key}, rec.Value, rec.Partition, rec.Offset)
}

// Done releases the next parked message of each held key whose holder succeeded.
func (h *StageHandler) Done(recs []buffer.Record) error {
	if len(h.holds) == 0 {
		return nil
	}
	for _, rec := range recs {
		m, err := message.Decode(rec.Value)
		if err != nil {
			continue
		}
		if holder, held := h.holds[holdID(m.Type, m.Key)]; !held || holder != holderOf(&m) {
			continue
		}
		if err := h.release(m.Type, m.Key); err != nil {
			return err
		}
	}
	return nil
}

func (h *StageHandler) release(typ, key string) error {
	decode := func(v []byte) (message.Message, bool) {
		m, err := message.Decode(v)
		return m, err == nil
	}
	next, err := h.r.cfg.Store.Release(context.Background(), state.Hold{Topic: h.st.Topic, Type: typ, Key: key},
		func(v []byte) []byte {
			m, ok := decode(v)
			if !ok {
				return v
			}
			m.Released = true
			return m.Encode()
		},
		func(v []byte) string {
			m, ok := decode(v)
			if !ok {
				return ""
			}
			return holderOf(&m)
		})
	if err != nil {
		return err
	}
	if next == "" {
		delete(h.holds, holdID(typ, key))
	} else {
		h.holds[holdID(typ, key)] = next
	}
	return nil
}

// Fail is the runtime.Config.Fail hook: every failed record becomes a retry due on the stage's
// schedule or, when the schedule is exhausted or the error is permanent, a dead letter — each
// with a status event — in one batch written before the stage commits.
func (h *StageHandler) Fail(recs []buffer.Record, errs []error) error {
	r, st := h.r, h.st
	now := r.cfg.Clock.Now().UTC()
	var retries []state.Retry
	var letters []state.DeadLetter
	var holds, releases []state.Hold
	events := make([]state.Event, 0, len(recs))
	gone := false
	var marks []state.Mark
	for i, rec := range recs {
		err := errs[i]
		m, derr := message.Decode(rec.Value)
		if derr != nil {
			// Nothing to retry or replay: keep the raw record for inspection.
			letters = append(letters, state.DeadLetter{ID: state.NewLetterID(now), Topic: st.Topic, Stage: st.Name,
				Endpoint: st.Endpoint, Reason: state.ReasonPermanent, Error: derr.Error(), Attempts: 1, FirstAt: now,
				LastAt: now, Key: rec.Key, Message: rec.Value})
			continue
		}
		failed := int(m.Attempt) + 1
		// The same record handled again after a crash (before its stage committed) finds its
		// failure already recorded: its retry is scheduled, or it is dead-lettered. One chain.
		marked, merr := r.cfg.Store.Marked(st.Topic, m.Client, m.Type, m.ID, m.ReceivedAt)
		if merr != nil {
			return merr
		}
		if marked >= uint32(failed) {
			continue
		}
		mark := state.Mark{Topic: st.Topic, Client: m.Client, Type: m.Type, ID: m.ID, ReceivedAt: m.ReceivedAt, Failed: uint32(failed)}
		first := m.FailedAt
		if first.IsZero() {
			first = now
		}
		code, body := status(err)
		e := state.Event{Client: m.Client, ID: m.ID, Type: m.Type, Stage: st.Name, Endpoint: st.Endpoint,
			At: now, Attempts: failed, Code: code, Error: bounded(err.Error())}
		reason := ""
		var wait time.Duration
		switch {
		case code == http.StatusGone && st.OnGone != nil:
			reason, gone = state.ReasonGone, true
		case fault.IsPermanent(err):
			reason = state.ReasonPermanent
		default:
			var ok bool
			if wait, ok = st.Policy(m.Type).Next(failed, first, now, err, r.cfg.Rand); !ok {
				reason = state.ReasonExhausted
			}
		}
		if reason != "" {
			d := state.DeadLetter{ID: state.NewLetterID(now), Topic: st.Topic, Stage: st.Name, Endpoint: st.Endpoint,
				Client: m.Client, Type: m.Type, MessageID: m.ID, Reason: reason, Error: e.Error, Attempts: failed,
				FirstAt: first, LastAt: now, Code: code, Response: body, Key: rec.Key, Message: rec.Value}
			letters = append(letters, d)
			mark.Failed = state.MarkFinal
			marks = append(marks, mark)
			e.Status, e.Reason, e.Letter = state.StatusDead, reason, d.ID
			events = append(events, e)
			if holder, held := h.holds[holdID(m.Type, m.Key)]; held && holder == holderOf(&m) {
				releases = append(releases, state.Hold{Topic: st.Topic, Type: m.Type, Key: m.Key})
			}
			continue
		}
		if _, held := h.holds[holdID(m.Type, m.Key)]; st.Strict != nil && st.Strict(m.Type) && !held {
			holds = append(holds, state.Hold{Topic: st.Topic, Type: m.Type, Key: m.Key, Holder: holderOf(&m)})
		}
		marks = append(marks, mark)
		m.Attempt, m.FailedAt = uint32(failed), first
		due := now.Add(wait)
		retries = append(retries, state.Retry{Topic: st.Topic, Due: due, Key: rec.Key, Value: m.Encode(),
			Partition: rec.Partition, Offset: rec.Offset})
		e.Status, e.NextAt = state.StatusRetrying, due
		events = append(events, e)
	}
	var notify *state.Notification
	if len(letters) > 0 && r.cfg.Notify != nil {
		if topic, msgs := r.cfg.Notify(letters); len(msgs) > 0 {
			notify = &state.Notification{Topic: topic, Msgs: msgs}
		}
	}
	if err := r.cfg.Store.Failures(state.Failures{Retries: retries, Letters: letters, Events: events, Holds: holds, Marks: marks, Notify: notify}); err != nil {
		return err
	}
	for _, hd := range holds {
		h.holds[holdID(hd.Type, hd.Key)] = hd.Holder
	}
	// A dead-lettered message no longer holds its key: the next one behind it runs.
	for _, hd := range releases {
		if err := h.release(hd.Type, hd.Key); err != nil {
			return err
		}
	}
	if gone {
		st.OnGone()
	}
	if r.cfg.Outcome != nil {
		r.cfg.Outcome(st.Topic, len(retries), letters)
	}
	if len(letters) > 0 {
		r.logDead(st, letters)
	}
	if len(retries) > 0 {
		earliest := retries[0].Due
		for _, rt := range retries[1:] {
			if rt.Due.Before(earliest) {
				earliest = rt.Due
			}
		}
		r.lower(earliest)
		r.poke()
	}
	return nil
}

func (r *Retries) logDead(st Stage, letters []state.DeadLetter) {
	r.mu.Lock()
	now := time.Now()
	sample := now.Sub(r.deadlog) >= time.Second
	if sample {
		r.deadlog = now
	}
	r.mu.Unlock()
	if sample {
		d := letters[0]
		r.cfg.Logger.Warn("dead-lettered", "stage", st.Name, "endpoint", st.Endpoint, "count", len(letters),
			"message", d.MessageID, "reason", d.Reason, "attempts", d.Attempts, "err", d.Error)
	}
}

// poke wakes the scheduler to look at the earliest due retry again.
func (r *Retries) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run re-injects retries as they fall due until ctx ends. It returns the error that stops it
// (the log refusing writes).
func (r *Retries) Run(ctx context.Context) error {
	if r.cfg.Leases != nil {
		defer r.cfg.Leases.Release(context.WithoutCancel(ctx), schedulerLease, r.cfg.Holder)
	}
	for {
		var next time.Time
		held, err := r.lease(ctx)
		if err == nil && held {
			next, err = r.RunDue(ctx)
		}
		switch {
		case errors.Is(err, state.ErrFenced):
			r.cfg.Logger.Warn("retry scheduler: lease lost to another instance; standing by", "err", err)
		case err != nil && fault.IsShutdown(ctx, err):
			return nil
		case err != nil:
			return err
		}
		wait := time.Second // look again now and then: another process may have written entries
		if !next.IsZero() {
			wait = min(wait, next.Sub(r.cfg.Clock.Now()))
		}
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// lease takes or renews the scheduler's lease; without Leases the scheduler always runs.
func (r *Retries) lease(ctx context.Context) (bool, error) {
	if r.cfg.Leases == nil {
		return true, nil
	}
	l, ok, err := r.cfg.Leases.Acquire(ctx, schedulerLease, r.cfg.Holder, schedulerLeaseTTL)
	if err != nil {
		r.fence = nil
		r.cfg.Logger.Warn("retry scheduler: lease", "err", err)
		return false, nil // try again: the state store may be back in a moment
	}
	if !ok {
		r.fence = nil
		return false, nil
	}
	if r.fence == nil || r.fence.Token != l.Token {
		r.cfg.Logger.Info("retry scheduler: running on this instance", "token", l.Token)
		r.mu.Lock()
		r.low = time.Time{} // another instance ran it meanwhile: scan from the start
		r.mu.Unlock()
	}
	r.fence = &l
	return true, nil
}

// RunDue re-injects every retry due now and returns when the next one falls due (zero when none
// waits). It is called from one goroutine at a time.
func (r *Retries) RunDue(ctx context.Context) (time.Time, error) {
	for {
		now := r.cfg.Clock.Now()
		r.mu.Lock()
		if now.Sub(r.fullScan) >= time.Minute || now.Before(r.fullScan) {
			r.low, r.fullScan = time.Time{}, now
		}
		low, written := r.low, r.written
		r.mu.Unlock()
		if r.cfg.Store.Shared() {
			low = time.Time{} // other instances schedule retries this one does not hear of
		}
		due, next, err := r.cfg.Store.DueRetriesFrom(low, now, 1024)
		if err != nil {
			return time.Time{}, err
		}
		if len(due) == 0 {
			return next, nil
		}
		last := due[len(due)-1].Due
		var gone []state.Retry
		live := due[:0]
		for _, d := range due {
			if r.known(d.Topic) {
				live = append(live, d)
			} else {
				gone = append(gone, d)
			}
		}
		if len(gone) > 0 {
			if err := r.orphan(gone); err != nil {
				return time.Time{}, err
			}
		}
		if err := r.cfg.Store.Reinject(ctx, live, r.fence); err != nil {
			return time.Time{}, err
		}
		// Everything due up to now (or up to last, when the batch was full) is re-injected —
		// unless a stage scheduled a retry while this scan ran, which it may not have seen: then
		// the next scan starts where this one did (or earlier).
		upTo := now
		if len(due) == 1024 {
			upTo = last
		}
		r.mu.Lock()
		if r.written == written {
			r.low = upTo
		}
		r.mu.Unlock()
		if len(due) < 1024 && (next.IsZero() || next.After(r.cfg.Clock.Now())) {
			return next, nil
		}
	}
}

// orphan turns retries whose stage no longer exists into dead letters, which a replay can run
// once the stage is back.
func (r *Retries) orphan(retries []state.Retry) error {
	now := r.cfg.Clock.Now().UTC()
	letters := make([]state.DeadLetter, 0, len(retries))
	for _, rt := range retries {
		d := state.DeadLetter{ID: state.NewLetterID(now), Topic: rt.Topic, Reason: state.ReasonRemoved,
			Error: "the stage " + rt.Topic + " is no longer configured", LastAt: now, Key: rt.Key, Message: rt.Value}
		if m, err := message.Decode(rt.Value); err == nil {
			d.Client, d.Type, d.MessageID, d.Endpoint, d.Attempts, d.FirstAt = m.Client, m.Type, m.ID, m.Endpoint, int(m.Attempt), m.FailedAt
		}
		letters = append(letters, d)
	}
	return r.cfg.Store.Orphan(retries, letters)
}

// Replay appends dead letters to their stages again with a fresh schedule; each runs once however
// often it is replayed. It returns the ids replayed.
func (r *Retries) Replay(ctx context.Context, ids []string) ([]string, error) {
	var unknown []string
	for _, id := range ids {
		d, err := r.cfg.Store.DeadLetter(id)
		if err != nil {
			if errors.Is(err, state.ErrNotFound) {
				continue
			}
			return nil, err
		}
		if !r.known(d.Topic) {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		return nil, &UnknownStageError{IDs: unknown}
	}
	return r.cfg.Store.Replay(ctx, ids, func(d *state.DeadLetter) []byte {
		m, err := message.Decode(d.Message)
		if err != nil {
			return d.Message
		}
		m.Attempt, m.FailedAt, m.Released = 0, time.Time{}, false
		return m.Encode()
	})
}

// UnknownStageError refuses a replay into a stage that is not configured.
type UnknownStageError struct{ IDs []string }

func (e *UnknownStageError) Error() string {
	return "the stage of these dead letters is not configured; add it back first: " + joinIDs(e.IDs)
}

func joinIDs(ids []string) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += ", "
		}
		s += id
	}
	return s
}

func status(err error) (int, string) {
	var se *fault.StatusError
	if errors.As(err, &se) {
		return se.Code, se.Body
	}
	return 0, ""
}

func bounded(s string) string {
	const max = 512
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
