package bench

import (
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestScheduleDueTimesPerPhase(t *testing.T) {
	ms := time.Millisecond
	s := Schedule{
		{Rate: 10, Duration: time.Second},      // 0, 100ms, ... 900ms
		{Rate: 50, Duration: 200 * ms},         // 1000ms, 1020ms, ... 1180ms
		{Rate: 0, Duration: 300 * ms},          // a pause
		{Rate: 4, Duration: 600 * ms},          // 1500ms, 1750ms, 2000ms
		{Rate: 2.5, Duration: 1000*ms + 1},     // 2100ms, 2500ms, 2900ms
		{Rate: 1000, Duration: 2*ms + 500_000}, // 3100ms+1ns + 0, 1ms, 2ms
	}
	var want []time.Duration
	for i := range 10 {
		want = append(want, time.Duration(i)*100*ms)
	}
	for i := range 10 {
		want = append(want, time.Second+time.Duration(i)*20*ms)
	}
	want = append(want, 1500*ms, 1750*ms, 2000*ms)
	want = append(want, 2100*ms, 2500*ms, 2900*ms)
	end := 3100*ms + 1
	want = append(want, end, end+ms, end+2*ms)

	got := slices.Collect(s.Times())
	if !slices.Equal(got, want) {
		t.Fatalf("due times\n got %v\nwant %v", got, want)
	}
	if s.Due() != int64(len(want)) {
		t.Fatalf("Due = %d, want %d", s.Due(), len(want))
	}
	if s.Duration() != 3100*ms+1+2*ms+500_000 {
		t.Fatalf("Duration = %s", s.Duration())
	}
	// Phase boundaries: a request due exactly at a boundary belongs to the phase it starts.
	for _, tt := range []struct {
		at   time.Duration
		due  int64
		rate float64
	}{
		{0, 0, 10},
		{1, 1, 10},
		{time.Second - 1, 10, 10},
		{time.Second, 10, 50},
		{time.Second + 1, 11, 50},
		{1200 * ms, 20, 0},
		{1499 * ms, 20, 0},
		{1500 * ms, 20, 4},
		{2100 * ms, 23, 2.5},
		{end, 26, 1000},
		{end + 1, 27, 1000},
		{s.Duration(), 29, 0},
		{time.Hour, 29, 0},
		{-time.Second, 0, 0},
	} {
		if got := s.DueBefore(tt.at); got != tt.due {
			t.Errorf("DueBefore(%s) = %d, want %d", tt.at, got, tt.due)
		}
		if got := s.RateAt(tt.at); got != tt.rate {
			t.Errorf("RateAt(%s) = %v, want %v", tt.at, got, tt.rate)
		}
	}
	if got := s.String(); !strings.HasPrefix(got, "10/s for 1s, 50/s for 200ms, 0/s for 300ms") {
		t.Fatalf("String = %q", got)
	}
}

// TestScheduleCountsAgree checks Due, DueBefore and Times against each other on random
// schedules, including rates that do not divide their durations.
func TestScheduleCountsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var s Schedule
		for range 1 + rng.IntN(5) {
			s = append(s, Phase{
				Rate:     math.Round(rng.Float64()*3000) / 10, // 0..300 in tenths
				Duration: time.Duration(1 + rng.Int64N(int64(2*time.Second))),
			})
		}
		times := slices.Collect(s.Times())
		if int64(len(times)) != s.Due() {
			t.Fatalf("%v: %d times, Due %d", s, len(times), s.Due())
		}
		if !slices.IsSorted(times) {
			t.Fatalf("%v: times out of order", s)
		}
		// Every phase's share: its count, and all its times inside it.
		var start time.Duration
		i := 0
		for _, p := range s {
			n := scheduled(p.Duration, p.Rate)
			if want := int64(math.Ceil(p.Duration.Seconds() * p.Rate)); n < want-1 || n > want+1 {
				t.Fatalf("%v: phase %v sends %d, want about %d", s, p, n, want)
			}
			for range n {
				if at := times[i]; at < start || at >= start+p.Duration {
					t.Fatalf("%v: time %s outside its phase %v starting at %s", s, at, p, start)
				}
				i++
			}
			start += p.Duration
		}
		for range 20 {
			at := time.Duration(rng.Int64N(int64(s.Duration() + time.Second)))
			want, _ := slices.BinarySearch(times, at) // times before at
			if got := s.DueBefore(at); got != int64(want) {
				t.Fatalf("%v: DueBefore(%s) = %d, %d times before it", s, at, got, want)
			}
		}
	}
}

func TestScheduleValidation(t *testing.T) {
	base := Config{URL: "http://127.0.0.1:1", Type: "o"}
	tests := []struct {
		name  string
		apply func(*Config)
		want  string
	}{
		{"negative rate", func(c *Config) { c.Schedule = Schedule{{Rate: -1, Duration: time.Second}} }, "phase 1: rate"},
		{"no duration", func(c *Config) { c.Schedule = Schedule{{Rate: 1, Duration: time.Second}, {Rate: 1}} }, "phase 2: duration"},
		{"all paused", func(c *Config) { c.Schedule = Schedule{{Rate: 0, Duration: time.Second}} }, "every phase has rate 0"},
		{"rate too", func(c *Config) { c.Schedule, c.Rate = Constant(5, time.Second), 5 }, "rate and schedule"},
		{"duration differs", func(c *Config) { c.Schedule, c.Duration = Constant(5, time.Second), 2*time.Second }, "schedule lasts 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.apply(&c)
			if _, err := c.withDefaults(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one about %q", err, tt.want)
			}
		})
	}
	c := base
	c.Schedule = Schedule{{Rate: 5, Duration: time.Second}, {Rate: 0, Duration: 2 * time.Second}}
	got, err := c.withDefaults()
	if err != nil || got.Duration != 3*time.Second {
		t.Fatalf("duration from the schedule: %s, %v", got.Duration, err)
	}
	c = base
	c.Rate, c.Duration = 7, 2*time.Second
	if got, err = c.withDefaults(); err != nil || !slices.Equal(got.Schedule, Constant(7, 2*time.Second)) {
		t.Fatalf("rate as a schedule: %v, %v", got.Schedule, err)
	}
}

func TestRunFollowsSchedule(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	sched := Schedule{{Rate: 100, Duration: 200 * time.Millisecond}, {Rate: 0, Duration: 100 * time.Millisecond}, {Rate: 300, Duration: 100 * time.Millisecond}}
	var backlog atomic.Int64
	rep := run(t, Config{URL: srv.URL, Type: "order", Connections: 4, Schedule: sched, Seed: 1, interval: 50 * time.Millisecond,
		Backlog: func() int64 { return backlog.Add(1) }, Resident: func() int64 { return 1 << 20 }})
	if due := sched.Due(); due != 50 || rep.Requests+rep.Missed != due || rep.Requests != seen.Load() {
		t.Fatalf("due %d; report %d requests + %d missed, server saw %d", due, rep.Requests, rep.Missed, seen.Load())
	}
	if rep.Rate != 0 || !slices.Equal(rep.Schedule, sched) || !strings.Contains(textOf(t, rep), "open loop 100/s for 200ms, 0/s for 100ms") {
		t.Fatalf("report's schedule: rate %v, %v", rep.Rate, rep.Schedule)
	}
	// The targets of the samples add up to the schedule, whatever the sampling times.
	var target float64
	var prev time.Duration
	for _, s := range rep.Series {
		target += s.TargetReqPerSec * (s.Elapsed - prev).Seconds()
		prev = s.Elapsed
		if s.Backlog == nil || s.Resident == nil || *s.Resident != 1<<20 {
			t.Fatalf("sample without its gauges: %+v", s)
		}
	}
	if math.Abs(target-50) > 1e-6 {
		t.Fatalf("sample targets add up to %v requests, want 50", target)
	}
}

func TestRunExpiresStaleRequests(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(40 * time.Millisecond) // one connection answers 25 of the 100 due per second
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	rep := run(t, Config{URL: srv.URL, Type: "order", Connections: 1, Rate: 100, Duration: 500 * time.Millisecond,
		Timeout: 100 * time.Millisecond, Seed: 1})
	// Each answer makes the next ticket 30ms later than the one before: past 100ms of waiting
	// the generator drops them as a client would, instead of sending them ever later.
	if rep.Errors["expired"] == 0 || rep.Requests+rep.Missed != 50 {
		t.Fatalf("requests %d, missed %d, errors %v", rep.Requests, rep.Missed, rep.Errors)
	}
	if rep.Latency.P50 < 40*time.Millisecond {
		t.Fatalf("latency from the due time %+v, want at least the server's 40ms", rep.Latency)
	}
}

func TestRunSamplesStatusClasses(t *testing.T) {
	codes := []int{http.StatusAccepted, http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusNotFound}
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(codes[int(n.Add(1))%len(codes)])
	}))
	t.Cleanup(srv.Close)
	rep := run(t, Config{URL: srv.URL, Type: "order", Connections: 2, Rate: 200, Duration: 300 * time.Millisecond, Seed: 1,
		interval: 100 * time.Millisecond})
	if rep.Requests == 0 || rep.Errors["429"] == 0 || rep.Errors["503"] == 0 || rep.Errors["502"] == 0 || rep.Errors["404"] == 0 {
		t.Fatalf("requests %d, errors %v", rep.Requests, rep.Errors)
	}
}

func TestHistogramMinus(t *testing.T) {
	var h histogram
	for range 100 {
		h.record(time.Second)
	}
	before := new(histSnapshot)
	h.addTo(before)
	for i := range 100 {
		h.record(time.Duration(i+1) * time.Millisecond)
	}
	after := new(histSnapshot)
	h.addTo(after)
	d := after.minus(before)
	if d.total != 100 || d.quantile(0.5) > 51*time.Millisecond || d.quantile(0.99) < 98*time.Millisecond || d.quantile(1) > 102*time.Millisecond {
		t.Fatalf("interval of 1..100ms: total %d, p50 %s, p99 %s, max %s", d.total, d.quantile(0.5), d.quantile(0.99), d.quantile(1))
	}
	if e := after.minus(after); e.total != 0 || e.quantile(0.99) != 0 {
		t.Fatalf("empty interval: %d, %s", e.total, e.quantile(0.99))
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tweir\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n"
	if n, ok := parseVmRSS([]byte(status)); !ok || n != 12345<<10 {
		t.Fatalf("parseVmRSS = %d, %v", n, ok)
	}
	if _, ok := parseVmRSS([]byte("Name:\tweir\n")); ok {
		t.Fatal("no VmRSS line, but ok")
	}
	if n, ok := ResidentBytes(); ok && n <= 0 {
		t.Fatalf("ResidentBytes = %d", n)
	}
}

func textOf(t *testing.T, rep *Report) string {
	t.Helper()
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
