package deliver

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestHealthFailingPauseResume(t *testing.T) {
	var saved []Pause
	var states []string
	h := NewHealth(HealthConfig{FailingAfter: 3, PauseAfter: time.Minute}, Pause{},
		func(p Pause) error { saved = append(saved, p); return nil },
		func(s string, _ int) { states = append(states, s) })
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	h.Observe(false, "503", t0)
	h.Observe(false, "503", t0.Add(time.Second))
	if s := h.Status(); s.State != Healthy || s.Failures != 2 {
		t.Fatalf("after 2 failures: %+v, want healthy with 2", s)
	}
	h.Observe(false, "503", t0.Add(2*time.Second))
	if s := h.Status(); s.State != Failing || !s.FailingSince.Equal(t0) || s.LastError != "503" {
		t.Fatalf("after 3 failures: %+v, want failing since t0", s)
	}
	// A success ends the streak.
	h.Observe(true, "", t0.Add(3*time.Second))
	if s := h.Status(); s.State != Healthy || s.Failures != 0 {
		t.Fatalf("after a success: %+v", s)
	}
	// Failing for pause_after pauses, and the pause is saved.
	for i := range 5 {
		h.Observe(false, "timeout", t0.Add(time.Duration(10+i*20)*time.Second))
	}
	s := h.Status()
	if s.State != Paused || len(saved) != 1 || !saved[0].Paused {
		t.Fatalf("after failing > 1m: %+v, saved %+v", s, saved)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait while paused = %v, want to block", err)
	}
	if err := h.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := h.Status(); s.State != Healthy || s.Failures != 0 || len(saved) != 2 || saved[1].Paused {
		t.Fatalf("after resume: %+v, saved %+v", s, saved)
	}
	if states[len(states)-1] != Healthy {
		t.Fatalf("last reported state %q", states[len(states)-1])
	}
}

func TestHealthStartsPausedAndNeverPausesWithoutPauseAfter(t *testing.T) {
	h := NewHealth(HealthConfig{}, Pause{Paused: true, Reason: "410 Gone"}, func(Pause) error { return nil }, nil)
	if s := h.Status(); s.State != Paused || s.PauseReason != "410 Gone" {
		t.Fatalf("stored pause not restored: %+v", s)
	}
	h.Resume()
	t0 := time.Now()
	for i := range 100 {
		h.Observe(false, "503", t0.Add(time.Duration(i)*time.Hour))
	}
	if s := h.Status(); s.State != Failing {
		t.Fatalf("without pause_after: %+v, want failing, never paused", s)
	}
}

// A pause or resume another instance stored is taken when newer than this one's last.
func TestHealthSync(t *testing.T) {
	var saved []Pause
	h := NewHealth(HealthConfig{}, Pause{}, func(p Pause) error { saved = append(saved, p); return nil }, nil)
	t0 := time.Now()
	h.Sync(Pause{Paused: true, Reason: "operator on b", Since: t0, At: t0.Add(time.Second)})
	if !h.Paused() || h.Status().PauseReason != "operator on b" {
		t.Fatalf("not paused by another instance's pause: %+v", h.Status())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := h.Wait(ctx); err == nil {
		t.Fatal("Wait returned while paused")
	}
	h.Sync(Pause{At: t0}) // an older resume: ignored
	if !h.Paused() {
		t.Fatal("an older resume was taken")
	}
	h.Sync(Pause{At: t0.Add(2 * time.Second)})
	if h.Paused() {
		t.Fatal("a newer resume was not taken")
	}
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(saved) != 0 {
		t.Fatalf("Sync stored %v: it only takes what is stored", saved)
	}
	if err := h.Pause("local", time.Now()); err != nil || len(saved) != 1 || saved[0].At.IsZero() {
		t.Fatalf("a local pause is stored with its time: %v %v", saved, err)
	}
}
