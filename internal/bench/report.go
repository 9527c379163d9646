package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of one Run. It marshals to JSON as is (durations in nanoseconds, in
// fields named *_ns) so that runs can be stored and compared by tools.
type Report struct {
	URL         string    `json:"url"` // the endpoint posted to
	Type        string    `json:"type"`
	Mode        string    `json:"mode"`
	BatchSize   int       `json:"batch_size,omitempty"` // lines per request in batch mode
	Connections int       `json:"connections"`
	Rate        float64   `json:"rate,omitempty"` // target requests/s in open loop; 0 for closed loop
	Seed        int64     `json:"seed"`           // ids were "b-<seed>-<n>"
	Started     time.Time `json:"started"`

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
	// within Config.Timeout), "conn" (connect or transport failure) and "bad_response" (a 2xx
	// batch answer without a readable "accepted" count).
	Errors     map[string]int64 `json:"errors"`
	ErrorCount int64            `json:"error_count"`

	ReqPerSec float64 `json:"req_per_sec"`
	MsgPerSec float64 `json:"msg_per_sec"`

	// Latency is over OK requests only. In open loop it is measured from the time each request
	// was due, not the time it went out, so a server that falls behind shows its queueing here
	// instead of hiding it (coordinated omission).
	Latency Latency `json:"latency"`

	// Series is the throughput second by second.
	Series []Sample `json:"series"`
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

// Sample is the throughput of one interval of a run (normally one second).
type Sample struct {
	Elapsed   time.Duration `json:"elapsed_ns"` // end of the interval since the start of the run
	Requests  int64         `json:"requests"`
	Messages  int64         `json:"messages"`
	Errors    int64         `json:"errors"`
	ReqPerSec float64       `json:"req_per_sec"`
	MsgPerSec float64       `json:"msg_per_sec"`
}

// WriteText writes a human summary of the report to w.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	loop := "closed loop"
	if r.Rate > 0 {
		loop = fmt.Sprintf("open loop at %.0f req/s", r.Rate)
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
	if r.Requests > 0 {
		fmt.Fprintf(&b, "  %d B/request", r.Bytes/r.Requests)
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
	_, err := io.WriteString(w, b.String())
	return err
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
