package admin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/weirhq/weir/internal/state"
)

// RunPage is the answer of GET /v1/admin/workflows.
type RunPage struct {
	Runs []state.Run `json:"runs"`
	Next string      `json:"next,omitempty"` // pass as after= for the next page
	// Counts is the number of runs in each state (all workflows).
	Counts map[string]int `json:"counts"`
}

// workflows lists runs in a state (default running), oldest first, filtered by workflow, type
// and client, each with every step's status, attempts, timings and last error.
func (a *API) workflows(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := state.RunFilter{State: q.Get("state"), Workflow: q.Get("workflow"), Type: q.Get("type"), Client: q.Get("client"), After: q.Get("after")}
	if f.State == "" {
		f.State = state.RunRunning
	}
	if !slices.Contains(state.RunStates, f.State) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("state: %q is not one of %v", f.State, state.RunStates))
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: %q is not a positive number", v))
			return
		}
		f.Limit = min(n, 1000)
	}
	runs, next, err := a.Store.Runs(f)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page := RunPage{Runs: runs, Next: next, Counts: map[string]int{}}
	if page.Runs == nil {
		page.Runs = []state.Run{}
	}
	for _, st := range state.RunStates {
		if page.Counts[st], err = a.Store.CountRuns(st); err != nil {
			a.fail(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, page)
}

// run reads the run named in the path, answering 404 or the store's failure itself (nil then).
func (a *API) run(w http.ResponseWriter, r *http.Request) *state.Run {
	run, err := a.Store.WorkflowRun(r.PathValue("id"))
	if errors.Is(err, state.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such workflow run")
		return nil
	}
	if err != nil {
		a.fail(w, err)
		return nil
	}
	return run
}

func (a *API) workflowRun(w http.ResponseWriter, r *http.Request) {
	if run := a.run(w, r); run != nil {
		writeJSON(w, http.StatusOK, run)
	}
}

// deleteRun removes a finished run, or one that awaits manual handling (compensation_failed)
// once an operator settled it: the message id is then free for a new run. A run in flight is
// refused (409).
func (a *API) deleteRun(w http.ResponseWriter, r *http.Request) {
	run := a.run(w, r)
	if run == nil {
		return
	}
	if !state.Finished(run.State) {
		writeError(w, http.StatusConflict, fmt.Sprintf("run %s is %s: it is still in flight", run.ID, run.State))
		return
	}
	if err := a.Store.DeleteRun(run); err != nil {
		a.fail(w, err)
		return
	}
	a.Logger.Info("workflow run deleted", "run", run.ID, "state", run.State, "message", run.MessageID)
	w.WriteHeader(http.StatusNoContent)
}
