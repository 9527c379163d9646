package fault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestHTTPClassification(t *testing.T) {
	for code, permanent := range map[int]bool{
		301: true, 400: true, 401: true, 404: true, 410: true, 422: true,
		408: false, 429: false, 500: false, 502: false, 503: false,
	} {
		err := HTTP(code, "", "")
		if IsPermanent(err) != permanent {
			t.Errorf("HTTP %d: permanent = %v, want %v", code, IsPermanent(err), permanent)
		}
		var se *StatusError
		if !errors.As(err, &se) || se.Code != code {
			t.Errorf("HTTP %d: status not carried: %v", code, err)
		}
	}
	if d, ok := RetryAfter(HTTP(503, "7", "")); !ok || d != 7*time.Second {
		t.Errorf("Retry-After 7: %v %v", d, ok)
	}
	if _, ok := RetryAfter(HTTP(404, "7", "")); ok {
		t.Error("Retry-After honoured on a permanent error")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{"0": 0, "120": 2 * time.Minute, now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat): 0,
		// Capped, and no overflow into a negative wait.
		"100000000": MaxRetryAfter, "9223372037": MaxRetryAfter, "99999999999999999": MaxRetryAfter,
		now.Add(30 * 24 * time.Hour).Format(http.TimeFormat): MaxRetryAfter}
	for in, want := range cases {
		if got, ok := ParseRetryAfter(in, now); !ok || got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-1", "soon"} {
		if _, ok := ParseRetryAfter(in, now); ok {
			t.Errorf("ParseRetryAfter(%q) accepted", in)
		}
	}
}

func TestPermanentWrapping(t *testing.T) {
	if Permanent(nil) != nil {
		t.Fatal("Permanent(nil) != nil")
	}
	base := errors.New("bad data")
	err := fmt.Errorf("stage: %w", Permanent(base))
	if !IsPermanent(err) || !errors.Is(err, base) {
		t.Fatalf("wrapped permanent error lost: %v", err)
	}
	if IsPermanent(errors.New("unknown")) {
		t.Fatal("unknown errors must be transient")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if !IsShutdown(ctx, fmt.Errorf("x: %w", context.Canceled)) || IsShutdown(context.Background(), context.Canceled) {
		t.Fatal("IsShutdown")
	}
}
