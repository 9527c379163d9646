package app_test

import (
	"encoding/json"
	"fmt"
	dronedelivery "github.com/weirhq/weir/examples/drone-delivery"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/app"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/drone"
	"github.com/weirhq/weir/internal/partner"
	"github.com/weirhq/weir/internal/pipeline"
	"github.com/weirhq/weir/internal/state"
)

// startDroneExample runs weir on examples/drone-delivery/weir.yaml against the demo services,
// with the example's retry schedules shortened (so that a test does not wait minutes for a
// step that failed four times in a row) and a second client for the isolation checks.
func startDroneExample(t *testing.T, svc *drone.Services, edits ...string) *harness {
	t.Helper()
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	t.Setenv("DRONE_SERVICES", srv.URL)
	sec, err := deliver.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	rcv := partner.New(partner.Config{Secrets: [][]byte{sec}})
	ops := httptest.NewServer(rcv)
	t.Cleanup(ops.Close)
	t.Setenv("OPS_URL", ops.URL+"/webhook")
	t.Setenv("WEIR_DATA_DIR", t.TempDir())
	edits = append(append(edits, dronedelivery.ShortRetries...),
		"    types: [delivery]\n", fmt.Sprintf("    types: [delivery]\n  - id: other\n    token_hash: %s\n    types: [delivery]\n", app.HashToken("other-token")))
	path, err := dronedelivery.Write(t.TempDir(), edits...)
	if err != nil {
		t.Fatal(err)
	}
	return launch(t, path, rcv)
}

func delivery(id, customer string) string {
	return fmt.Sprintf(`{"id":%q,"customer":%q,"pickup":"12 Harbour St","dropoff":"7 Hill Rd","size":"small","weight":2.5}`, id, customer)
}

// runCounts reads the number of runs in each state from the admin API.
func (h *harness) runCounts() map[string]int {
	h.t.Helper()
	a := h.admin().do("GET", "/v1/admin/workflows?limit=1", "", "", "", nil)
	if a.code != 200 {
		h.t.Fatalf("workflows: %d %s", a.code, a.raw)
	}
	var page struct {
		Counts map[string]int `json:"counts"`
	}
	if err := json.Unmarshal([]byte(a.raw), &page); err != nil {
		h.t.Fatal(err)
	}
	return page.Counts
}

// waitRuns waits until n runs finished and none is in flight.
func (h *harness) waitRuns(n int, within time.Duration) map[string]int {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		c := h.runCounts()
		if c[state.RunRunning]+c[state.RunCompensating] == 0 && c[state.RunCompleted]+c[state.RunFailed]+c[state.RunCompensationFailed] == n {
			return c
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("runs after %s: %v (want %d finished, none in flight)", within, c, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// 10,000 delivery requests against services with 5% transient and 1% permanent failures: each
// ends completed with each of its effects exactly once, or failed with every completed step
// compensated exactly once, in reverse order; nothing is left in flight.
func TestDroneDeliveryTenThousandRequests(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 1_000
	}
	svc := drone.New(drone.Config{MaxLatency: 2 * time.Millisecond, Transient: 0.05, Permanent: 0.01, Seed: 20261122})
	h := startDroneExample(t, svc)
	ids := make([]string, n)
	const batch = 500
	for i := 0; i < n; i += batch {
		var lines []string
		for j := i; j < min(i+batch, n); j++ {
			ids[j] = fmt.Sprintf("d-%05d", j)
			lines = append(lines, delivery(ids[j], fmt.Sprintf("c-%d", j%400)))
		}
		a := h.do("POST", "/v1/messages/delivery/batch", "drone-app", "drone-token", "application/x-ndjson", []byte(strings.Join(lines, "\n")))
		if a.code != 202 || a.body["accepted"] != float64(len(lines)) {
			t.Fatalf("batch at %d: %d %s", i, a.code, a.raw)
		}
	}
	counts := h.waitRuns(n, 5*time.Minute)

	outcomes := map[drone.Outcome]int{}
	var broken []string
	for _, id := range ids {
		rid := state.RunID("drone-app", "delivery", id)
		o, why := svc.Check(rid)
		outcomes[o]++
		if o == drone.Broken && len(broken) < 10 {
			broken = append(broken, id+": "+why)
		}
	}
	snap := svc.Snapshot()
	t.Logf("runs %v; services: %d completed, %d compensated, %d broken; %d effects, calls %v, %d refused",
		counts, outcomes[drone.Completed], outcomes[drone.Compensated], outcomes[drone.Broken], len(snap.Effects), snap.Calls, len(snap.Refused))
	if len(broken) > 0 {
		t.Fatalf("%d requests broken, e.g.:\n%s", outcomes[drone.Broken], strings.Join(broken, "\n"))
	}
	if outcomes[drone.Completed] != counts[state.RunCompleted] || outcomes[drone.Compensated] != counts[state.RunFailed] || counts[state.RunCompensationFailed] != 0 {
		t.Fatalf("weir's runs %v disagree with the services' effects %v", counts, outcomes)
	}
	if snap.Conflicts != 0 {
		t.Fatalf("%d calls changed their Idempotency-Key between attempts", snap.Conflicts)
	}
	// The permanent failures are about 1% of the requests; each made its run fail.
	if f := counts[state.RunFailed]; f != len(snap.Refused) || f < n/200 || f > n/50 {
		t.Fatalf("%d failed runs for %d refusals (about %d expected)", f, len(snap.Refused), n/100)
	}
	if snap.Calls["account"] <= n {
		t.Fatalf("no transient failure was retried: %v", snap.Calls)
	}
}

// The owner reads its run by message id; another client gets the same 404 as for an unknown id.
func TestWorkflowStatusIsOwnerOnly(t *testing.T) {
	svc := drone.New(drone.Config{})
	h := startDroneExample(t, svc)
	if a := h.do("POST", "/v1/messages/delivery", "drone-app", "drone-token", "application/json", []byte(delivery("w-1", "c-1"))); a.code != 202 {
		t.Fatalf("post: %d %s", a.code, a.raw)
	}
	h.waitRuns(1, 30*time.Second)
	a := h.do("GET", "/v1/workflows/w-1", "drone-app", "drone-token", "", nil)
	if a.code != 200 || a.body["state"] != state.RunCompleted || a.body["id"] != state.RunID("drone-app", "delivery", "w-1") {
		t.Fatalf("owner: %d %s", a.code, a.raw)
	}
	steps, _ := a.body["steps"].([]any)
	if len(steps) != 5 {
		t.Fatalf("steps: %s", a.raw)
	}
	for _, s := range steps {
		st := s.(map[string]any)
		if st["status"] != state.StepSucceeded || st["attempts"] != float64(1) || st["started_at"] == nil || st["finished_at"] == nil {
			t.Fatalf("step %v", st)
		}
	}
	if a := h.do("GET", "/v1/workflows/"+state.RunID("drone-app", "delivery", "w-1"), "drone-app", "drone-token", "", nil); a.code != 200 {
		t.Fatalf("by run id: %d", a.code)
	}
	other := h.do("GET", "/v1/workflows/w-1", "other", "other-token", "", nil)
	unknown := h.do("GET", "/v1/workflows/nope", "other", "other-token", "", nil)
	if other.code != 404 || unknown.code != 404 || other.raw != unknown.raw {
		t.Fatalf("another client: %d %s; unknown: %d %s", other.code, other.raw, unknown.code, unknown.raw)
	}
	if a := h.do("GET", "/v1/workflows/"+state.RunID("drone-app", "delivery", "w-1"), "other", "other-token", "", nil); a.code != 404 {
		t.Fatalf("another client by run id: %d", a.code)
	}
	if a := h.do("GET", "/v1/messages/w-1", "drone-app", "drone-token", "", nil); a.body["status"] != state.StatusCompleted {
		t.Fatalf("message status: %s", a.raw)
	}
	if a := h.admin().do("GET", "/v1/admin/workflows/"+state.RunID("drone-app", "delivery", "w-1"), "", "", "", nil); a.code != 200 || a.body["message_id"] != "w-1" {
		t.Fatalf("admin: %d %s", a.code, a.raw)
	}
}

// A failed run announces itself to the workflow's notify endpoint (a signed workflow.failed
// event with the reason and each step's state), and the metrics count runs by outcome.
func TestWorkflowFailureNotifiesAndCounts(t *testing.T) {
	svc := drone.New(drone.Config{Permanent: 0.5, Seed: 3})
	h := startDroneExample(t, svc,
		"    # notify: ops ", "    notify: ops   ",
		"\nworkflows:", fmt.Sprintf("\nendpoints:\n  - {name: ops, url: \"${OPS_URL}\", secret: %q, allow_private: true}\nworkflows:", secret))
	var failed, completed []string
	for i := 0; len(failed) < 2 || len(completed) < 2; i++ {
		id := fmt.Sprintf("n-%d", i)
		if by := svc.RefusedBy(state.RunID("drone-app", "delivery", id)); by == "drone" && len(failed) < 2 {
			failed = append(failed, id)
		} else if by == "" && len(completed) < 2 {
			completed = append(completed, id)
		} else {
			continue
		}
		if a := h.do("POST", "/v1/messages/delivery", "drone-app", "drone-token", "application/json", []byte(delivery(id, "c-"+id))); a.code != 202 {
			t.Fatalf("post %s: %d %s", id, a.code, a.raw)
		}
	}
	h.waitRuns(4, 30*time.Second)
	eventually(t, "two workflow.failed events", func() bool { return h.partner.Unique() == 2 })
	for _, d := range h.partner.Deliveries() {
		var ev struct {
			Type string    `json:"type"`
			Data state.Run `json:"data"`
		}
		if err := json.Unmarshal(d.Body, &ev); err != nil {
			t.Fatal(err)
		}
		r := ev.Data
		if ev.Type != app.EventWorkflowFailed || r.State != state.RunFailed || !strings.Contains(r.Reason, "step drone failed") ||
			(r.MessageID != failed[0] && r.MessageID != failed[1]) {
			t.Fatalf("event %s", d.Body)
		}
		// An operations event like a dead-letter notification: one webhook-id per run.
		if want := pipeline.WebhookID("weir", "weir.operations", "wf_failed_"+r.ID); d.ID != want {
			t.Fatalf("workflow.failed for run %s: webhook-id %s, want %s", r.ID, d.ID, want)
		}
		for _, st := range r.Steps[1:3] { // package and transport were undone
			if st.Compensation == nil || st.Compensation.Status != state.StepCompensated {
				t.Fatalf("step %s in the event: %+v", st.Name, st)
			}
		}
	}
	for _, id := range failed {
		if o, why := svc.Check(state.RunID("drone-app", "delivery", id)); o != drone.Compensated {
			t.Fatalf("%s: %v %s", id, o, why)
		}
	}
	m := h.admin().do("GET", "/metrics", "", "", "", nil).raw
	for _, want := range []string{
		`weir_workflow_runs_total{state="started",workflow="schedule-delivery"} 4`,
		`weir_workflow_runs_total{state="completed",workflow="schedule-delivery"} 2`,
		`weir_workflow_runs_total{state="failed",workflow="schedule-delivery"} 2`,
		`weir_workflow_runs_total{state="compensated",workflow="schedule-delivery"} 2`,
		`weir_workflow_runs_in_flight{workflow="schedule-delivery"} 0`,
		`weir_workflow_call_seconds_count{outcome="compensated",step="package",workflow="schedule-delivery"} 2`,
		`weir_stage_lag{partition="0",stage="workflow"} 0`,
		`weir_stage_lag{partition="7",stage="process"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// An operator deletes a finished run through the admin API; a run in flight is refused.
func TestAdminDeletesFinishedRuns(t *testing.T) {
	h := startDroneExample(t, drone.New(drone.Config{}))
	if a := h.do("POST", "/v1/messages/delivery", "drone-app", "drone-token", "application/json", []byte(delivery("del-1", "c-1"))); a.code != 202 {
		t.Fatalf("post: %d %s", a.code, a.raw)
	}
	h.waitRuns(1, 30*time.Second)
	id := state.RunID("drone-app", "delivery", "del-1")
	if a := h.admin().do("DELETE", "/v1/admin/workflows/"+id, "", "", "", nil); a.code != 204 {
		t.Fatalf("delete: %d %s", a.code, a.raw)
	}
	if a := h.admin().do("GET", "/v1/admin/workflows/"+id, "", "", "", nil); a.code != 404 {
		t.Fatalf("after delete: %d %s", a.code, a.raw)
	}
	if c := h.runCounts(); c[state.RunCompleted] != 0 {
		t.Fatalf("counts after delete %v", c)
	}
	if a := h.admin().do("DELETE", "/v1/admin/workflows/"+id, "", "", "", nil); a.code != 404 {
		t.Fatalf("delete again: %d", a.code)
	}
}
