package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of one Run. It marshals to JSON as is (durations in nanoseconds, in
// fields named *_ns) so that runs can be stored and compared by tools.
type Report struct {
	URL         string  `json:"url"` // the endpoint posted to
	Type        string  `json:"type"`
	Mode        string  `json:"mode"`
	BatchSize   int     `json:"batch_size,omitempty"` // lines per request in batch mode
	Connections int     `json:"connections"`
	Rate        float64 `json:"rate,omitempty"` // target requests/s of a constant open loop; 0 otherwise
	// Schedule is the open loop's rate profile (one phase for a constant rate); empty for a
	// closed loop.
	Schedule Schedule  `json:"schedule,omitempty"`
	Seed     int64     `json:"seed"` // ids were "b-<seed>-<n>"
	Started  time.Time `json:"started"`

	// Duration runs from the first request to the end of the last response.
	Duration time.Duration `json:"duration_ns"`
	// Interrupted is set when the caller's context ended the run early.
	Interrupted bool `json:"interrupted,omitempty"`

	// Requests counts completed requests: Requests == OK + ErrorCount.
	Requests int64 `json:"requests"`
	// OK counts requests answered 2xx (with a readable result, in batch mode).
	OK int64 `json:"ok"`
	// Messages counts messages accepted: one per OK single request, the response's "accepted"
	// per OK batch.
	Messages int64 `json:"messages"`
	// Rejected counts lines a 2xx batch response rejected.
	Rejected int64 `json:"rejected,omitempty"`
	// Duplicates counts `"duplicate":true` in 2xx answers: resends the server already had.
	Duplicates int64 `json:"duplicates,omitempty"`
	// Poisoned counts poison messages (Config.Poison) in requests answered 2xx.
	Poisoned int64 `json:"poisoned,omitempty"`
	// Missed counts open-loop sends that were due before the end but never went out because
	// every connection was busy: the server (or this machine) could not keep the target rate.
	Missed int64 `json:"missed,omitempty"`
	// Bytes is the request body bytes sent.
	Bytes int64 `json:"bytes"`

	// Errors counts failed requests by HTTP status ("429", "503", ...), "timeout" (no answer
	// within Config.Timeout), "expired" (open loop: no free connection within Config.Timeout of
	// the time it was due, so never sent), "conn" (connect or transport failure) and
	// "bad_response" (a 2xx batch answer without a readable "accepted" count).
	Errors     map[string]int64 `json:"errors"`
	ErrorCount int64            `json:"error_count"`

	ReqPerSec float64 `json:"req_per_sec"`
	MsgPerSec float64 `json:"msg_per_sec"`

	// Latency is over OK requests only. In open loop it is measured from the time each request
	// was due, not the time it went out, so a server that falls behind shows its queueing here
	// instead of hiding it (coordinated omission).
	Latency Latency `json:"latency"`

	// Series is the run second by second.
	Series []Sample `json:"series"`
	// Drain, when the caller measured one after the load (weir bench --self), is the server's
	// backlog and memory second by second until its backlog was gone: samples with gauges only,
	// Elapsed still counted from the start of the run.
	Drain []Sample `json:"drain,omitempty"`
}

// Latency summarises a latency distribution. Quantiles are accurate to within 1.6%.
type Latency struct {
	Count int64         `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Sample is one interval of a run (normally one second). Requests are counted in the interval
// they were answered (or failed) in, and P50 and P99 are over the OK requests answered in it,
// measured from the time each was due in open loop: a second in which the server catches up on
// a queue shows that queue's wait.
type Sample struct {
	Elapsed time.Duration `json:"elapsed_ns"` // end of the interval since the start of the run
	// Sent counts requests that went out in the interval.
	Sent int64 `json:"sent"`
	// Requests counts requests answered or failed: OK + TooMany + Unavailable + ServerError +
	// OtherStatus + Failed == Requests == OK + Errors (over the series; a single sample may
	// be off by a request that finished while it was read).
	Requests    int64 `json:"requests"`
	Messages    int64 `json:"messages"` // messages accepted
	Errors      int64 `json:"errors"`
	OK          int64 `json:"ok"`           // answered 2xx
	TooMany     int64 `json:"status_429"`   // answered 429
	Unavailable int64 `json:"status_503"`   // answered 503
	ServerError int64 `json:"status_5xx"`   // answered with another 5xx
	OtherStatus int64 `json:"status_other"` // answered with another status that is not 2xx
	Failed      int64 `json:"failed"`       // no usable answer: timeout, expired, conn, bad_response

	SentPerSec float64 `json:"sent_per_sec"`
	ReqPerSec  float64 `json:"req_per_sec"`
	MsgPerSec  float64 `json:"msg_per_sec"`
	// TargetReqPerSec is what the open loop's schedule had due in the interval, per second;
	// TargetMsgPerSec the same in messages (times the batch size). Zero for a closed loop.
	TargetReqPerSec float64 `json:"target_req_per_sec,omitempty"`
	TargetMsgPerSec float64 `json:"target_msg_per_sec,omitempty"`

	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`

	// Backlog and Resident are Config.Backlog and Config.Resident read at the end of the
	// interval; absent when not known.
	Backlog  *int64 `json:"backlog,omitempty"`
	Resident *int64 `json:"rss_bytes,omitempty"`
}

// progress is the live line for the sample; open says whether the run is open loop.
func (s *Sample) progress(open bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6.1fs", s.Elapsed.Seconds())
	if open {
		fmt.Fprintf(&b, " target %6.0f sent %6.0f", s.TargetReqPerSec, s.SentPerSec)
	}
	fmt.Fprintf(&b, " %8.0f req/s %9.0f msg/s  p50 %-8s p99 %-8s", s.ReqPerSec, s.MsgPerSec, fmtDur(s.P50), fmtDur(s.P99))
	b.WriteString(" errors")
	if s.Errors == 0 {
		b.WriteString(" 0")
	}
	for _, c := range []struct {
		name string
		n    int64
	}{{"429", s.TooMany}, {"503", s.Unavailable}, {"5xx", s.ServerError}, {"other", s.OtherStatus}, {"failed", s.Failed}} {
		if c.n > 0 {
			fmt.Fprintf(&b, " %s:%d", c.name, c.n)
		}
	}
	if s.Backlog != nil {
		fmt.Fprintf(&b, "  backlog %d", *s.Backlog)
	}
	if s.Resident != nil {
		fmt.Fprintf(&b, "  rss %.0f MiB", float64(*s.Resident)/(1<<20))
	}
	b.WriteString("\n")
	return b.String()
}

// WriteText writes a human summary of the report to w.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	loop := "closed loop"
	switch {
	case r.Rate > 0:
		loop = fmt.Sprintf("open loop at %.0f req/s", r.Rate)
	case len(r.Schedule) > 0:
		loop = "open loop " + r.Schedule.String()
	}
	mode := r.Mode
	if r.BatchSize > 0 {
		mode = fmt.Sprintf("%s of %d", r.Mode, r.BatchSize)
	}
	fmt.Fprintf(&b, "target      POST %s (%s)\n", r.URL, mode)
	fmt.Fprintf(&b, "load        %d connections, %s, %s, seed %d\n", r.Connections, loop, fmtDur(r.Duration), r.Seed)
	if r.Interrupted {
		b.WriteString("            interrupted: figures cover the run so far\n")
	}
	fmt.Fprintf(&b, "requests    %d = %.0f req/s  (%d ok, %d errors", r.Requests, r.ReqPerSec, r.OK, r.ErrorCount)
	if r.Missed > 0 {
		fmt.Fprintf(&b, ", %d due but never sent", r.Missed)
	}
	b.WriteString(")\n")
	fmt.Fprintf(&b, "messages    %d accepted = %.0f msg/s", r.Messages, r.MsgPerSec)
	if r.Rejected > 0 || r.Duplicates > 0 {
		fmt.Fprintf(&b, "  (%d rejected, %d duplicates)", r.Rejected, r.Duplicates)
	}
	if r.Poisoned > 0 {
		fmt.Fprintf(&b, "  (%d poison)", r.Poisoned)
	}
	if sent := r.Requests - r.Errors["expired"]; sent > 0 {
		fmt.Fprintf(&b, "  %d B/request", r.Bytes/sent)
	}
	b.WriteString("\n")
	l := r.Latency
	fmt.Fprintf(&b, "latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n",
		fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.P999), fmtDur(l.Max), fmtDur(l.Mean))
	if len(r.Errors) > 0 {
		b.WriteString("errors     ")
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			fmt.Fprintf(&b, " %s: %d", k, r.Errors[k])
		}
		b.WriteString("\n")
	}
	if len(r.Series) > 1 {
		lo, hi := r.Series[0].MsgPerSec, r.Series[0].MsgPerSec
		for _, s := range r.Series {
			lo, hi = min(lo, s.MsgPerSec), max(hi, s.MsgPerSec)
		}
		fmt.Fprintf(&b, "per second  msg/s min %.0f max %.0f", lo, hi)
		const shown = 60
		if len(r.Series) <= shown {
			b.WriteString(":")
			for i, s := range r.Series {
				if i > 0 && i%10 == 0 {
					b.WriteString("\n           ")
				}
				fmt.Fprintf(&b, " %.0f", s.MsgPerSec)
			}
		}
		b.WriteString("\n")
	}
	if w, ok := r.worst(); ok {
		b.WriteString("worst second")
		if w.p99 > 0 {
			fmt.Fprintf(&b, " p99 %s at %.0fs;", fmtDur(w.p99), w.p99At.Seconds())
		}
		fmt.Fprintf(&b, " lowest answered %.0f%% of target at %.0fs", 100*w.ratio, w.ratioAt.Seconds())
		if w.backlogKnown {
			fmt.Fprintf(&b, "; backlog max %d at %.0fs", w.backlog, w.backlogAt.Seconds())
		}
		if w.rss > 0 {
			fmt.Fprintf(&b, "; rss max %.0f MiB", float64(w.rss)/(1<<20))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// worstSeconds are the extremes of an open-loop series, for the summary.
type worstSeconds struct {
	p99, p99At   time.Duration
	ratio        float64 // the lowest OK requests / due requests of a second
	ratioAt      time.Duration
	backlogKnown bool
	backlog      int64
	backlogAt    time.Duration
	rss          int64
}

// worst finds the extremes of the series (and drain); ok is false for a closed loop.
func (r *Report) worst() (worstSeconds, bool) {
	var w worstSeconds
	if len(r.Schedule) == 0 || len(r.Series) == 0 {
		return w, false
	}
	w.ratio = math.Inf(1)
	for _, s := range r.Series {
		if s.P99 > w.p99 {
			w.p99, w.p99At = s.P99, s.Elapsed
		}
		if s.TargetReqPerSec > 0 {
			if q := s.okPerSec() / s.TargetReqPerSec; q < w.ratio {
				w.ratio, w.ratioAt = q, s.Elapsed
			}
		}
	}
	if math.IsInf(w.ratio, 1) {
		w.ratio = 0
	}
	for _, s := range append(slices.Clip(r.Series), r.Drain...) {
		if s.Backlog != nil && (!w.backlogKnown || *s.Backlog > w.backlog) {
			w.backlogKnown, w.backlog, w.backlogAt = true, *s.Backlog, s.Elapsed
		}
		if s.Resident != nil {
			w.rss = max(w.rss, *s.Resident)
		}
	}
	return w, true
}

// okPerSec is the rate of requests answered 2xx in the sample.
func (s *Sample) okPerSec() float64 {
	if s.Requests == 0 {
		return 0
	}
	return s.ReqPerSec * float64(s.OK) / float64(s.Requests)
}

// Compare returns one line putting weir's throughput next to the bare net/http ceiling measured
// in the same run (see Ceiling), as a percentage of the ceiling.
func Compare(weir, ceiling *Report) string {
	if weir == nil || ceiling == nil || ceiling.MsgPerSec == 0 || ceiling.ReqPerSec == 0 {
		return "no ceiling to compare with"
	}
	return fmt.Sprintf("weir %.0f msg/s (%.0f req/s, p99 %s) vs bare net/http ceiling %.0f msg/s (%.0f req/s, p99 %s): %.1f%% of the ceiling",
		weir.MsgPerSec, weir.ReqPerSec, fmtDur(weir.Latency.P99),
		ceiling.MsgPerSec, ceiling.ReqPerSec, fmtDur(ceiling.Latency.P99),
		100*weir.MsgPerSec/ceiling.MsgPerSec)
}

// fmtDur prints a duration with three significant digits or so, which is all a latency
// figure can honestly claim.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}
