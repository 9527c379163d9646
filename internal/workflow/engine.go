package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/format"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/retry"
	"github.com/weirhq/weir/internal/state"
)

// Store is where runs are kept; *state.Store implements it. Its methods are called from many
// handler goroutines at once.
type Store interface {
	WorkflowRun(id string) (*state.Run, error)
	SaveRun(r *state.Run, sync bool, events ...state.Event) error
	SaveRunWith(ctx context.Context, r *state.Run, topic string, msgs []buffer.Message, events ...state.Event) error
	DeleteRun(r *state.Run) error
	// Marked is the retry machinery's failure count of a message in a stage (state.MarkFinal
	// once it was dead-lettered, until a replay).
	Marked(topic, client, typ, id string, receivedAt time.Time) (uint32, error)
}

// Observer is told what runs do (metrics); every method may be called concurrently.
type Observer interface {
	Started(workflow string)
	Finished(workflow, state string)
	// Compensated is told about a failed run whose compensations all succeeded (at least one).
	Compensated(workflow string)
	Step(workflow, step, outcome string, d time.Duration)
}

// Config configures an Engine.
type Config struct {
	Store Store
	// Topic is the workflow stage's topic (for the failure marks).
	Topic string
	// Flows maps a message type to its workflow.
	Flows map[string]*Workflow
	// Notify, when set, turns a failed run into messages for an operations endpoint, appended in
	// the same fsync'd batch as the run's final state.
	Notify   func(r *state.Run, endpoint string) (topic string, msgs []buffer.Message)
	Observer Observer
	// Failpoints kill the process at a step boundary (crash tests only): a comma-separated list
	// of before:<step>, after:<step>, compensate-before:<step>, compensate-after:<step>.
	Failpoints string
	// Fence, when set, gives the lease of a partition that the writes of runs of its messages
	// are fenced by (instances sharing a state store; see state.Run.Fence).
	Fence  func(partition int) *state.Lease
	Clock  func() time.Time
	Logger *slog.Logger
}

// MaxResponse bounds the answer body a step keeps for later templates.
const MaxResponse = 64 << 10

// Engine runs workflows; its Handle method is the workflow stage's handler.
type Engine struct {
	cfg   Config
	fails failpoints
}

// New returns an engine over cfg.
func New(cfg Config) *Engine {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	return &Engine{cfg: cfg, fails: parseFailpoints(cfg.Failpoints)}
}

type nopObserver struct{}

func (nopObserver) Started(string)                             {}
func (nopObserver) Finished(string, string)                    {}
func (nopObserver) Compensated(string)                         {}
func (nopObserver) Step(string, string, string, time.Duration) {}

// Handle runs the workflows of a batch of messages concurrently (the runtime never puts two
// messages of one key in a batch). A run that has to wait for a retry returns a transient error
// carrying the wait; a run whose compensation failed for good returns a permanent error, which
// dead-letters its message for manual handling — replaying it resumes the compensations.
func (e *Engine) Handle(ctx context.Context, recs []buffer.Record) []error {
	if len(recs) == 1 {
		if err := e.handle(ctx, recs[0]); err != nil {
			return []error{err}
		}
		return nil
	}
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.handle(ctx, recs[i])
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return errs
		}
	}
	return nil
}

// exec is one handling of a run.
type exec struct {
	e    *Engine
	wf   *Workflow
	msg  *message.Message
	vars format.Vars

	mu  sync.Mutex // guards run while the steps of a group run
	run *state.Run
	// finishing is set while the last group runs with a single step: its success completes
	// the run in the same write.
	finishing bool
	doc       map[string]any // the template context; "steps" grows between groups only
}

func (e *Engine) handle(ctx context.Context, rec buffer.Record) error {
	m, err := message.Decode(rec.Value)
	if err != nil {
		return fault.Permanent(err)
	}
	wf := e.cfg.Flows[m.Type]
	if wf == nil {
		return fault.Permanent(fmt.Errorf("message type %q has no workflow", m.Type))
	}
	id := state.RunID(m.Client, m.Type, m.ID)
	var fence *state.Lease
	if e.cfg.Fence != nil {
		fence = e.cfg.Fence(rec.Partition)
	}
	run, err := e.cfg.Store.WorkflowRun(id)
	if err == nil {
		run.Fence(fence)
	}
	if err == nil && !run.ReceivedAt.Equal(m.ReceivedAt) {
		// The id was used again after its receipt expired: a new message, so a new run — once
		// the earlier one no longer needs its record.
		if run.State == state.RunCompensationFailed {
			// Its record serves the earlier message's dead letter: this one waits as a dead
			// letter too, until an operator settled the earlier one.
			return fault.Permanent(fmt.Errorf("run %s of an earlier message with this id awaits manual handling (compensation failed): replay its dead letter, or discard it and delete the run (DELETE /v1/admin/workflows/%s); then replay this one", run.ID, run.ID))
		}
		if !state.Finished(run.State) {
			return retryAfter(fmt.Errorf("run %s of an earlier message with this id is still %s", run.ID, run.State), time.Minute)
		}
		if err := e.cfg.Store.DeleteRun(run); err != nil {
			return err
		}
		err = state.ErrNotFound
	}
	switch {
	case errors.Is(err, state.ErrNotFound):
		// Saved with its first step's outcome: a crash before that starts it afresh.
		run = e.newRun(wf, &m, id)
		run.Fence(fence)
		e.cfg.Observer.Started(wf.Name)
	case err != nil:
		return err
	}
	if len(run.Steps) != wf.steps {
		if run.State != state.RunCompensationFailed {
			run.State, run.Reason = state.RunCompensationFailed, fmt.Sprintf("workflow %q changed its steps while the run was in flight: handle it by hand", wf.Name)
			if err := e.cfg.Store.SaveRun(run, true); err != nil {
				return err
			}
		}
		return fault.Permanent(fmt.Errorf("workflow %q changed its steps while run %s was in flight", wf.Name, run.ID))
	}
	switch run.State {
	case state.RunCompleted, state.RunFailed:
		return nil // handled again after a crash: nothing left to do
	}
	x := &exec{e: e, wf: wf, msg: &m, run: run,
		vars: format.Vars{ID: m.ID, Client: m.Client, Type: m.Type, Key: m.Key, ReceivedAt: m.ReceivedAt.Format(time.RFC3339Nano)}}
	if err := x.context(); err != nil {
		return err
	}
	switch run.State {
	case state.RunCompensationFailed:
		// Its message is a dead letter. Handled again after a crash (the dead letter recorded,
		// the stage not yet committed past it) there is nothing to do; replayed, the
		// compensations that could not succeed are tried once more (they are idempotent).
		marked, err := e.cfg.Store.Marked(e.cfg.Topic, m.Client, m.Type, m.ID, m.ReceivedAt)
		if err != nil {
			return err
		}
		if marked == state.MarkFinal {
			return nil
		}
		e.cfg.Observer.Started(wf.Name)
		for i := range run.Steps {
			if c := run.Steps[i].Compensation; c != nil && c.Status == state.StepCompensationFailed {
				c.Status, c.Attempts, c.FailedAt = state.StepPending, 0, time.Time{}
			}
		}
		run.State = state.RunCompensating
		return x.compensate(ctx)
	case state.RunCompensating:
		return x.compensate(ctx)
	}
	return x.forward(ctx)
}

func (e *Engine) newRun(wf *Workflow, m *message.Message, id string) *state.Run {
	now := e.cfg.Clock().UTC()
	r := &state.Run{ID: id, Workflow: wf.Name, Client: m.Client, Type: m.Type, MessageID: m.ID, Key: m.Key,
		ReceivedAt: m.ReceivedAt, State: state.RunRunning, StartedAt: now, UpdatedAt: now, Deadline: now.Add(wf.Timeout)}
	for _, g := range wf.Groups {
		for _, s := range g {
			r.Steps = append(r.Steps, state.StepRun{Name: s.Name, Status: state.StepPending})
		}
	}
	return r
}

// context builds the template context: the message, the run, and the answers of the steps
// that succeeded so far.
func (x *exec) context() error {
	payload, err := format.Decode(x.msg.Payload)
	if err != nil {
		return fault.Permanent(err)
	}
	r := x.run
	steps := map[string]any{}
	for i := range r.Steps {
		if s := &r.Steps[i]; s.Status == state.StepSucceeded {
			steps[s.Name] = stepValue(s)
		}
	}
	x.doc = map[string]any{
		"message": payload,
		"workflow": map[string]any{"id": r.ID, "name": r.Workflow, "message_id": r.MessageID, "client": r.Client,
			"type": r.Type, "key": r.Key, "received_at": x.vars.ReceivedAt},
		"steps": steps,
	}
	return nil
}

func stepValue(s *state.StepRun) map[string]any {
	v := map[string]any{"status": s.Code}
	if len(s.Response) > 0 {
		if body, err := format.Decode(s.Response); err == nil {
			v["body"] = body
		}
	}
	return v
}

// outcome is how one attempt of a call ended.
type outcome struct {
	err  error         // nil: success
	wait time.Duration // transient: when to try again
	done bool          // permanent, or transient with the schedule exhausted
}

// forward runs the steps group by group from the first one not finished.
func (x *exec) forward(ctx context.Context) error {
	r := x.run
	for gi, g := range x.wf.Groups {
		x.finishing = gi == len(x.wf.Groups)-1 && len(g) == 1
		if x.e.cfg.Clock().After(r.Deadline) {
			return x.fail(ctx, fmt.Sprintf("timed out: the workflow did not finish within %s", x.wf.Timeout))
		}
		outs := make([]outcome, len(g))
		if len(g) == 1 {
			outs[0] = x.step(ctx, g[0])
		} else {
			var wg sync.WaitGroup
			for i, s := range g {
				wg.Add(1)
				go func() {
					defer wg.Done()
					outs[i] = x.step(ctx, s)
				}()
			}
			wg.Wait()
		}
		var retryErr error
		var wait time.Duration
		for i, o := range outs {
			switch {
			case o.err == nil:
			case o.done:
				return x.fail(ctx, fmt.Sprintf("step %s failed: %v", g[i].Name, o.err))
			case retryErr == nil || o.wait < wait:
				retryErr, wait = o.err, o.wait
			}
		}
		if retryErr != nil {
			return retryAfter(retryErr, wait)
		}
		// The group's answers become visible to the templates of the next groups.
		steps := x.doc["steps"].(map[string]any)
		for _, s := range g {
			if sr := &r.Steps[s.Index]; sr.Status == state.StepSucceeded {
				steps[s.Name] = stepValue(sr)
			}
		}
	}
	if r.State != state.RunCompleted { // not completed by the last step's own write
		now := x.e.cfg.Clock().UTC()
		r.State, r.UpdatedAt, r.FinishedAt = state.RunCompleted, now, now
		if err := x.e.cfg.Store.SaveRun(r, false, x.event(state.RunCompleted, "")); err != nil {
			return err
		}
	}
	x.e.cfg.Observer.Finished(x.wf.Name, state.RunCompleted)
	return nil
}

// retryAfter makes err a transient failure that the retry machinery re-runs after wait.
func retryAfter(err error, wait time.Duration) error {
	if fault.IsPermanent(err) {
		err = errors.Unwrap(err)
	}
	return &fault.RetryAfterError{Err: err, After: wait}
}

// step runs one step, unless it finished before, and records its outcome.
func (x *exec) step(ctx context.Context, s *Step) outcome {
	x.mu.Lock()
	sr := &x.run.Steps[s.Index]
	status, next, last := sr.Status, sr.NextAt, sr.Error
	x.mu.Unlock()
	if status == state.StepSucceeded || status == state.StepSkipped {
		return outcome{}
	}
	if wait := next.Sub(x.e.cfg.Clock()); status == state.StepRetrying && wait > 0 {
		// Its own schedule (or the peer's Retry-After) is not due yet: a sibling's earlier
		// retry brought the run back.
		return outcome{err: errors.New(last), wait: wait}
	}
	if s.When != nil {
		v, err := s.When.Run(ctx, x.doc, x.vars)
		if err != nil {
			return x.record(s, sr, 0, nil, fault.Permanent(fmt.Errorf("when: %w", err)), 0)
		}
		if v != true {
			x.mu.Lock()
			defer x.mu.Unlock()
			sr.Status = state.StepSkipped
			x.run.UpdatedAt = x.e.cfg.Clock().UTC()
			if err := x.e.cfg.Store.SaveRun(x.run, false); err != nil {
				return outcome{err: err}
			}
			return outcome{}
		}
	}
	x.e.fails.hit("before", s.Name, x.e.cfg.Logger)
	start := x.e.cfg.Clock()
	code, body, err := x.call(ctx, s.Call, x.run.ID+"."+s.Name)
	x.e.fails.hit("after", s.Name, x.e.cfg.Logger)
	if fault.IsShutdown(ctx, err) {
		return outcome{err: err} // not the service's fault: try again after the restart
	}
	return x.record(s, sr, code, body, err, x.e.cfg.Clock().Sub(start))
}

// record saves a step's outcome: a success synced, so it is never called again.
func (x *exec) record(s *Step, sr *state.StepRun, code int, body []byte, err error, d time.Duration) outcome {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := x.e.cfg.Clock().UTC()
	if sr.StartedAt.IsZero() {
		sr.StartedAt = now.Add(-d)
	}
	sr.Attempts++
	sr.Code = code
	x.run.UpdatedAt = now
	var o outcome
	var events []state.Event
	if err == nil {
		sr.Status, sr.FinishedAt, sr.Error = state.StepSucceeded, now, ""
		if s.Keep {
			sr.Response = response(body)
		}
		x.e.cfg.Observer.Step(x.wf.Name, s.Name, "ok", d)
		if x.finishing {
			x.run.State, x.run.FinishedAt = state.RunCompleted, now
			events = append(events, x.event(state.RunCompleted, ""))
		}
	} else {
		sr.Error = bounded(err.Error())
		if sr.FailedAt.IsZero() {
			sr.FailedAt = now
		}
		if !fault.IsPermanent(err) && !errors.Is(err, errNotSent) {
			sr.Unsure = true // lost answer, timeout, 5xx: it may have acted
		}
		o.err = err
		if fault.IsPermanent(err) {
			o.done = true
		} else if o.wait, o.done = x.next(s.Policy, sr.Attempts, sr.FailedAt, now, err); !o.done {
			sr.Status, sr.NextAt = state.StepRetrying, now.Add(o.wait)
			x.e.cfg.Observer.Step(x.wf.Name, s.Name, "retry", d)
		} else {
			o.err = fmt.Errorf("gave up after %d attempts: %w", sr.Attempts, err)
		}
		if o.done {
			sr.Status, sr.FinishedAt = state.StepFailed, now
			x.e.cfg.Observer.Step(x.wf.Name, s.Name, "failed", d)
		}
	}
	// A success is synced before the next step starts; a failure rides on the retry's or the
	// compensation's own write.
	if serr := x.e.cfg.Store.SaveRun(x.run, err == nil, events...); serr != nil {
		return outcome{err: serr}
	}
	return o
}

// next returns the wait before the next attempt, or done when the policy gives up; the wait
// never reaches past the run's deadline (the timeout then compensates).
func (x *exec) next(p retry.Policy, failed int, first, now time.Time, err error) (time.Duration, bool) {
	wait, ok := p.Next(failed, first, now, err, rand.Float64)
	if !ok {
		return 0, true
	}
	if left := x.run.Deadline.Sub(now); wait > left {
		wait = max(left, 0)
	}
	return wait, false
}

// fail turns the run to compensating (with its reason) and compensates.
func (x *exec) fail(ctx context.Context, reason string) error {
	r := x.run
	r.State, r.Reason, r.UpdatedAt = state.RunCompensating, reason, x.e.cfg.Clock().UTC()
	for _, g := range x.wf.Groups {
		for _, s := range g {
			sr := &r.Steps[s.Index]
			// A step with an attempt that may have acted (answer lost, 5xx, timeout) is undone
			// too, whether it gave up or was still waiting for a retry (compensations accept
			// "not found"); one that was only ever refused, or never sent, did nothing.
			mayHaveActed := sr.Status == state.StepSucceeded || sr.Unsure
			if s.Compensate != nil && mayHaveActed && sr.Compensation == nil {
				sr.Compensation = &state.Compensation{Status: state.StepPending}
			}
		}
	}
	if err := x.e.cfg.Store.SaveRun(r, true); err != nil {
		return err
	}
	return x.compensate(ctx)
}

// compensate undoes the steps that need it, last step first, each retried on the compensation
// schedule; one that cannot succeed is marked and the others still run.
func (x *exec) compensate(ctx context.Context) error {
	r := x.run
	var failed []string
	for gi := len(x.wf.Groups) - 1; gi >= 0; gi-- {
		g := x.wf.Groups[gi]
		for si := len(g) - 1; si >= 0; si-- {
			s := g[si]
			c := r.Steps[s.Index].Compensation
			if c == nil || c.Status == state.StepCompensated {
				continue
			}
			if c.Status == state.StepCompensationFailed {
				failed = append(failed, s.Name)
				continue
			}
			x.e.fails.hit("compensate-before", s.Name, x.e.cfg.Logger)
			start := x.e.cfg.Clock()
			code, _, err := x.call(ctx, s.Compensate, r.ID+"."+s.Name+".compensate")
			x.e.fails.hit("compensate-after", s.Name, x.e.cfg.Logger)
			if fault.IsShutdown(ctx, err) {
				return err
			}
			now := x.e.cfg.Clock().UTC()
			d := now.Sub(start)
			c.Attempts++
			c.Code, c.At = code, now
			r.UpdatedAt = now
			if err == nil {
				c.Status, c.Error = state.StepCompensated, ""
				x.e.cfg.Observer.Step(x.wf.Name, s.Name, "compensated", d)
				if err := x.e.cfg.Store.SaveRun(r, true); err != nil {
					return err
				}
				continue
			}
			c.Error = bounded(err.Error())
			if c.FailedAt.IsZero() {
				c.FailedAt = now
			}
			if !fault.IsPermanent(err) {
				// Compensations are retried until their schedule runs out, past the deadline.
				if wait, ok := s.CompPolicy.Next(c.Attempts, c.FailedAt, now, err, rand.Float64); ok {
					c.Status = state.StepRetrying
					x.e.cfg.Observer.Step(x.wf.Name, s.Name, "compensation_retry", d)
					if err := x.e.cfg.Store.SaveRun(r, false); err != nil {
						return err
					}
					return retryAfter(fmt.Errorf("compensating step %s: %w", s.Name, err), wait)
				}
			}
			c.Status = state.StepCompensationFailed
			x.e.cfg.Observer.Step(x.wf.Name, s.Name, "compensation_failed", d)
			failed = append(failed, s.Name)
			if err := x.e.cfg.Store.SaveRun(r, true); err != nil {
				return err
			}
		}
	}
	now := x.e.cfg.Clock().UTC()
	r.UpdatedAt, r.FinishedAt = now, now
	r.State = state.RunFailed
	undone := false
	for i := range r.Steps {
		if c := r.Steps[i].Compensation; c != nil && c.Status == state.StepCompensated {
			undone = true
		}
	}
	defer func() {
		if undone && len(failed) == 0 {
			x.e.cfg.Observer.Compensated(x.wf.Name)
		}
	}()
	var result error
	if len(failed) > 0 {
		r.State = state.RunCompensationFailed
		result = fault.Permanent(fmt.Errorf("workflow %s failed (%s) and the compensation of %s could not succeed: handle it by hand, then discard or replay the dead letter",
			r.ID, r.Reason, strings.Join(failed, ", ")))
	}
	ev := x.event(r.State, r.Reason)
	if x.wf.Notify != "" && x.e.cfg.Notify != nil {
		if topic, msgs := x.e.cfg.Notify(r, x.wf.Notify); len(msgs) > 0 {
			if err := x.e.cfg.Store.SaveRunWith(ctx, r, topic, msgs, ev); err != nil {
				return err
			}
			x.e.cfg.Observer.Finished(x.wf.Name, r.State)
			return result
		}
	}
	if err := x.e.cfg.Store.SaveRun(r, true, ev); err != nil {
		return err
	}
	x.e.cfg.Observer.Finished(x.wf.Name, r.State)
	return result
}

// event is the status-trail event of a finished run.
func (x *exec) event(status, reason string) state.Event {
	return state.Event{Client: x.msg.Client, ID: x.msg.ID, Type: x.msg.Type, Stage: "workflow",
		Status: "workflow_" + status, Reason: reason, At: x.e.cfg.Clock().UTC()}
}

// errNotSent marks a failure before the request left: nothing can have happened.
var errNotSent = errors.New("not sent")

func notSent(format string, args ...any) error {
	return fault.Permanent(fmt.Errorf("%w (%w)", fmt.Errorf(format, args...), errNotSent))
}

// call makes one HTTP call of a step or a compensation and classifies its answer.
func (x *exec) call(ctx context.Context, c *Call, key string) (int, []byte, error) {
	u, err := c.URL.render(ctx, x.doc, x.vars)
	if err != nil {
		return 0, nil, notSent("url: %w", err)
	}
	var body io.Reader
	if c.Body != nil {
		v, err := c.Body.Run(ctx, x.doc, x.vars)
		if err != nil {
			return 0, nil, notSent("body: %w", err)
		}
		b, err := format.Encode(v)
		if err != nil {
			return 0, nil, notSent("body: %w", err)
		}
		body = bytes.NewReader(b)
	}
	cctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, c.Method, u, body)
	if err != nil {
		return 0, nil, notSent("request: %w", err)
	}
	for k, t := range c.Headers {
		v, err := t.render(ctx, x.doc, x.vars)
		if err != nil {
			return 0, nil, notSent("header %s: %w", k, err)
		}
		if strings.ContainsAny(v, "\r\n") {
			return 0, nil, notSent("header %s: the value has a line break", k)
		}
		req.Header.Set(k, v)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("User-Agent", "weir-workflow")
	resp, err := x.wf.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, err
		}
		if cctx.Err() != nil {
			return 0, nil, fmt.Errorf("%s %s: no answer within %s", c.Method, redact(u), c.Timeout)
		}
		return 0, nil, fmt.Errorf("%s %s: %w", c.Method, redact(u), unwrapURL(err))
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	switch c.status(resp.StatusCode) {
	case 0:
		if rerr != nil {
			// The answer said yes but its body broke off: the effect happened; ask again
			// (idempotently) to read the answer.
			return resp.StatusCode, nil, fmt.Errorf("%s %s: reading the answer: %w", c.Method, redact(u), rerr)
		}
		return resp.StatusCode, b, nil
	case 1:
		return resp.StatusCode, nil, fmt.Errorf("%s %s: %w", c.Method, redact(u), &fault.StatusError{Code: resp.StatusCode, Body: snippet(b)})
	case 2:
		return resp.StatusCode, nil, fault.Permanent(fmt.Errorf("%s %s: %w", c.Method, redact(u), &fault.StatusError{Code: resp.StatusCode, Body: snippet(b)}))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// A 2xx the call does not count as success (its success list is narrower): permanent.
		return resp.StatusCode, nil, fault.Permanent(fmt.Errorf("%s %s: answered %d, not one of %v", c.Method, redact(u), resp.StatusCode, c.success))
	}
	return resp.StatusCode, nil, fmt.Errorf("%s %s: %w", c.Method, redact(u), fault.HTTP(resp.StatusCode, resp.Header.Get("Retry-After"), snippet(b)))
}

// response keeps an answer body for templates: JSON as it is, other text as a JSON string,
// nothing when it is too large.
func response(b []byte) json.RawMessage {
	if len(b) == 0 || len(b) > MaxResponse {
		return nil
	}
	if json.Valid(b) {
		return bytes.Clone(b)
	}
	s, _ := json.Marshal(string(b))
	return s
}

func snippet(b []byte) string {
	const max = 256
	if len(b) > max {
		b = b[:max]
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(b), ""))
}

func bounded(s string) string {
	const max = 512
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// redact drops the query of a URL for errors and logs: it may carry a token.
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

func unwrapURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
