package deliver

import (
	"context"
	"sync"
	"time"
)

// Health states of an endpoint.
const (
	Healthy = "healthy"
	Failing = "failing" // FailingAfter consecutive attempts failed
	Paused  = "paused"  // no deliveries until resumed: failing for PauseAfter, 410 Gone, or an operator
)

// HealthConfig says when an endpoint counts as failing and when it is paused.
type HealthConfig struct {
	FailingAfter int           // consecutive failed attempts (default 5)
	PauseAfter   time.Duration // pause after failing this long (0: never pause on failures)
}

// Pause is what survives a restart about an endpoint: whether it is paused, why and since when.
type Pause struct {
	Paused bool
	Reason string
	Since  time.Time
	At     time.Time // when it was last paused or resumed (instances sharing it keep the latest)
}

// Health tracks one endpoint: consecutive failures, and the pause that stops its deliveries.
// It is safe for concurrent use.
type Health struct {
	cfg  HealthConfig
	save func(Pause) error // stores a pause or a resume

	mu       sync.Mutex
	failures int
	since    time.Time // start of the failure streak
	lastErr  string
	pause    Pause
	resumed  chan struct{} // closed while not paused
	onChange func(state string, failures int)
}

// NewHealth returns an endpoint's health, starting from its stored pause. save stores later
// pauses and resumes; onChange (optional) sees every change of state or failure count.
func NewHealth(cfg HealthConfig, stored Pause, save func(Pause) error, onChange func(state string, failures int)) *Health {
	if cfg.FailingAfter <= 0 {
		cfg.FailingAfter = 5
	}
	h := &Health{cfg: cfg, save: save, pause: stored, resumed: make(chan struct{}), onChange: onChange}
	if !stored.Paused {
		close(h.resumed)
	}
	h.changed()
	return h
}

// Observe records the outcome of one attempt at now. A streak of failures longer than
// PauseAfter pauses the endpoint.
func (h *Health) Observe(ok bool, errText string, now time.Time) {
	h.mu.Lock()
	if ok {
		if h.failures == 0 {
			h.mu.Unlock()
			return
		}
		h.failures, h.since, h.lastErr = 0, time.Time{}, ""
		h.mu.Unlock()
		h.changed()
		return
	}
	if h.failures == 0 {
		h.since = now
	}
	h.failures++
	h.lastErr = errText
	pause := h.cfg.PauseAfter > 0 && h.failures >= h.cfg.FailingAfter && now.Sub(h.since) >= h.cfg.PauseAfter && !h.pause.Paused
	h.mu.Unlock()
	if pause {
		h.Pause("failing since "+h.since.UTC().Format(time.RFC3339), now)
		return
	}
	h.changed()
}

// Pause stops deliveries until Resume, and stores that.
func (h *Health) Pause(reason string, now time.Time) error {
	h.mu.Lock()
	if h.pause.Paused {
		h.mu.Unlock()
		return nil
	}
	h.pause = Pause{Paused: true, Reason: reason, Since: now.UTC(), At: time.Now().UTC()}
	h.resumed = make(chan struct{})
	p := h.pause
	h.mu.Unlock()
	h.changed()
	return h.save(p)
}

// Resume lets deliveries run again and forgets the failure streak.
func (h *Health) Resume() error {
	h.mu.Lock()
	if h.pause.Paused {
		close(h.resumed)
	}
	h.pause = Pause{At: time.Now().UTC()}
	p := h.pause
	h.failures, h.since, h.lastErr = 0, time.Time{}, ""
	h.mu.Unlock()
	h.changed()
	return h.save(p)
}

// Sync takes a pause or a resume that another instance sharing the endpoint stored, when it is
// newer than this one's last.
func (h *Health) Sync(stored Pause) {
	h.mu.Lock()
	if !stored.At.After(h.pause.At) {
		h.mu.Unlock()
		return
	}
	switch {
	case stored.Paused && !h.pause.Paused:
		h.resumed = make(chan struct{})
	case !stored.Paused && h.pause.Paused:
		close(h.resumed)
		h.failures, h.since, h.lastErr = 0, time.Time{}, ""
	}
	h.pause = stored
	h.mu.Unlock()
	h.changed()
}

// Paused reports whether deliveries are paused.
func (h *Health) Paused() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pause.Paused
}

// Wait blocks while the endpoint is paused.
func (h *Health) Wait(ctx context.Context) error {
	h.mu.Lock()
	ch := h.resumed
	h.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HealthStatus is a snapshot of an endpoint's health.
type HealthStatus struct {
	State        string    `json:"state"`
	Failures     int       `json:"consecutive_failures"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	PauseReason  string    `json:"pause_reason,omitempty"`
	PausedSince  time.Time `json:"paused_since,omitzero"`
}

// Status returns the current health.
func (h *Health) Status() HealthStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.statusLocked()
}

func (h *Health) statusLocked() HealthStatus {
	s := HealthStatus{State: Healthy, Failures: h.failures, FailingSince: h.since, LastError: h.lastErr}
	switch {
	case h.pause.Paused:
		s.State, s.PauseReason, s.PausedSince = Paused, h.pause.Reason, h.pause.Since
	case h.failures >= h.cfg.FailingAfter:
		s.State = Failing
	}
	return s
}

func (h *Health) changed() {
	if h.onChange == nil {
		return
	}
	h.mu.Lock()
	s := h.statusLocked()
	h.mu.Unlock()
	h.onChange(s.State, s.Failures)
}
