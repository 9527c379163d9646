package crash

// R19: SIGKILL the real weir binary at every boundary of the Drone Delivery workflow — just
// before and just after each step's call, and just before and just after each compensation's
// call — restart it on the same data dir, and check at the demo services that every request ends
// with each effect applied exactly once (completed) or with every applied effect cancelled
// exactly once, in reverse order (compensated).
//
// Weir kills itself at the boundary: WEIR_FAILPOINTS (read by `weir serve`, for tests only)
// names it. The services run in the test process, so they outlive every incarnation of weir and
// keep the whole record. A step's call carries the Idempotency-Key <run id>.<step>, and the
// services answer a repeat with the first answer; a call repeated under another key is refused
// (409), which fails the run, and Check then reports the request broken or compensated rather
// than completed.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	dronedelivery "github.com/weirhq/weir/examples/drone-delivery"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/drone"
	"github.com/weirhq/weir/internal/state"
)

const (
	droneClient, droneToken = "drone-app", "drone-token" // the example's demo client
	deliveryType            = "delivery"
	flowRequests            = 3                // delivery requests per case
	failpointWait           = 20 * time.Second // how long weir may take to reach its failpoint
	flowSettle              = 30 * time.Second // every run finished after the restart
)

// flowSteps are the example workflow's steps in order; each is named like the service it calls.
var flowSteps = []string{"account", "package", "transport", "drone", "delivery"}

// flowCase is one boundary to crash at, with requests whose outcome is known in advance.
type flowCase struct {
	where, step string       // the failpoint is where:step
	svc         drone.Config // the services' faults
	ids         []string     // the requests' message ids
	want        drone.Outcome
	wantRun     string // the state every run must end in
}

func (c flowCase) failpoint() string { return c.where + ":" + c.step }

// compensating reports whether the boundary is a compensation's.
func (c flowCase) compensating() bool { return strings.HasPrefix(c.where, "compensate-") }

// TestWorkflowKillAtEveryStep is R19. For each of the ten step boundaries weir runs three
// delivery requests that complete; for each of the six compensation boundaries (package,
// transport and drone; account has no compensation, and the refused delivery has nothing to
// undo) three requests that the delivery service refuses for good, so that the three effects
// before it are compensated. Each case: a fresh data dir, weir started with the failpoint, the
// requests posted, weir dead by its own hand, restarted without the failpoint, every run
// finished; then each request must be completed (or compensated) at the services, and the
// services' record must show that the kill landed on the boundary: before it, no call of that
// step (or compensation) had been made; after it, one had, and it was made again after the
// restart — harmless only because it carried the same idempotency key.
func TestWorkflowKillAtEveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs the weir binary sixteen times over")
	}
	ids := make([]string, flowRequests)
	for i := range ids {
		ids[i] = fmt.Sprintf("d-%d", i)
	}
	var cases []flowCase
	for _, where := range []string{"before", "after"} {
		for _, step := range flowSteps {
			cases = append(cases, flowCase{where: where, step: step, ids: ids, want: drone.Completed, wantRun: state.RunCompleted})
		}
	}
	refusing := drone.Config{Permanent: 0.5, Seed: 20261122}
	refused := refusedBy(t, refusing, "delivery", flowRequests)
	for _, where := range []string{"compensate-before", "compensate-after"} {
		for _, step := range []string{"package", "transport", "drone"} {
			cases = append(cases, flowCase{where: where, step: step, svc: refusing, ids: refused, want: drone.Compensated, wantRun: state.RunFailed})
		}
	}
	for _, c := range cases {
		t.Run(c.failpoint(), func(t *testing.T) { killAtBoundary(t, c) })
	}
}

// refusedBy returns n message ids "cmp-0", "cmp-1", … whose runs service refuses for good
// under cfg.
func refusedBy(t *testing.T, cfg drone.Config, service string, n int) []string {
	t.Helper()
	svc := drone.New(cfg)
	var ids []string
	for i := 0; len(ids) < n; i++ {
		if i == 10_000 {
			t.Fatalf("no %d of the first 10,000 ids are refused by %s", n, service)
		}
		id := fmt.Sprintf("cmp-%d", i)
		if svc.RefusedBy(state.RunID(droneClient, deliveryType, id)) == service {
			ids = append(ids, id)
		}
	}
	return ids
}

func killAtBoundary(t *testing.T, c flowCase) {
	began := time.Now()
	svc := drone.New(c.svc)
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	w := newWeir(t, dir, writeDroneConfig(t, dir, srv.URL))
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

	// weir.start passes the test's environment on to the child; t.Setenv also covers the
	// restarts waitReady makes on fresh ports.
	t.Setenv("WEIR_FAILPOINTS", c.failpoint())
	w.start()
	w.waitReady()
	acked := postDeliveries(t, hc, w, c.ids)

	timer := time.NewTimer(failpointWait)
	defer timer.Stop()
	select {
	case <-w.exited:
	case <-timer.C:
		t.Fatalf("weir still running %v after the requests: it never reached %s", failpointWait, c.failpoint())
	}
	if !killedItself(w.exitErr) {
		t.Fatalf("weir exited with %v, not by its failpoint's SIGKILL", w.exitErr)
	}
	if at := "at=" + c.failpoint(); !strings.Contains(w.currentLog(), at) {
		t.Fatalf("weir was killed, but its log has no failpoint line with %s", at)
	}

	// Where the kill landed, from the services' record: a call of the step (or compensation)
	// must not have been made before the failpoint in front of it, and must have been made
	// before the one behind it.
	atKill := svc.Snapshot()
	made := atKill.Calls[c.step]
	if c.compensating() {
		made = cancels(atKill, c.step)
	}
	switch {
	case strings.HasSuffix(c.where, "before") && made != 0:
		t.Errorf("killed at %s, but %s had already been called %d times", c.failpoint(), c.step, made)
	case strings.HasSuffix(c.where, "after") && made == 0:
		t.Errorf("killed at %s, but %s had not been called", c.failpoint(), c.step)
	}

	t.Setenv("WEIR_FAILPOINTS", "")
	w.start()
	ready := w.waitReady()
	if !acked {
		// The kill cut the answer short; the client resends, which weir deduplicates by id.
		if !postDeliveries(t, hc, w, c.ids) {
			t.Fatal("resending the requests after the restart: no answer")
		}
	}
	counts := waitFlowRuns(t, hc, w, len(c.ids))
	w.terminate()

	snap := svc.Snapshot()
	answer := "received"
	if !acked {
		answer = "lost, resent"
	}
	t.Logf("%s: answer %s; ready again after %v; runs %v; calls %v; at the kill %v; %d effects; took %v",
		c.failpoint(), answer, ready.Round(time.Millisecond),
		counts, snap.Calls, atKill.Calls, len(snap.Effects), time.Since(began).Round(time.Millisecond))
	if counts[c.wantRun] != len(c.ids) {
		t.Errorf("runs %v: want all %d %s", counts, len(c.ids), c.wantRun)
	}
	for _, id := range c.ids {
		if o, why := svc.Check(state.RunID(droneClient, deliveryType, id)); o != c.want {
			t.Errorf("request %s: %v (%s), want %v", id, o, why, c.want)
		}
	}
	if snap.Conflicts != 0 {
		t.Errorf("%d calls changed their Idempotency-Key between attempts", snap.Conflicts)
	}
	// Behind the boundary the call was made before the kill and, its outcome lost, again after
	// the restart: more calls than one per request (two for a compensated service: the create
	// and the cancel). No fault is injected, so only the kill makes weir repeat a call.
	if c.where == "after" || c.where == "compensate-after" {
		once := len(c.ids)
		if c.compensating() {
			once *= 2
		}
		if snap.Calls[c.step] <= once {
			t.Errorf("killed at %s, yet %s saw %d calls for %d requests: the call was not made again after the restart",
				c.failpoint(), c.step, snap.Calls[c.step], len(c.ids))
		}
	}
}

// killedItself reports whether err says that the child died of a SIGKILL.
func killedItself(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// cancels counts the cancels service applied.
func cancels(snap drone.Snapshot, service string) int {
	n := 0
	for _, e := range snap.Effects {
		if e.Service == service && e.Op == "cancel" {
			n++
		}
	}
	return n
}

// writeDroneConfig writes examples/drone-delivery into dir, with the services at servicesURL,
// the data in dir/data and the retry schedules shortened, and returns the config's path.
func writeDroneConfig(t *testing.T, dir, servicesURL string) string {
	t.Helper()
	edits := append([]string{
		"data_dir: ${WEIR_DATA_DIR:-./weir-data}", "data_dir: data",
		"${DRONE_SERVICES:-http://127.0.0.1:9700}", servicesURL,
	}, dronedelivery.ShortRetries...)
	path, err := dronedelivery.Write(dir, edits...)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// postDeliveries posts one delivery request per id, each for its own customer, as one NDJSON
// batch. It returns true when weir accepted them all, false when no answer came (the failpoint
// may kill weir before it answers, once the batch is in the log); any other answer fails the test.
func postDeliveries(t *testing.T, hc *http.Client, w *weir, ids []string) bool {
	t.Helper()
	lines := make([]string, len(ids))
	for i, id := range ids {
		lines[i] = fmt.Sprintf(`{"id":%q,"customer":"c-%d","pickup":"12 Harbour St","dropoff":"7 Hill Rd","size":"small","weight":2.5}`, id, i)
	}
	req, err := http.NewRequest(http.MethodPost, w.baseURL()+"/v1/messages/"+deliveryType+"/batch", strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(droneClient, droneToken)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return false
	}
	var res struct {
		Accepted int `json:"accepted"`
	}
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &res) != nil || res.Accepted != len(ids) {
		t.Fatalf("posting %d delivery requests: %d %s", len(ids), resp.StatusCode, bytes.TrimSpace(b))
	}
	return true
}

// waitFlowRuns waits until n runs have finished and none is in flight, and returns the number
// of runs in each state.
func waitFlowRuns(t *testing.T, hc *http.Client, w *weir, n int) map[string]int {
	t.Helper()
	var page struct {
		Counts map[string]int `json:"counts"`
	}
	done := func() bool {
		time.Sleep(20 * time.Millisecond) // spare the admin listener
		adminGet(t, hc, w, "/v1/admin/workflows?limit=1", &page)
		c := page.Counts
		return c[state.RunRunning]+c[state.RunCompensating] == 0 &&
			c[state.RunCompleted]+c[state.RunFailed]+c[state.RunCompensationFailed] == n
	}
	if !pollUntil(flowSettle, done) {
		t.Fatalf("runs %v after %v: want %d finished, none in flight", page.Counts, flowSettle, n)
	}
	return page.Counts
}
