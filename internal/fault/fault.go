// Package fault is Weir's one error classifier. Every stage asks it whether a failure is worth
// another attempt: errors are transient unless marked permanent, and may carry the delay a peer
// asked for (Retry-After).
package fault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// PermanentError marks a failure that no retry can fix (invalid input, a mapping error, a 4xx
// other than 408 and 429).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err (or an error it wraps) was marked permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfterError carries the delay a peer asked for before the next attempt.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns the delay carried by err, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var r *RetryAfterError
	if errors.As(err, &r) {
		return r.After, true
	}
	return 0, false
}

// StatusError is an HTTP answer that was not a success.
type StatusError struct {
	Code int
	Body string // bounded snippet of the response body
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Code, http.StatusText(e.Code), e.Body)
}

// HTTP classifies a non-2xx response: 408, 429 and 5xx are transient (with the Retry-After
// header honoured), every other status is permanent. 3xx counts as a failure because redirects
// are never followed.
func HTTP(code int, retryAfter string, body string) error {
	var err error = &StatusError{Code: code, Body: body}
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		if d, ok := ParseRetryAfter(retryAfter, time.Now()); ok {
			return &RetryAfterError{Err: err, After: d}
		}
		return err
	default:
		return Permanent(err)
	}
}

// MaxRetryAfter caps the delay a peer can ask for: a longer Retry-After counts as this long.
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date, capped at
// MaxRetryAfter.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		return time.Duration(min(s, int64(MaxRetryAfter/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), MaxRetryAfter), true
	}
	return 0, false
}

// IsShutdown reports whether err only says the caller's context ended.
func IsShutdown(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}
