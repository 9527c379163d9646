// Package retry decides what happens to a message a stage failed to handle: another attempt on
// a durable schedule, or a dead letter. The schedule is data (Policy); the pending retries and
// the dead letters live in the state store, written before the stage commits past the failed
// record, so they survive a crash; the Scheduler re-injects due retries into their stage's topic.
package retry

import (
	"github.com/weirhq/weir/internal/config"

	"fmt"
	"time"

	"github.com/weirhq/weir/internal/fault"
)

// Policy is a retry schedule. The first attempt runs at once; Schedule[i] is the wait after the
// (i+1)th failed attempt (the last entry repeats when MaxAttempts asks for more).
type Policy struct {
	Schedule    []time.Duration
	Jitter      float64       // each wait varies by ± this fraction (0.1 = ±10%)
	MaxAttempts int           // attempts in all, the first included (default len(Schedule)+1)
	MaxAge      time.Duration // give up when the next attempt would be this long after the first failure (0: no limit)
}

// MaxWait bounds one wait of a schedule (a year), so that due times stay far from overflowing.
const MaxWait = 366 * 24 * time.Hour

// DeliverPolicy is the default for partner endpoints: attempts at once, then after 5 s, 5 min,
// 30 min, 2 h, 5 h, 10 h and 10 h — eight attempts over about 27.6 hours.
func DeliverPolicy() Policy {
	return Policy{Schedule: []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
		5 * time.Hour, 10 * time.Hour, 10 * time.Hour}, Jitter: 0.1}
}

// StepPolicy is the default for the process and persist steps, whose failures are mostly a
// database or the disk being away for a while: quick first retries, then up to about 20 hours.
func StepPolicy() Policy {
	return Policy{Schedule: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute,
		10 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour}, Jitter: 0.1}
}

// Validate reports a policy that cannot be run.
func (p Policy) Validate() error {
	if len(p.Schedule) == 0 && p.MaxAttempts > 1 {
		return fmt.Errorf("max_attempts %d needs a schedule", p.MaxAttempts)
	}
	for i, d := range p.Schedule {
		if d < 0 {
			return fmt.Errorf("schedule[%d]: negative delay %s", i, d)
		}
		if d > MaxWait {
			return fmt.Errorf("schedule[%d]: %s is longer than %s", i, d, MaxWait)
		}
	}
	if p.Jitter < 0 || p.Jitter >= 1 {
		return fmt.Errorf("jitter %g: must be at least 0 and below 1", p.Jitter)
	}
	if p.MaxAttempts < 0 || p.MaxAge < 0 {
		return fmt.Errorf("max_attempts and max_age cannot be negative")
	}
	return nil
}

// Attempts is the number of attempts the policy allows in all.
func (p Policy) Attempts() int {
	if p.MaxAttempts > 0 {
		return p.MaxAttempts
	}
	return len(p.Schedule) + 1
}

// Next returns the wait before the next attempt after failed attempts have failed (the latest
// with err), or false when the policy gives up. first is when the first attempt failed; rnd
// returns a number in [0, 1) for the jitter. A Retry-After the peer sent is honoured: the wait is
// never shorter than it.
func (p Policy) Next(failed int, first, now time.Time, err error, rnd func() float64) (time.Duration, bool) {
	if failed >= p.Attempts() || len(p.Schedule) == 0 {
		return 0, false
	}
	d := p.Schedule[min(failed-1, len(p.Schedule)-1)]
	if p.Jitter > 0 && d > 0 {
		d += time.Duration(float64(d) * p.Jitter * (2*rnd() - 1))
	}
	if ra, ok := fault.RetryAfter(err); ok && ra > d {
		d = ra
	}
	if p.MaxAge > 0 && now.Add(d).Sub(first) > p.MaxAge {
		return 0, false
	}
	return d, true
}

// Configured turns a configured schedule into a policy; def applies when none is configured.
func Configured(r *config.Retry, def Policy) Policy {
	if r == nil {
		return def
	}
	p := Policy{Jitter: 0.1, MaxAttempts: r.MaxAttempts, MaxAge: r.MaxAge.D()}
	for _, d := range r.Schedule {
		p.Schedule = append(p.Schedule, d.D())
	}
	if r.Jitter != nil {
		p.Jitter = *r.Jitter
	}
	return p
}
