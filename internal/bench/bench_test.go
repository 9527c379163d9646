package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ceiling starts the bare ceiling server for one test.
func ceiling(t *testing.T) string {
	t.Helper()
	url, stop, err := Ceiling(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return url
}

// run runs cfg and fails the test on an error.
func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	rep, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rep)
	return rep
}

// checkInvariants checks what must hold for every report.
func checkInvariants(t *testing.T, rep *Report) {
	t.Helper()
	var errs, series, seriesMsgs int64
	for _, n := range rep.Errors {
		errs += n
	}
	for _, s := range rep.Series {
		series += s.Requests
		seriesMsgs += s.Messages
	}
	switch {
	case rep.Requests != rep.OK+rep.ErrorCount:
		t.Errorf("requests %d != ok %d + errors %d", rep.Requests, rep.OK, rep.ErrorCount)
	case errs != rep.ErrorCount:
		t.Errorf("errors by kind sum to %d, error count %d", errs, rep.ErrorCount)
	case rep.Latency.Count != rep.OK:
		t.Errorf("latency count %d, ok %d", rep.Latency.Count, rep.OK)
	case series != rep.Requests || seriesMsgs != rep.Messages:
		t.Errorf("series sums to %d requests %d messages, report %d %d", series, seriesMsgs, rep.Requests, rep.Messages)
	case rep.OK > 0 && !(rep.Latency.P50 <= rep.Latency.P99 && rep.Latency.P99 <= rep.Latency.Max):
		t.Errorf("latency quantiles out of order: %+v", rep.Latency)
	}
	// The samples' answers by class add up to the report's.
	var ok, sent int64
	var classes, wantClasses [numClasses]int64
	for _, s := range rep.Series {
		ok += s.OK
		sent += s.Sent
		for i, n := range []int64{s.TooMany, s.Unavailable, s.ServerError, s.OtherStatus, s.Failed} {
			classes[i] += n
		}
		if s.OK > 0 && s.P50 > s.P99 {
			t.Errorf("sample at %s: p50 %s > p99 %s", s.Elapsed, s.P50, s.P99)
		}
	}
	for kind, n := range rep.Errors {
		wantClasses[classOf(kind)] += n
	}
	if ok != rep.OK || classes != wantClasses {
		t.Errorf("series: %d ok and by class %v; report %d ok and %v", ok, classes, rep.OK, wantClasses)
	}
	if !rep.Interrupted && sent != rep.Requests-rep.Errors["expired"] {
		t.Errorf("series sent %d, report %d requests of which %d expired", sent, rep.Requests, rep.Errors["expired"])
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatalf("report does not marshal: %v", err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Requests != rep.Requests || back.Latency != rep.Latency {
		t.Fatalf("report does not round-trip through JSON (%v):\n%s", err, b)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil || !strings.Contains(text.String(), "req/s") {
		t.Fatalf("WriteText: %v\n%s", err, text.String())
	}
	if t.Failed() {
		t.Logf("report:\n%s", text.String())
	}
}

func TestRunAgainstCeiling(t *testing.T) {
	url := ceiling(t)
	t.Run("single", func(t *testing.T) {
		rep := run(t, Config{URL: url, Type: "order", Connections: 4, Duration: 300 * time.Millisecond, Seed: 7})
		if rep.OK == 0 || rep.ErrorCount != 0 || rep.Messages != rep.OK {
			t.Fatalf("ok %d, errors %v, messages %d", rep.OK, rep.Errors, rep.Messages)
		}
		if rep.URL != url+"/v1/messages/order" || rep.Seed != 7 || rep.Bytes < 400*rep.Requests {
			t.Fatalf("report header: %+v", rep)
		}
	})
	t.Run("batch", func(t *testing.T) {
		rep := run(t, Config{URL: url, Type: "order", Mode: ModeBatch, BatchSize: 10, Connections: 2, Duration: 300 * time.Millisecond, Seed: 7})
		if rep.OK == 0 || rep.ErrorCount != 0 || rep.Messages != 10*rep.OK {
			t.Fatalf("ok %d, errors %v, messages %d", rep.OK, rep.Errors, rep.Messages)
		}
		if rep.URL != url+"/v1/messages/order/batch" {
			t.Fatalf("posted to %s", rep.URL)
		}
	})
}

// recorder is a partner-facing stand-in that checks each request like Weir would and records
// every message id and key it was sent.
type recorder struct {
	t    *testing.T
	mu   sync.Mutex
	ids  map[string]int
	keys map[string]int
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c, tok, ok := r.BasicAuth(); !ok || c != "acme" || tok != "s3cret" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	batch := strings.HasSuffix(r.URL.Path, "/batch")
	wantCT := map[bool]string{false: "application/json", true: "application/x-ndjson"}[batch]
	if r.URL.Path != "/v1/messages/order" && r.URL.Path != "/v1/messages/order/batch" || r.Header.Get("Content-Type") != wantCT {
		http.Error(w, "wrong path or content type", http.StatusBadRequest)
		return
	}
	var n int
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		var m struct {
			ID       string `json:"id"`
			Currency string `json:"currency"`
			Customer struct {
				ID string `json:"id"`
			} `json:"customer"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.Currency != "eur" {
			http.Error(w, "bad message", http.StatusBadRequest)
			return
		}
		rec.mu.Lock()
		rec.ids[m.ID]++
		rec.keys[m.Customer.ID]++
		rec.mu.Unlock()
		n++
	}
	if !batch {
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"id":"x","status":"accepted"}`))
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"accepted": n, "rejected": 0, "results": []any{}})
}

func TestRunSendsUniqueIDs(t *testing.T) {
	for _, mode := range []string{ModeSingle, ModeBatch} {
		t.Run(mode, func(t *testing.T) {
			rec := &recorder{t: t, ids: map[string]int{}, keys: map[string]int{}}
			srv := httptest.NewServer(rec)
			t.Cleanup(srv.Close)
			rep := run(t, Config{
				URL: srv.URL, Type: "order", Client: "acme", Token: "s3cret", Mode: mode, BatchSize: 7,
				Connections: 4, Duration: 300 * time.Millisecond, Seed: 99, Keys: 5,
			})
			if rep.ErrorCount != 0 || rep.Messages == 0 {
				t.Fatalf("errors %v, messages %d", rep.Errors, rep.Messages)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if int64(len(rec.ids)) != rep.Messages {
				t.Fatalf("server saw %d distinct ids, report says %d messages accepted", len(rec.ids), rep.Messages)
			}
			for id, n := range rec.ids {
				if n != 1 || !strings.HasPrefix(id, "b-99-") {
					t.Fatalf("id %q sent %d times", id, n)
				}
			}
			if len(rec.keys) < 2 || len(rec.keys) > 5 {
				t.Fatalf("%d distinct keys, want 2..5 of 5: %v", len(rec.keys), rec.keys)
			}
		})
	}
}

func TestRunCountsRefusals(t *testing.T) {
	var seen, tooMany, unavailable, accepted atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n := seen.Add(1); {
		case n%3 == 0:
			tooMany.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case n%5 == 0:
			unavailable.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "buffer full", http.StatusServiceUnavailable)
		default:
			accepted.Add(1)
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	t.Cleanup(srv.Close)
	rep := run(t, Config{URL: srv.URL, Type: "order", Connections: 4, Duration: 300 * time.Millisecond, Seed: 1})
	if rep.Requests != seen.Load() || rep.OK != accepted.Load() ||
		rep.Errors["429"] != tooMany.Load() || rep.Errors["503"] != unavailable.Load() || len(rep.Errors) != 2 {
		t.Fatalf("server saw %d requests (%d accepted, %d 429, %d 503), report %d (%d ok, errors %v)",
			seen.Load(), accepted.Load(), tooMany.Load(), unavailable.Load(), rep.Requests, rep.OK, rep.Errors)
	}
}

func TestRunHonorsRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "buffer full", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	// Each connection is told to wait an hour after its first request: the run sends one per
	// connection and still ends on time.
	rep := run(t, Config{URL: srv.URL, Type: "order", Connections: 3, Duration: 200 * time.Millisecond, HonorRetryAfter: true, Seed: 1})
	if rep.Requests != 3 || rep.Errors["503"] != 3 {
		t.Fatalf("requests %d, errors %v; want one 503 per connection", rep.Requests, rep.Errors)
	}
}

func TestRunClassifiesTransportFailures(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // so that the server notices the client hanging up
			<-r.Context().Done()        // never answers; the client gives up
		}))
		t.Cleanup(srv.Close)
		rep := run(t, Config{URL: srv.URL, Type: "order", Connections: 2, Duration: 100 * time.Millisecond, Timeout: 50 * time.Millisecond, Seed: 1})
		if rep.Requests < 2 || rep.Errors["timeout"] != rep.Requests {
			t.Fatalf("requests %d, errors %v; want all timeouts", rep.Requests, rep.Errors)
		}
	})
	t.Run("conn", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		rep := run(t, Config{URL: "http://" + addr, Type: "order", Connections: 2, Duration: 100 * time.Millisecond, Seed: 1})
		if rep.Requests == 0 || rep.Errors["conn"] != rep.Requests {
			t.Fatalf("requests %d, errors %v; want all conn", rep.Requests, rep.Errors)
		}
	})
	t.Run("bad batch answer", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"results":[]}`)) // 200 without an accepted count
		}))
		t.Cleanup(srv.Close)
		rep := run(t, Config{URL: srv.URL, Type: "order", Mode: ModeBatch, Connections: 2, Duration: 100 * time.Millisecond, Seed: 1})
		if rep.Requests == 0 || rep.Errors["bad_response"] != rep.Requests || rep.Messages != 0 {
			t.Fatalf("requests %d, errors %v, messages %d", rep.Requests, rep.Errors, rep.Messages)
		}
	})
}

func TestRunBatchCountsRejectedLines(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lines, _ := countLines(r.Body, make([]byte, 4096))
		w.WriteHeader(http.StatusMultiStatus)
		json.NewEncoder(w).Encode(map[string]any{"accepted": lines - 1, "rejected": 1})
	}))
	t.Cleanup(srv.Close)
	rep := run(t, Config{URL: srv.URL, Type: "order", Mode: ModeBatch, BatchSize: 5, Connections: 2, Duration: 200 * time.Millisecond, Seed: 1})
	if rep.OK == 0 || rep.Messages != 4*rep.OK || rep.Rejected != rep.OK {
		t.Fatalf("ok %d, messages %d, rejected %d", rep.OK, rep.Messages, rep.Rejected)
	}
}

func TestRunOpenLoopKeepsTheRate(t *testing.T) {
	url := ceiling(t)
	rep := run(t, Config{URL: url, Type: "order", Connections: 4, Duration: 500 * time.Millisecond, Rate: 200, Seed: 1})
	// 200 req/s for 0.5s is 100 requests due. A closed loop would send thousands; a loaded
	// machine may miss some, and says so.
	if rep.Requests+rep.Missed != 100 || rep.Requests < 50 {
		t.Fatalf("requests %d + missed %d, want 100 due and most of them sent", rep.Requests, rep.Missed)
	}
}

func TestRunOpenLoopCountsQueueing(t *testing.T) {
	var first atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(false, true) {
			// The server stalls once for 100ms; the requests due meanwhile wait for the one
			// connection, and that wait is latency too.
			stall := time.NewTimer(100 * time.Millisecond)
			defer stall.Stop()
			select {
			case <-stall.C:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	rep := run(t, Config{URL: srv.URL, Type: "order", Connections: 1, Duration: 300 * time.Millisecond, Rate: 100, Seed: 1})
	// Of the 30 requests due, those due at 0, 10, ... 50ms cannot finish before 100ms: at least
	// 6 latencies of 50ms or more, so p90 is at least 50ms. Measured from the actual send time
	// (coordinated omission) only the first would be slow.
	if rep.OK < 6 || rep.Latency.P90 < 50*time.Millisecond {
		t.Fatalf("ok %d, latency %+v: queueing hidden", rep.OK, rep.Latency)
	}
}

func TestRunProgressAndSeries(t *testing.T) {
	url := ceiling(t)
	var progress bytes.Buffer
	rep := run(t, Config{URL: url, Type: "order", Connections: 2, Duration: 300 * time.Millisecond, Seed: 1,
		Progress: &progress, interval: 20 * time.Millisecond})
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], "msg/s") || !strings.Contains(lines[0], "p99") {
		t.Fatalf("progress:\n%s", progress.String())
	}
	if len(rep.Series) < 2 {
		t.Fatalf("series has %d samples", len(rep.Series))
	}
}

func TestRunStopsWhenInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) == 20 {
			cancel() // the operator presses ^C
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	rep, err := Run(ctx, Config{URL: srv.URL, Type: "order", Connections: 4, Duration: time.Hour, Seed: 1})
	if !errors.Is(err, context.Canceled) || rep == nil || !rep.Interrupted {
		t.Fatalf("err %v, report %v", err, rep)
	}
	checkInvariants(t, rep)
	if rep.Requests < 20-4 || rep.Requests > seen.Load() { // up to 4 in flight are abandoned
		t.Fatalf("report counts %d requests, server saw %d", rep.Requests, seen.Load())
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{Type: "order"}, "url"},
		{"ftp url", Config{URL: "ftp://x", Type: "order"}, "url"},
		{"no type", Config{URL: "http://127.0.0.1:1"}, "type"},
		{"mode", Config{URL: "http://127.0.0.1:1", Type: "o", Mode: "stream"}, "mode"},
		{"connections", Config{URL: "http://127.0.0.1:1", Type: "o", Connections: -1}, "connections"},
		{"rate", Config{URL: "http://127.0.0.1:1", Type: "o", Rate: -5}, "rate"},
		{"payload", Config{URL: "http://127.0.0.1:1", Type: "o", Payload: []byte("[]")}, "object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(t.Context(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one about %s", err, tt.want)
			}
		})
	}
	c, err := Config{URL: "http://127.0.0.1:1", Type: "o"}.withDefaults()
	if err != nil || c.Mode != ModeSingle || c.Connections != 64 || c.BatchSize != 100 || c.Duration != 10*time.Second ||
		c.Keys != 1000 || c.Seed == 0 || len(c.Payload) != 512 {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
}

func TestCompare(t *testing.T) {
	weir := &Report{ReqPerSec: 20000, MsgPerSec: 20000}
	bare := &Report{ReqPerSec: 60000, MsgPerSec: 60000}
	if got := Compare(weir, bare); !strings.Contains(got, "33.3% of the ceiling") {
		t.Fatalf("Compare = %q", got)
	}
	if got := Compare(weir, &Report{}); !strings.Contains(got, "no ceiling") {
		t.Fatalf("Compare with an empty ceiling = %q", got)
	}
}

var ceilingRun = flag.Duration("ceiling", 0, "measure the bare net/http ceiling for this long (single mode, 64 connections) and log it")

// TestCeilingFigure measures this machine's ceiling when asked:
//
//	go test -run TestCeilingFigure -ceiling 5s ./internal/bench/
func TestCeilingFigure(t *testing.T) {
	if *ceilingRun == 0 {
		t.Skip("measures only with -ceiling <duration>")
	}
	url := ceiling(t)
	rep := run(t, Config{URL: url, Type: "order", Connections: 64, Duration: *ceilingRun})
	var text strings.Builder
	rep.WriteText(&text)
	t.Logf("bare net/http ceiling:\n%s", text.String())
}
