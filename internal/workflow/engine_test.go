package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/config"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/state"
)

// call is one request a test service saw.
type call struct {
	Method, Path, Key string
	Body              string
}

// service is a real HTTP server whose answers the test scripts per "METHOD /path".
type service struct {
	*httptest.Server
	mu      sync.Mutex
	calls   []call
	answers map[string][]int // status codes to answer in turn; the last one repeats
	bodies  map[string]string
	hook    func(r *http.Request) // runs before answering (e.g. a barrier)
}

func newService(t *testing.T) *service {
	s := &service{answers: map[string][]int{}, bodies: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if s.hook != nil {
			s.hook(r)
		}
		s.mu.Lock()
		s.calls = append(s.calls, call{Method: r.Method, Path: r.URL.RequestURI(), Key: r.Header.Get("Idempotency-Key"), Body: string(b)})
		k := r.Method + " " + r.URL.Path
		code := http.StatusOK
		if a := s.answers[k]; len(a) > 0 {
			code = a[0]
			if len(a) > 1 {
				s.answers[k] = a[1:]
			}
		}
		body := s.bodies[k]
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if body == "" {
			body = fmt.Sprintf(`{"path":%q}`, r.URL.Path)
		}
		io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *service) answer(route string, codes ...int) {
	s.mu.Lock()
	s.answers[route] = codes
	s.mu.Unlock()
}

func (s *service) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.calls))
	for i, c := range s.calls {
		out[i] = c.Method + " " + c.Path
	}
	return out
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// rig is an engine over a real embedded store.
type rig struct {
	t     *testing.T
	log   *embedded.Log
	store *state.Store
	eng   *Engine
	wf    *Workflow
	now   atomic.Pointer[time.Time]
	seq   int
}

// parse reads a workflow from YAML (the steps of the workflows[0] entry) with the config's
// defaults, the way `weir serve` does.
func parse(t *testing.T, yml string) (*config.Workflow, error) {
	t.Helper()
	full := fmt.Sprintf(`
clients:
  - {id: acme, token_hash: "sha256:%s", types: [order]}
types:
  - name: order
    pipeline: {workflow: wf}
workflows:
  - name: wf
%s`, strings.Repeat("ab", 32), indent(yml, "    "))
	cfg, err := config.Parse([]byte(full), t.TempDir(), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, err
	}
	return &cfg.Workflows[0], nil
}

func indent(s, pre string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

func newRig(t *testing.T, yml string) *rig {
	t.Helper()
	w, err := parse(t, yml)
	if err != nil {
		t.Fatal(err)
	}
	wf, err := Compile(w, "workflows[0]")
	if err != nil {
		t.Fatal(err)
	}
	wf.Client = deliver.HTTPClient(16, true)
	l, err := embedded.Open(embedded.Config{Dir: filepath.Join(t.TempDir(), "log"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	st, err := state.New(l)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, log: l, store: st, wf: wf}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	r.now.Store(&now)
	r.restart("")
	return r
}

// restart builds a new engine over the same store, as a restarted process would.
func (r *rig) restart(failpoints string) {
	r.eng = New(Config{Store: r.store, Topic: "workflow", Flows: map[string]*Workflow{"order": r.wf}, Failpoints: failpoints,
		Clock: func() time.Time { return *r.now.Load() }, Logger: quiet})
}

func (r *rig) advance(d time.Duration) {
	n := r.now.Load().Add(d)
	r.now.Store(&n)
}

var received = time.Unix(1_800_000_000, 0).UTC()

func (r *rig) record(id, payload string) buffer.Record {
	return r.recordAt(id, payload, received)
}

// recordAt is record for a message accepted at another time (an id used again).
func (r *rig) recordAt(id, payload string, at time.Time) buffer.Record {
	r.seq++
	m := message.Message{ID: id, Client: "acme", Type: "order", Key: id, ReceivedAt: at, Payload: []byte(payload)}
	return buffer.Record{Partition: 0, Offset: uint64(r.seq), Key: []byte(id), Value: m.Encode()}
}

// handle runs one handling of rec and returns its error.
func (r *rig) handle(rec buffer.Record) error {
	errs := r.eng.Handle(context.Background(), []buffer.Record{rec})
	if errs == nil {
		return nil
	}
	return errs[0]
}

// drive handles rec until it no longer asks for a retry (the retry machinery's part), at most
// n times, and returns the last error.
func (r *rig) drive(rec buffer.Record, n int) error {
	for range n {
		err := r.handle(rec)
		wait, retry := fault.RetryAfter(err)
		if !retry {
			return err
		}
		r.advance(wait)
	}
	r.t.Fatalf("still retrying after %d handlings", n)
	return nil
}

func (r *rig) run(id string) *state.Run {
	r.t.Helper()
	run, err := r.store.WorkflowRun(state.RunID("acme", "order", id))
	if err != nil {
		r.t.Fatal(err)
	}
	return run
}

func steps(run *state.Run) string {
	var parts []string
	for _, s := range run.Steps {
		p := s.Name + "=" + s.Status
		if s.Compensation != nil {
			p += "/" + s.Compensation.Status
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

const threeSteps = `
retry: {schedule: [10ms, 10ms, 10ms]}
steps:
  - name: account
    url: "%[1]s/accounts/{{ .message.customer }}?request={{ .workflow.message_id }}"
  - name: package
    method: PUT
    url: "%[1]s/packages/{{ .workflow.id }}"
    body: '{size: .message.size, account: .steps.account.body.path}'
    compensate: {method: DELETE, url: "%[1]s/packages/{{ .workflow.id }}"}
  - name: drone
    method: PUT
    url: "%[1]s/drones/{{ .workflow.id }}"
    body: '{package: .steps.package.body.path}'
    compensate: {method: DELETE, url: "%[1]s/drones/{{ .workflow.id }}"}
  - name: delivery
    method: PUT
    url: "%[1]s/deliveries/{{ .workflow.id }}"
    headers: {X-Customer: "{{ .message.customer }}"}
`

func TestStepsRunInOrderWithTemplatesAndIdempotencyKeys(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(threeSteps, svc.URL))
	if err := r.handle(r.record("o-1", `{"customer":"c 1","size":3}`)); err != nil {
		t.Fatal(err)
	}
	run := r.run("o-1")
	if run.State != state.RunCompleted || steps(run) != "account=succeeded package=succeeded drone=succeeded delivery=succeeded" {
		t.Fatalf("run %s: %s", run.State, steps(run))
	}
	id := run.ID
	want := []string{"GET /accounts/c%201?request=o-1", "PUT /packages/" + id, "PUT /drones/" + id, "PUT /deliveries/" + id}
	if got := svc.seen(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("calls:\n got %v\nwant %v", got, want)
	}
	for i, c := range svc.calls {
		if wantKey := id + "." + run.Steps[i].Name; c.Key != wantKey {
			t.Errorf("call %d: Idempotency-Key %q, want %q", i, c.Key, wantKey)
		}
	}
	if b := svc.calls[1].Body; b != `{"account":"/accounts/c 1","size":3}` {
		t.Errorf("package body %s", b)
	}
	if b := svc.calls[2].Body; b != `{"package":"/packages/`+id+`"}` {
		t.Errorf("drone body %s", b)
	}
	// Handled again (a redelivery after a crash before the commit): no call at all.
	if err := r.handle(r.record("o-1", `{"customer":"c 1","size":3}`)); err != nil {
		t.Fatal(err)
	}
	if n := len(svc.seen()); n != 4 {
		t.Fatalf("a finished run called again: %d calls", n)
	}
	trail, _ := r.store.Trail("acme", "o-1")
	if len(trail) != 1 || trail[0].Status != state.StatusWorkflowCompleted {
		t.Fatalf("trail %+v", trail)
	}
}

func TestPermanentFailureCompensatesCompletedStepsInReverse(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(threeSteps, svc.URL))
	svc.answer("PUT /deliveries/"+state.RunID("acme", "order", "o-2"), http.StatusUnprocessableEntity)
	if err := r.handle(r.record("o-2", `{"customer":"c","size":1}`)); err != nil {
		t.Fatal(err)
	}
	run := r.run("o-2")
	if run.State != state.RunFailed || !strings.Contains(run.Reason, "step delivery failed") || !strings.Contains(run.Reason, "422") {
		t.Fatalf("run %s (%s): %s", run.State, run.Reason, steps(run))
	}
	got := svc.seen()[4:]
	want := []string{"DELETE /drones/" + run.ID, "DELETE /packages/" + run.ID}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("compensations %v, want %v", got, want)
	}
	if k := svc.calls[4].Key; k != run.ID+".drone.compensate" {
		t.Errorf("compensation key %q", k)
	}
	if steps(run) != "account=succeeded package=succeeded/compensated drone=succeeded/compensated delivery=failed" {
		t.Fatalf("steps %s", steps(run))
	}
}

func TestTransientFailuresRetryTheStepOnly(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(threeSteps, svc.URL))
	id := state.RunID("acme", "order", "o-3")
	svc.answer("PUT /drones/"+id, 503, 503, 200)
	rec := r.record("o-3", `{"customer":"c","size":1}`)
	err := r.handle(rec)
	wait, retry := fault.RetryAfter(err)
	if !retry || fault.IsPermanent(err) || wait < 9*time.Millisecond || wait > 11*time.Millisecond {
		t.Fatalf("first handling: %v (wait %v)", err, wait)
	}
	if run := r.run("o-3"); run.Steps[2].Status != state.StepRetrying || run.Steps[2].Attempts != 1 || run.Steps[2].Code != 503 {
		t.Fatalf("after a 503: %+v", run.Steps[2])
	}
	if err := r.drive(rec, 5); err != nil {
		t.Fatal(err)
	}
	run := r.run("o-3")
	if run.State != state.RunCompleted || run.Steps[2].Attempts != 3 {
		t.Fatalf("run %s, drone attempts %d", run.State, run.Steps[2].Attempts)
	}
	calls := strings.Join(svc.seen(), "|")
	if strings.Count(calls, "/accounts/") != 1 || strings.Count(calls, "PUT /packages/") != 1 || strings.Count(calls, "PUT /drones/") != 3 {
		t.Fatalf("a recorded step was called again: %v", calls)
	}
}

func TestExhaustedStepIsCompensatedToo(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(threeSteps, svc.URL))
	id := state.RunID("acme", "order", "o-4")
	svc.answer("PUT /drones/"+id, 503)
	if err := r.drive(r.record("o-4", `{"customer":"c","size":1}`), 10); err != nil {
		t.Fatal(err)
	}
	run := r.run("o-4")
	// 4 attempts (schedule of 3 delays); the drone may have been scheduled by an attempt whose
	// answer was lost, so its compensation runs as well.
	if run.State != state.RunFailed || run.Steps[2].Attempts != 4 || !strings.Contains(run.Reason, "gave up after 4 attempts") {
		t.Fatalf("run %s (%s) drone attempts %d", run.State, run.Reason, run.Steps[2].Attempts)
	}
	if steps(run) != "account=succeeded package=succeeded/compensated drone=failed/compensated delivery=pending" {
		t.Fatalf("steps %s", steps(run))
	}
}

func TestParallelGroupRunsConcurrentlyAndFeedsTheNextStep(t *testing.T) {
	svc := newService(t)
	var arrived sync.WaitGroup
	arrived.Add(2)
	both := make(chan struct{})
	go func() { arrived.Wait(); close(both) }()
	svc.hook = func(r *http.Request) {
		if r.URL.Path == "/a" || r.URL.Path == "/b" {
			arrived.Done()
			select {
			case <-both: // the other call of the group is in flight at the same time
			case <-time.After(5 * time.Second):
			}
		}
	}
	r := newRig(t, fmt.Sprintf(`
steps:
  - parallel:
      - {name: a, method: PUT, url: "%[1]s/a", body: '{}'}
      - {name: b, method: PUT, url: "%[1]s/b", body: '{}'}
  - name: c
    method: POST
    url: "%[1]s/c"
    body: '[.steps.a.body.path, .steps.b.body.path]'
`, svc.URL))
	if err := r.handle(r.record("p-1", `{}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-both:
	default:
		t.Fatal("the steps of the group did not run at the same time")
	}
	run := r.run("p-1")
	if run.State != state.RunCompleted {
		t.Fatalf("run %s: %s", run.State, steps(run))
	}
	if b := svc.calls[2].Body; b != `["/a","/b"]` {
		t.Fatalf("step c saw %s", b)
	}
}

func TestConditionSkipsAStep(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(`
steps:
  - {name: a, url: "%[1]s/a"}
  - {name: express, when: '.message.express == true', method: PUT, url: "%[1]s/express", body: '{}'}
  - {name: c, url: "%[1]s/c"}
`, svc.URL))
	if err := r.handle(r.record("s-1", `{"express":false}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.handle(r.record("s-2", `{"express":true}`)); err != nil {
		t.Fatal(err)
	}
	if got := steps(r.run("s-1")); got != "a=succeeded express=skipped c=succeeded" {
		t.Fatalf("s-1: %s", got)
	}
	if got := steps(r.run("s-2")); got != "a=succeeded express=succeeded c=succeeded" {
		t.Fatalf("s-2: %s", got)
	}
	if n := strings.Count(strings.Join(svc.seen(), "|"), "/express"); n != 1 {
		t.Fatalf("express called %d times", n)
	}
}

func TestTemplateErrorFailsTheRunWithAClearReason(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(`
steps:
  - {name: a, method: PUT, url: "%[1]s/a", body: '{}', compensate: {method: DELETE, url: "%[1]s/a"}}
  - {name: b, method: PUT, url: "%[1]s/b/{{ .message.missing }}", body: '{}'}
`, svc.URL))
	if err := r.handle(r.record("t-1", `{}`)); err != nil {
		t.Fatal(err)
	}
	run := r.run("t-1")
	if run.State != state.RunFailed || !strings.Contains(run.Reason, "step b failed: url: a template value is null") {
		t.Fatalf("run %s: %q", run.State, run.Reason)
	}
	if got := strings.Join(svc.seen(), "|"); got != "PUT /a|DELETE /a" {
		t.Fatalf("calls %s", got)
	}
}

func TestTimeoutCompensates(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(`
timeout: 1m
retry: {schedule: [30s]}
steps:
  - {name: a, method: PUT, url: "%[1]s/a", body: '{}', compensate: {method: DELETE, url: "%[1]s/a"}}
  - {name: b, method: PUT, url: "%[1]s/b", body: '{}'}
`, svc.URL))
	svc.answer("PUT /b", 503)
	rec := r.record("to-1", `{}`)
	if _, retry := fault.RetryAfter(r.handle(rec)); !retry {
		t.Fatal("expected a retry")
	}
	r.advance(2 * time.Minute) // the retry falls due after the deadline
	if err := r.handle(rec); err != nil {
		t.Fatal(err)
	}
	run := r.run("to-1")
	if run.State != state.RunFailed || !strings.Contains(run.Reason, "timed out") {
		t.Fatalf("run %s: %q", run.State, run.Reason)
	}
	if got := strings.Join(svc.seen(), "|"); got != "PUT /a|PUT /b|DELETE /a" {
		t.Fatalf("calls %s", got)
	}
}

func TestCompensationThatCannotSucceedIsDeadLetteredAndReplayable(t *testing.T) {
	svc := newService(t)
	var notified []string
	r := newRig(t, fmt.Sprintf(`
compensation_retry: {schedule: [10ms]}
steps:
  - {name: a, method: PUT, url: "%[1]s/a", body: '{}', compensate: {method: DELETE, url: "%[1]s/a"}}
  - {name: b, method: PUT, url: "%[1]s/b", body: '{}', compensate: {method: DELETE, url: "%[1]s/b"}}
  - {name: c, method: PUT, url: "%[1]s/c", body: '{}'}
`, svc.URL))
	r.wf.Notify = "ops"
	r.eng.cfg.Notify = func(run *state.Run, ep string) (string, []buffer.Message) {
		notified = append(notified, run.State)
		return "ops", []buffer.Message{{Key: []byte(run.ID), Value: []byte(run.State)}}
	}
	if err := r.log.EnsureTopic(context.Background(), buffer.TopicConfig{Name: "ops", Partitions: 1, Groups: []string{"ops"}}); err != nil {
		t.Fatal(err)
	}
	svc.answer("PUT /c", 400)
	svc.answer("DELETE /b", 503) // never succeeds within its schedule
	rec := r.record("c-1", `{}`)
	err := r.drive(rec, 5)
	if !fault.IsPermanent(err) || !strings.Contains(err.Error(), "compensation of b could not succeed") {
		t.Fatalf("handler error %v", err)
	}
	run := r.run("c-1")
	if run.State != state.RunCompensationFailed || steps(run) != "a=succeeded/compensated b=succeeded/compensation_failed c=failed" {
		t.Fatalf("run %s: %s", run.State, steps(run))
	}
	// Fixed by hand, then replayed from the dead letters: the compensation runs again.
	svc.answer("DELETE /b", 200)
	if err := r.drive(rec, 3); err != nil {
		t.Fatal(err)
	}
	run = r.run("c-1")
	if run.State != state.RunFailed || steps(run) != "a=succeeded/compensated b=succeeded/compensated c=failed" {
		t.Fatalf("after replay %s: %s", run.State, steps(run))
	}
	if strings.Count(strings.Join(svc.seen(), "|"), "DELETE /a") != 1 {
		t.Fatalf("a compensated twice: %v", svc.seen())
	}
	if strings.Join(notified, ",") != "compensation_failed,failed" {
		t.Fatalf("notified %v", notified)
	}
}

func TestResumesFromTheLastRecordedStep(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(threeSteps, svc.URL))
	id := state.RunID("acme", "order", "r-1")
	svc.answer("PUT /drones/"+id, 503, 200)
	rec := r.record("r-1", `{"customer":"c","size":1}`)
	if _, retry := fault.RetryAfter(r.handle(rec)); !retry {
		t.Fatal("expected a retry")
	}
	r.restart("") // a new process over the same store
	if err := r.drive(rec, 3); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(svc.seen(), "|"); strings.Count(got, "/accounts/") != 1 || strings.Count(got, "PUT /packages/") != 1 {
		t.Fatalf("resumed run called finished steps again: %s", got)
	}
	if run := r.run("r-1"); run.State != state.RunCompleted {
		t.Fatalf("run %s", run.State)
	}
}

func TestStepsAfterAShutdownAreNotCountedAsFailures(t *testing.T) {
	svc := newService(t)
	block := make(chan struct{})
	svc.hook = func(r *http.Request) {
		if r.URL.Path == "/slow" {
			<-block
		}
	}
	defer close(block)
	r := newRig(t, fmt.Sprintf(`
steps:
  - {name: slow, url: "%[1]s/slow"}
`, svc.URL))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	errs := r.eng.Handle(ctx, []buffer.Record{r.record("sd-1", `{}`)})
	if errs == nil || !errors.Is(errs[0], context.Canceled) {
		t.Fatalf("errs %v", errs)
	}
	// Nothing recorded: the first step never had an outcome, so the run starts afresh.
	if run, err := r.store.WorkflowRun(state.RunID("acme", "order", "sd-1")); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("a shutdown was recorded: %+v %v", run, err)
	}
}

func TestRunIsJSONForTheAPI(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(threeSteps, svc.URL))
	if err := r.handle(r.record("j-1", `{"customer":"c","size":1}`)); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r.run("j-1"))
	for _, want := range []string{`"state":"completed"`, `"name":"drone"`, `"attempts":1`, `"status_code":200`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s missing from %s", want, b)
		}
	}
}

// A step waiting for its retry when the run fails may have acted (its answer was a 503): it is
// compensated too — here the run times out while b waits.
func TestTimeoutCompensatesAStepWaitingForItsRetry(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(`
timeout: 1m
retry: {schedule: [30s]}
steps:
  - {name: a, method: PUT, url: "%[1]s/a", body: '{}', compensate: {method: DELETE, url: "%[1]s/a"}}
  - {name: b, method: PUT, url: "%[1]s/b", body: '{}', compensate: {method: DELETE, url: "%[1]s/b"}}
`, svc.URL))
	svc.answer("PUT /b", 503)
	rec := r.record("tw-1", `{}`)
	if _, retry := fault.RetryAfter(r.handle(rec)); !retry {
		t.Fatal("expected a retry")
	}
	r.advance(2 * time.Minute)
	if err := r.handle(rec); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(svc.seen(), "|"); got != "PUT /a|PUT /b|DELETE /b|DELETE /a" {
		t.Fatalf("calls %s", got)
	}
}

// In a parallel group, a permanent failure of one step compensates a sibling that got a 503.
func TestParallelFailureCompensatesAnUnsureSibling(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(`
steps:
  - parallel:
      - {name: a, method: PUT, url: "%[1]s/a", body: '{}', compensate: {method: DELETE, url: "%[1]s/a"}}
      - {name: b, method: PUT, url: "%[1]s/b", body: '{}', compensate: {method: DELETE, url: "%[1]s/b"}}
`, svc.URL))
	svc.answer("PUT /a", 422)
	svc.answer("PUT /b", 503)
	if err := r.handle(r.record("pf-1", `{}`)); err != nil {
		t.Fatal(err)
	}
	calls := strings.Join(svc.seen(), "|")
	if !strings.Contains(calls, "DELETE /b") || strings.Contains(calls, "DELETE /a") {
		t.Fatalf("calls %s: want b undone (its answer was a 503), a not (refused)", calls)
	}
}

// A step whose request never left (a template error) did nothing: its compensation does not run.
func TestUnsentStepIsNotCompensated(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(`
steps:
  - {name: a, method: PUT, url: "%[1]s/a/{{ .message.missing }}", body: '{}', compensate: {method: DELETE, url: "%[1]s/a"}}
`, svc.URL))
	if err := r.handle(r.record("ns-1", `{}`)); err != nil {
		t.Fatal(err)
	}
	if got := svc.seen(); len(got) != 0 {
		t.Fatalf("calls %v", got)
	}
	if run := r.run("ns-1"); run.State != state.RunFailed {
		t.Fatalf("run %s", run.State)
	}
}

// A sibling's short retry does not call a step before its own Retry-After.
func TestParallelRetriesKeepEachStepsPace(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(`
retry: {schedule: [10ms, 10ms, 10ms, 10ms], jitter: 0}
steps:
  - parallel:
      - {name: a, method: PUT, url: "%[1]s/a", body: '{}'}
      - {name: b, method: PUT, url: "%[1]s/b", body: '{}'}
`, svc.URL))
	svc.answer("PUT /a", 503, 503, 200)
	svc.hook = func(req *http.Request) {}
	svc.answer("PUT /b", 429, 200)
	svc.bodies["PUT /b"] = `{}`
	rec := r.record("pp-1", `{}`)
	// b's 429 carries no Retry-After here, so make its own schedule the slow one: a minute.
	r.wf.Groups[0][1].Policy.Schedule = []time.Duration{time.Minute}
	for range 3 {
		err := r.handle(rec)
		wait, retry := fault.RetryAfter(err)
		if !retry {
			break
		}
		r.advance(wait)
	}
	if n := strings.Count(strings.Join(svc.seen(), "|"), "PUT /b"); n != 1 {
		t.Fatalf("b called %d times before its minute was up: %v", n, svc.seen())
	}
}

// An id used again after its receipt expired is a new message: a new run, not the old one's
// finished record.
func TestReusedIdAfterExpiryStartsANewRun(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(threeSteps, svc.URL))
	if err := r.handle(r.record("ru-1", `{"customer":"c","size":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := r.handle(r.recordAt("ru-1", `{"customer":"c","size":2}`, received.Add(8*24*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(svc.seen(), "|"), "/accounts/"); n != 2 {
		t.Fatalf("account checked %d times, want 2 (two messages)", n)
	}
	if c, _ := r.store.CountRuns(state.RunCompleted); c != 1 {
		t.Fatalf("%d completed runs indexed, want 1", c)
	}
}

// A run whose message was dead-lettered (compensation failed) does nothing when the message is
// handled again before the stage committed; only a replay (which clears the mark) retries.
func TestCompensationFailedRunIgnoresARedelivery(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(`
compensation_retry: {schedule: [10ms]}
steps:
  - {name: a, method: PUT, url: "%[1]s/a", body: '{}', compensate: {method: DELETE, url: "%[1]s/a"}}
  - {name: b, method: PUT, url: "%[1]s/b", body: '{}'}
`, svc.URL))
	svc.answer("PUT /b", 400)
	svc.answer("DELETE /a", 400)
	rec := r.record("cf-1", `{}`)
	if err := r.drive(rec, 5); !fault.IsPermanent(err) {
		t.Fatalf("handler error %v", err)
	}
	// The retry machinery dead-lettered it: its failure mark is final.
	if err := r.store.Failures(state.Failures{Marks: []state.Mark{{Topic: "workflow", Client: "acme", Type: "order", ID: "cf-1",
		ReceivedAt: received, Failed: state.MarkFinal}}}); err != nil {
		t.Fatal(err)
	}
	before := len(svc.seen())
	if err := r.handle(rec); err != nil {
		t.Fatal(err)
	}
	if after := len(svc.seen()); after != before {
		t.Fatalf("a redelivery made %d calls", after-before)
	}
	if run := r.run("cf-1"); run.State != state.RunCompensationFailed {
		t.Fatalf("run %s", run.State)
	}
}

// An id reused while the earlier message's run awaits manual handling waits as a dead letter
// too (a permanent error naming the way out), instead of retrying forever.
func TestReusedIdBehindACompensationFailedRun(t *testing.T) {
	svc := newService(t)
	r := newRig(t, fmt.Sprintf(`
compensation_retry: {schedule: [10ms]}
steps:
  - {name: a, method: PUT, url: "%[1]s/a", body: '{}', compensate: {method: DELETE, url: "%[1]s/a"}}
  - {name: b, method: PUT, url: "%[1]s/b", body: '{}'}
`, svc.URL))
	svc.answer("PUT /b", 400)
	svc.answer("DELETE /a", 400)
	if err := r.drive(r.record("rc-1", `{}`), 5); !fault.IsPermanent(err) {
		t.Fatalf("first message: %v", err)
	}
	err := r.handle(r.recordAt("rc-1", `{}`, received.Add(8*24*time.Hour)))
	if !fault.IsPermanent(err) || !strings.Contains(err.Error(), "DELETE /v1/admin/workflows/") {
		t.Fatalf("reused id: %v", err)
	}
}
