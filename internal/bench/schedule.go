package bench

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"strings"
	"time"
)

// Phase is a stretch of an open-loop run at one rate.
type Phase struct {
	// Rate is the requests sent per second during the phase; 0 sends none (a pause).
	Rate float64 `json:"rate"`
	// Duration is how long the phase lasts.
	Duration time.Duration `json:"duration_ns"`
}

// Schedule is an open-loop run's rate profile: its phases, one after the other, piecewise
// constant. Within a phase that starts at offset T and runs at rate r, request i is due at
// T + i/r, for every i with i/r before the phase's end; the first request of each phase is due
// at the phase boundary. A schedule is a pure function of its phases, so the same flags give the
// same due times run after run.
type Schedule []Phase

// Constant is the schedule of a fixed rate for d: a single phase.
func Constant(rate float64, d time.Duration) Schedule { return Schedule{{Rate: rate, Duration: d}} }

// Duration is the sum of the phases' durations: how long the run sends.
func (s Schedule) Duration() time.Duration {
	var d time.Duration
	for _, p := range s {
		d += p.Duration
	}
	return d
}

// Due is how many requests the schedule sends in all.
func (s Schedule) Due() int64 {
	var n int64
	for _, p := range s {
		n += scheduled(p.Duration, p.Rate)
	}
	return n
}

// DueBefore is how many requests are due before offset d from the start of the run.
func (s Schedule) DueBefore(d time.Duration) int64 {
	var n int64
	var start time.Duration
	for _, p := range s {
		if d <= start {
			break
		}
		n += scheduled(min(d-start, p.Duration), p.Rate)
		start += p.Duration
	}
	return n
}

// RateAt is the target rate at offset d from the start of the run; 0 outside the schedule.
func (s Schedule) RateAt(d time.Duration) float64 {
	var start time.Duration
	for _, p := range s {
		if d >= start && d < start+p.Duration {
			return p.Rate
		}
		start += p.Duration
	}
	return 0
}

// Times yields every due time, as an offset from the start of the run, in order.
func (s Schedule) Times() iter.Seq[time.Duration] {
	return func(yield func(time.Duration) bool) {
		var start time.Duration
		for _, p := range s {
			for i := range scheduled(p.Duration, p.Rate) {
				if !yield(start + dueOffset(i, p.Rate)) {
					return
				}
			}
			start += p.Duration
		}
	}
}

// constant reports whether every phase has the same rate, and which.
func (s Schedule) constant() (float64, bool) {
	if len(s) == 0 {
		return 0, false
	}
	for _, p := range s[1:] {
		if p.Rate != s[0].Rate {
			return 0, false
		}
	}
	return s[0].Rate, true
}

// validate names every invalid phase.
func (s Schedule) validate() error {
	var errs []error
	sends := false
	for i, p := range s {
		if p.Rate < 0 || math.IsNaN(p.Rate) || math.IsInf(p.Rate, 0) {
			errs = append(errs, fmt.Errorf("phase %d: rate %v: want >= 0", i+1, p.Rate))
		}
		if p.Duration <= 0 {
			errs = append(errs, fmt.Errorf("phase %d: duration %s: want > 0", i+1, p.Duration))
		}
		sends = sends || p.Rate > 0
	}
	if len(s) > 0 && !sends {
		errs = append(errs, errors.New("schedule: every phase has rate 0"))
	}
	return errors.Join(errs...)
}

// String writes the schedule as "5000/s for 10s, 30000/s for 10s".
func (s Schedule) String() string {
	parts := make([]string, len(s))
	for i, p := range s {
		parts[i] = fmtRate(p.Rate) + "/s for " + p.Duration.String()
	}
	return strings.Join(parts, ", ")
}

// fmtRate prints a rate with at most two decimals: 5000, 2.5.
func fmtRate(r float64) string {
	return strconv.FormatFloat(math.Round(r*100)/100, 'f', -1, 64)
}

// dueOffset is when request i of a phase at rate is due, from the phase's start.
func dueOffset(i int64, rate float64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / rate)
}

// scheduled returns how many requests an open loop at rate sends within d: those due at
// i/rate seconds for every i with i/rate < d.
func scheduled(d time.Duration, rate float64) int64 {
	if rate <= 0 || d <= 0 {
		return 0
	}
	n := max(int64(math.Ceil(d.Seconds()*rate)), 0)
	for n > 0 && dueOffset(n-1, rate) >= d {
		n--
	}
	for dueOffset(n, rate) < d {
		n++
	}
	return n
}
