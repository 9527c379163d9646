// Package admin is Weir's operator API on the admin listener: dead letters (list, show, replay,
// discard), endpoint health (list, pause, resume) and workflow runs (list by state, show). The `weir dlq` and `weir endpoints`
// commands are its clients.
package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/retry"
	"github.com/weirhq/weir/internal/state"
)

// API serves the admin endpoints.
type API struct {
	Store     *state.Store
	Retries   *retry.Retries
	Endpoints map[string]*deliver.Health
	Logger    *slog.Logger
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/admin/dead-letters", a.list)
	mux.HandleFunc("GET /v1/admin/dead-letters/{id}", a.show)
	mux.HandleFunc("POST /v1/admin/dead-letters/{id}/replay", a.replayOne)
	mux.HandleFunc("DELETE /v1/admin/dead-letters/{id}", a.discardOne)
	mux.HandleFunc("POST /v1/admin/dead-letters/replay", a.replayMatching)
	mux.HandleFunc("POST /v1/admin/dead-letters/discard", a.discardMatching)
	mux.HandleFunc("GET /v1/admin/retries", a.retries)
	mux.HandleFunc("GET /v1/admin/endpoints", a.endpoints)
	mux.HandleFunc("POST /v1/admin/endpoints/{name}/pause", a.pause)
	mux.HandleFunc("POST /v1/admin/endpoints/{name}/resume", a.resume)
	mux.HandleFunc("GET /v1/admin/workflows", a.workflows)
	mux.HandleFunc("GET /v1/admin/workflows/{id}", a.workflowRun)
	mux.HandleFunc("DELETE /v1/admin/workflows/{id}", a.deleteRun)
}

// Filter parses the dead-letter filters of a query: type, client, endpoint, stage, reason, since
// and until (RFC 3339), after (an id, for paging) and limit.
func Filter(r *http.Request) (state.LetterFilter, error) {
	q := r.URL.Query()
	f := state.LetterFilter{Type: q.Get("type"), Client: q.Get("client"), Endpoint: q.Get("endpoint"),
		Stage: q.Get("stage"), Reason: q.Get("reason"), After: q.Get("after")}
	var err error
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			if *p.dst, err = time.Parse(time.RFC3339, v); err != nil {
				return f, fmt.Errorf("%s: %q is not an RFC 3339 time (like 2026-11-21T10:00:00Z)", p.name, v)
			}
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 {
			return f, fmt.Errorf("limit: %q is not a positive number", v)
		}
	}
	return f, nil
}

// Letter is a dead letter as the API shows it.
type Letter struct {
	state.DeadLetter
	Payload json.RawMessage `json:"payload,omitempty"`
}

func view(d state.DeadLetter, withPayload bool) Letter {
	l := Letter{DeadLetter: d}
	if withPayload {
		if m, err := message.Decode(d.Message); err == nil && json.Valid(m.Payload) {
			l.Payload = m.Payload
		}
	}
	return l
}

// ListPage is the answer of GET /v1/admin/dead-letters.
type ListPage struct {
	DeadLetters []Letter `json:"dead_letters"`
	Next        string   `json:"next,omitempty"` // pass as after= for the next page
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	f, err := Filter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if f.Limit == 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	ds, err := a.Store.DeadLetters(f)
	if err != nil {
		a.fail(w, err)
		return
	}
	page := ListPage{DeadLetters: make([]Letter, len(ds))}
	for i, d := range ds {
		page.DeadLetters[i] = view(d, false)
	}
	if len(ds) == f.Limit {
		page.Next = ds[len(ds)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}

func (a *API) show(w http.ResponseWriter, r *http.Request) {
	d, err := a.Store.DeadLetter(r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(d, true))
}

// Counts answers replays and discards.
type Counts struct {
	Replayed  *int     `json:"replayed,omitempty"`
	Discarded *int     `json:"discarded,omitempty"`
	IDs       []string `json:"ids,omitempty"`
}

func (a *API) replayOne(w http.ResponseWriter, r *http.Request) {
	a.replay(w, r, []string{r.PathValue("id")}, true)
}

func (a *API) replay(w http.ResponseWriter, r *http.Request, ids []string, one bool) {
	done, err := a.Retries.Replay(r.Context(), ids)
	if err != nil {
		a.fail(w, err)
		return
	}
	if one && len(done) == 0 {
		a.fail(w, state.ErrNotFound)
		return
	}
	n := len(done)
	if n > 0 {
		a.Logger.Info("replayed dead letters", "count", n)
	}
	writeJSON(w, http.StatusOK, Counts{Replayed: &n, IDs: done})
}

func (a *API) discardOne(w http.ResponseWriter, r *http.Request) {
	n, err := a.Store.Discard([]string{r.PathValue("id")})
	if err == nil && n == 0 {
		err = state.ErrNotFound
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Counts{Discarded: &n})
}

// matching returns the ids of every dead letter that matches the request's filters. It refuses
// a request without any filter unless all=true, so that "replay everything" is never an accident.
func (a *API) matching(r *http.Request) ([]string, error) {
	f, err := Filter(r)
	if err != nil {
		return nil, err
	}
	selects := f
	selects.Limit, selects.After = 0, "" // paging alone selects everything
	if selects == (state.LetterFilter{}) && r.URL.Query().Get("all") != "true" {
		return nil, errors.New("give at least one filter, or all=true to select every dead letter")
	}
	limit := f.Limit
	f.Limit = 0
	ds, err := a.Store.DeadLetters(f)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(ds) > limit {
		ds = ds[:limit]
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids, nil
}

func (a *API) replayMatching(w http.ResponseWriter, r *http.Request) {
	ids, err := a.matching(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a.replay(w, r, ids, false)
}

func (a *API) discardMatching(w http.ResponseWriter, r *http.Request) {
	ids, err := a.matching(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	n, err := a.Store.Discard(ids)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Counts{Discarded: &n})
}

func (a *API) retries(w http.ResponseWriter, _ *http.Request) {
	n, err := a.Store.CountRetries()
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"scheduled": n})
}

// EndpointHealth is one row of GET /v1/admin/endpoints.
type EndpointHealth struct {
	Name string `json:"name"`
	deliver.HealthStatus
}

func (a *API) endpoints(w http.ResponseWriter, _ *http.Request) {
	out := make([]EndpointHealth, 0, len(a.Endpoints))
	for name, h := range a.Endpoints {
		out = append(out, EndpointHealth{Name: name, HealthStatus: h.Status()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": out})
}

func (a *API) pause(w http.ResponseWriter, r *http.Request) {
	a.setPaused(w, r, true)
}

func (a *API) resume(w http.ResponseWriter, r *http.Request) {
	a.setPaused(w, r, false)
}

func (a *API) setPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	name := r.PathValue("name")
	h := a.Endpoints[name]
	if h == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %q", name))
		return
	}
	var err error
	if paused {
		reason := r.URL.Query().Get("reason")
		if reason == "" {
			reason = "paused by an operator"
		}
		err = h.Pause(reason, time.Now())
	} else {
		err = h.Resume()
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	a.Logger.Info("endpoint "+map[bool]string{true: "paused", false: "resumed"}[paused]+" by the admin API", "endpoint", name)
	writeJSON(w, http.StatusOK, EndpointHealth{Name: name, HealthStatus: h.Status()})
}

func (a *API) fail(w http.ResponseWriter, err error) {
	var unknown *retry.UnknownStageError
	switch {
	case errors.Is(err, state.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such dead letter")
	case errors.As(err, &unknown):
		writeError(w, http.StatusConflict, err.Error())
	default:
		a.Logger.Error("admin API", "err", err)
		writeError(w, http.StatusServiceUnavailable, "the state store failed: "+err.Error())
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
