package retry_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/retry"
)

var (
	errTransient = errors.New("connection refused")
	// policyT0 is when the first attempt failed in the policy tests.
	policyT0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
)

// constRand returns a jitter source that always returns v.
func constRand(v float64) func() float64 { return func() float64 { return v } }

// deliverWaits is the DeliverPolicy schedule, written out independently of the code under test.
var deliverWaits = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// next calls p.Next for the failed-th failure, happening at first+elapsed.
func next(p retry.Policy, failed int, elapsed time.Duration, err error, rnd float64) (time.Duration, bool) {
	return p.Next(failed, policyT0, policyT0.Add(elapsed), err, constRand(rnd))
}

func TestDeliverPolicyScheduleWithoutJitter(t *testing.T) {
	p := retry.DeliverPolicy()
	if err := p.Validate(); err != nil {
		t.Fatalf("DeliverPolicy does not validate: %v", err)
	}
	if got := p.Attempts(); got != 8 {
		t.Fatalf("Attempts() = %d, want 8", got)
	}
	elapsed := time.Duration(0)
	for failed := 1; failed <= 7; failed++ {
		d, ok := next(p, failed, elapsed, errTransient, 0.5)
		if !ok {
			t.Fatalf("after %d failures: policy gave up, want a wait of %s", failed, deliverWaits[failed-1])
		}
		if d != deliverWaits[failed-1] {
			t.Errorf("after %d failures: wait %s, want %s", failed, d, deliverWaits[failed-1])
		}
		elapsed += d
	}
	if d, ok := next(p, 8, elapsed, errTransient, 0.5); ok {
		t.Fatalf("after 8 failures: wait %s, want the policy to give up", d)
	}
	if d, ok := next(p, 9, elapsed, errTransient, 0.5); ok {
		t.Fatalf("after 9 failures: wait %s, want the policy to give up", d)
	}
	// The whole schedule spans about 27.6 hours.
	if want := 27*time.Hour + 35*time.Minute + 5*time.Second; elapsed != want {
		t.Errorf("schedule spans %s, want %s", elapsed, want)
	}
}

func TestDeliverPolicyJitterBounds(t *testing.T) {
	p := retry.DeliverPolicy()
	almostOne := math.Nextafter(1, 0)
	for failed := 1; failed <= 7; failed++ {
		nominal := deliverWaits[failed-1]
		lo := time.Duration(float64(nominal) * (1 - 0.1))
		hi := time.Duration(float64(nominal) * (1 + 0.1))
		// Every nominal wait is a whole number of seconds: the bounds are exact.
		if lo != nominal-nominal/10 || hi != nominal+nominal/10 {
			t.Fatalf("bounds of %s computed as [%s, %s]", nominal, lo, hi)
		}

		d, ok := next(p, failed, 0, errTransient, 0)
		if !ok {
			t.Fatalf("after %d failures with rand 0: gave up", failed)
		}
		if d != lo {
			t.Errorf("after %d failures with rand 0: wait %s, want the lower bound %s", failed, d, lo)
		}

		d, ok = next(p, failed, 0, errTransient, almostOne)
		if !ok {
			t.Fatalf("after %d failures with rand ~1: gave up", failed)
		}
		if d > hi || d < hi-time.Microsecond {
			t.Errorf("after %d failures with rand ~1: wait %s, want just below the upper bound %s", failed, d, hi)
		}

		for _, r := range []float64{0.1, 0.25, 0.75, 0.9} {
			d, _ := next(p, failed, 0, errTransient, r)
			if d < lo || d > hi {
				t.Errorf("after %d failures with rand %g: wait %s outside [%s, %s]", failed, r, d, lo, hi)
			}
		}
	}
}

func TestRetryAfter(t *testing.T) {
	p := retry.DeliverPolicy()
	cases := []struct {
		name   string
		failed int
		err    error
		want   time.Duration
	}{
		{"longer than the 5s wait wins", 1, &fault.RetryAfterError{Err: errTransient, After: time.Hour}, time.Hour},
		{"shorter than the 5m wait is ignored", 2, &fault.RetryAfterError{Err: errTransient, After: time.Second}, 5 * time.Minute},
		{"zero is ignored", 1, &fault.RetryAfterError{Err: errTransient, After: 0}, 5 * time.Second},
		{"from an HTTP 503", 1, fault.HTTP(503, "7", ""), 7 * time.Second},
		{"from an HTTP 429, wrapped", 1, errors.Join(errors.New("deliver"), fault.HTTP(429, "120", "")), 2 * time.Minute},
		{"from an HTTP 503, shorter than the wait", 3, fault.HTTP(503, "7", ""), 30 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, ok := next(p, c.failed, 0, c.err, 0.5)
			if !ok || d != c.want {
				t.Fatalf("wait %s, %v; want %s, true", d, ok, c.want)
			}
		})
	}

	// Against the jittered wait: 4.5s with rand 0 loses to 4.8s asked; ~5.5s with rand ~1 is
	// not shortened to it.
	ra := &fault.RetryAfterError{Err: errTransient, After: 4800 * time.Millisecond}
	if d, ok := next(p, 1, 0, ra, 0); !ok || d != 4800*time.Millisecond {
		t.Fatalf("4.5s jittered wait against Retry-After 4.8s: %s, %v", d, ok)
	}
	if d, ok := next(p, 1, 0, ra, math.Nextafter(1, 0)); !ok || d <= 5400*time.Millisecond {
		t.Fatalf("~5.5s jittered wait against Retry-After 4.8s: %s, %v", d, ok)
	}
	// Retry-After does not buy attempts beyond the schedule.
	if d, ok := next(p, 8, 0, &fault.RetryAfterError{Err: errTransient, After: time.Second}, 0.5); ok {
		t.Fatalf("after 8 failures Retry-After gave a wait of %s", d)
	}
}

func TestMaxAge(t *testing.T) {
	p := retry.Policy{Schedule: []time.Duration{time.Minute, time.Hour}, MaxAttempts: 10, MaxAge: 2 * time.Hour}
	// 30 minutes after the first failure: next attempt at 1h30 ≤ 2h.
	if d, ok := next(p, 2, 30*time.Minute, errTransient, 0.5); !ok || d != time.Hour {
		t.Fatalf("within max age: %s, %v", d, ok)
	}
	// Exactly at the limit is still allowed.
	if d, ok := next(p, 2, time.Hour, errTransient, 0.5); !ok || d != time.Hour {
		t.Fatalf("next attempt exactly at max age: %s, %v", d, ok)
	}
	// One nanosecond past it gives up.
	if d, ok := next(p, 2, time.Hour+1, errTransient, 0.5); ok {
		t.Fatalf("next attempt past max age: wait %s, want give up", d)
	}
	// A Retry-After that lands past the max age gives up too.
	if d, ok := next(p, 1, 0, &fault.RetryAfterError{Err: errTransient, After: 3 * time.Hour}, 0.5); ok {
		t.Fatalf("Retry-After past max age: wait %s, want give up", d)
	}
}

func TestMaxAttemptsRepeatsLastDelay(t *testing.T) {
	p := retry.Policy{Schedule: []time.Duration{time.Second, time.Minute}, MaxAttempts: 6}
	if got := p.Attempts(); got != 6 {
		t.Fatalf("Attempts() = %d, want 6", got)
	}
	want := []time.Duration{time.Second, time.Minute, time.Minute, time.Minute, time.Minute}
	for failed := 1; failed <= 5; failed++ {
		d, ok := next(p, failed, 0, errTransient, 0.99)
		if !ok || d != want[failed-1] {
			t.Errorf("after %d failures: %s, %v; want %s, true", failed, d, ok, want[failed-1])
		}
	}
	if d, ok := next(p, 6, 0, errTransient, 0.5); ok {
		t.Fatalf("after 6 failures: wait %s, want give up", d)
	}

	// Fewer attempts than the schedule cuts it short.
	short := retry.Policy{Schedule: deliverWaits, MaxAttempts: 2}
	if _, ok := next(short, 1, 0, errTransient, 0.5); !ok {
		t.Fatal("MaxAttempts 2: gave up after one failure")
	}
	if _, ok := next(short, 2, 0, errTransient, 0.5); ok {
		t.Fatal("MaxAttempts 2: retried after two failures")
	}
}

func TestEmptyScheduleNeverRetries(t *testing.T) {
	p := retry.Policy{}
	if err := p.Validate(); err != nil {
		t.Fatalf("empty policy: %v", err)
	}
	if got := p.Attempts(); got != 1 {
		t.Fatalf("Attempts() = %d, want 1", got)
	}
	if d, ok := next(p, 1, 0, errTransient, 0.5); ok {
		t.Fatalf("empty schedule gave a wait of %s", d)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		p       retry.Policy
		wantErr string // "" when valid
	}{
		{"deliver default", retry.DeliverPolicy(), ""},
		{"step default", retry.StepPolicy(), ""},
		{"zero delay", retry.Policy{Schedule: []time.Duration{0, time.Second}}, ""},
		{"jitter just below 1", retry.Policy{Schedule: []time.Duration{time.Second}, Jitter: 0.999}, ""},
		{"negative delay", retry.Policy{Schedule: []time.Duration{time.Second, -time.Second}}, "schedule[1]"},
		{"negative nanosecond", retry.Policy{Schedule: []time.Duration{-1}}, "schedule[0]"},
		{"jitter 1", retry.Policy{Schedule: []time.Duration{time.Second}, Jitter: 1}, "jitter"},
		{"jitter above 1", retry.Policy{Schedule: []time.Duration{time.Second}, Jitter: 1.5}, "jitter"},
		{"negative jitter", retry.Policy{Schedule: []time.Duration{time.Second}, Jitter: -0.1}, "jitter"},
		{"attempts without schedule", retry.Policy{MaxAttempts: 3}, "schedule"},
		{"negative attempts", retry.Policy{Schedule: []time.Duration{time.Second}, MaxAttempts: -1}, "negative"},
		{"negative max age", retry.Policy{Schedule: []time.Duration{time.Second}, MaxAge: -time.Second}, "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.p.Validate()
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.wantErr != "" && err == nil:
				t.Fatalf("accepted, want an error mentioning %q", c.wantErr)
			case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
				t.Fatalf("error %q does not mention %q", err, c.wantErr)
			}
		})
	}
}
