package bench

import (
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Chart geometry, in SVG user units (pixels at 100%).
const (
	chartWidth   = 960
	chartLeft    = 80  // room for the left axis labels
	chartRight   = 80  // room for the right axis (resident memory)
	chartTop     = 95  // title, two lines of subtitle
	panelHeight  = 180 // one panel's plot area
	panelGap     = 70  // x labels of a panel, then the next panel's title and legend
	chartBottom  = 50  // x axis title
	chartPanels  = 3
	chartHeight  = chartTop + chartPanels*panelHeight + (chartPanels-1)*panelGap + chartBottom
	plotWidth    = chartWidth - chartLeft - chartRight
	chartFont    = `font-family="sans-serif"`
	colorTarget  = "#555555"
	colorSent    = "#8fbc8f"
	colorOK      = "#1f77b4"
	colorErrors  = "#d62728"
	colorP99     = "#ff7f0e"
	colorP50     = "#9467bd"
	colorBacklog = "#8c564b"
	colorRSS     = "#17becf"
)

// WriteSVG draws the report as a chart for people: time on x, and three panels that share it —
// target, sent, accepted and refused rate in messages per second; the latency of each second
// (p50 and p99, log scale, from the time each request was due in open loop); and the server's
// backlog and resident memory when the run knew them (Config.Backlog, Config.Resident, and
// the Drain after the load). Dashed vertical lines mark the schedule's phase boundaries. title
// heads the chart. The SVG is plain: no scripts, no external references.
func WriteSVG(w io.Writer, r *Report, title string) error {
	c := &chart{r: r, per: 1}
	if r.BatchSize > 0 {
		c.per = float64(r.BatchSize)
	}
	c.end = r.Schedule.Duration()
	for _, s := range r.Series {
		c.end = max(c.end, s.Elapsed)
	}
	for _, s := range r.Drain {
		c.end = max(c.end, s.Elapsed)
	}
	c.end = max(c.end, time.Second)

	fmt.Fprintf(&c.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s font-size="12">`+"\n",
		chartWidth, chartHeight, chartWidth, chartHeight, chartFont)
	fmt.Fprintf(&c.b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", chartWidth, chartHeight)
	load, results := c.subtitle()
	c.text(chartLeft, 26, "start", `font-size="16" font-weight="bold"`, title)
	c.text(chartLeft, 46, "start", `fill="#444"`, load)
	c.text(chartLeft, 62, "start", `fill="#444"`, results)
	c.rates(c.panelTop(0))
	c.latency(c.panelTop(1))
	c.gauges(c.panelTop(2))
	c.text(chartLeft+plotWidth/2, chartHeight-14, "middle", "", "time since the start of the run (s)")
	c.b.WriteString("</svg>\n")
	_, err := io.WriteString(w, c.b.String())
	return err
}

// chart is the state of one WriteSVG.
type chart struct {
	b   strings.Builder
	r   *Report
	per float64       // messages per request
	end time.Duration // right end of the time axis
}

func (c *chart) panelTop(i int) float64 { return chartTop + float64(i)*(panelHeight+panelGap) }

// x maps an offset from the start of the run to the plot's x.
func (c *chart) x(t time.Duration) float64 {
	return chartLeft + plotWidth*t.Seconds()/c.end.Seconds()
}

// subtitle describes the load, and the results in a line of their own.
func (c *chart) subtitle() (load, results string) {
	r := c.r
	loop := "closed loop"
	if len(r.Schedule) > 0 {
		loop = "open loop " + r.Schedule.String()
	}
	mode := r.Mode
	if r.BatchSize > 0 {
		mode = fmt.Sprintf("%s of %d", r.Mode, r.BatchSize)
	}
	load = fmt.Sprintf("%s, %s, %d connections, seed %d", mode, loop, r.Connections, r.Seed)
	results = fmt.Sprintf("%d requests: %d ok, %d errors, %d due but never sent; %.0f msg/s accepted; latency p50 %s p99 %s p99.9 %s",
		r.Requests, r.OK, r.ErrorCount, r.Missed, r.MsgPerSec, fmtDur(r.Latency.P50), fmtDur(r.Latency.P99), fmtDur(r.Latency.P999))
	if len(r.Errors) > 0 {
		var kinds []string
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, r.Errors[k]))
		}
		results += "; errors: " + strings.Join(kinds, ", ")
	}
	return load, results
}

// rates is the first panel: target, sent, accepted and refused msg/s, second by second.
func (c *chart) rates(top float64) {
	r := c.r
	open := len(r.Schedule) > 0
	yMax := 0.0
	for _, s := range r.Series {
		yMax = max(yMax, s.TargetMsgPerSec, s.SentPerSec*c.per, s.MsgPerSec, c.refused(s))
	}
	yMax = niceCeil(yMax * 1.12) // room at the top for the phases' labels
	y := func(v float64) float64 { return top + panelHeight - panelHeight*v/yMax }
	c.frame(top, "rate (messages/s)")
	for _, v := range ticks(yMax, 5) {
		c.hgrid(y(v), fmtCount(v))
	}
	c.phases(top, true)
	var legend []legendItem
	if open {
		c.steps("target", colorTarget, `stroke-dasharray="6 3"`, false, y, func(s Sample) float64 { return s.TargetMsgPerSec })
		c.steps("sent", colorSent, "", false, y, func(s Sample) float64 { return s.SentPerSec * c.per })
		legend = append(legend, legendItem{"target", colorTarget, true}, legendItem{"sent", colorSent, false})
	}
	c.steps("accepted", colorOK, `stroke-width="2"`, false, y, func(s Sample) float64 { return s.MsgPerSec })
	c.steps("refused", colorErrors, "", false, y, c.refused)
	legend = append(legend, legendItem{"accepted (2xx)", colorOK, false}, legendItem{"refused or failed", colorErrors, false})
	c.legend(top, legend)
}

// refused is the rate of messages in requests that failed in the sample.
func (c *chart) refused(s Sample) float64 {
	if s.Requests == 0 {
		return 0
	}
	return s.ReqPerSec * float64(s.Errors) / float64(s.Requests) * c.per
}

// latency is the second panel: p50 and p99 of each second, on a log scale of whole decades.
func (c *chart) latency(top float64) {
	lo, hi := math.Inf(1), 0.0
	for _, s := range c.r.Series {
		for _, d := range []time.Duration{s.P50, s.P99} {
			if d > 0 {
				lo, hi = min(lo, float64(d)), max(hi, float64(d))
			}
		}
	}
	c.frame(top, "latency of the requests answered each second (log scale)")
	if hi == 0 {
		c.text(chartLeft+plotWidth/2, top+panelHeight/2, "middle", `fill="#888"`, "no request answered 2xx")
		return
	}
	dLo, dHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dHi <= dLo {
		dHi = dLo + 1
	}
	y := func(v float64) float64 {
		return top + panelHeight - panelHeight*(math.Log10(v)-dLo)/(dHi-dLo)
	}
	for e := dLo; e <= dHi; e++ {
		v := math.Pow(10, e)
		c.hgrid(y(v), fmtDecade(v))
	}
	c.phases(top, false)
	c.steps("p50", colorP50, "", true, y, func(s Sample) float64 { return float64(s.P50) })
	c.steps("p99", colorP99, `stroke-width="2"`, true, y, func(s Sample) float64 { return float64(s.P99) })
	c.legend(top, []legendItem{{"p99", colorP99, false}, {"p50", colorP50, false}})
}

// gauges is the third panel: the server's backlog (left axis) and resident memory (right axis).
func (c *chart) gauges(top float64) {
	all := append(append([]Sample(nil), c.r.Series...), c.r.Drain...)
	var bMax, mMax float64
	var hasB, hasM bool
	for _, s := range all {
		if s.Backlog != nil {
			hasB, bMax = true, max(bMax, float64(*s.Backlog))
		}
		if s.Resident != nil {
			hasM, mMax = true, max(mMax, float64(*s.Resident)/(1<<20))
		}
	}
	c.frame(top, "server backlog and memory")
	if !hasB && !hasM {
		c.text(chartLeft+plotWidth/2, top+panelHeight/2, "middle", `fill="#888"`, "not measured: only an in-process server (--self) tells")
		return
	}
	c.phases(top, false)
	if n := len(c.r.Series); len(c.r.Drain) > 0 && n > 0 {
		end := c.x(c.r.Series[n-1].Elapsed)
		fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" stroke-dasharray="2 2"/>`+"\n", end, top, end, top+panelHeight)
		if end > chartLeft+plotWidth/2 {
			c.text(end-4, top+panelHeight-6, "end", `fill="#444"`, "load ends, drain →")
		} else {
			c.text(end+4, top+panelHeight-6, "start", `fill="#444"`, "load ends, drain →")
		}
	}
	var legend []legendItem
	if hasB {
		bMax = niceCeil(bMax)
		y := func(v float64) float64 { return top + panelHeight - panelHeight*v/bMax }
		for _, v := range ticks(bMax, 5) {
			c.hgrid(y(v), fmtCount(v))
		}
		c.points("backlog", colorBacklog, y, all, func(s Sample) (float64, bool) {
			if s.Backlog == nil {
				return 0, false
			}
			return float64(*s.Backlog), true
		})
		legend = append(legend, legendItem{"backlog: accepted, not yet through (left)", colorBacklog, false})
	}
	if hasM {
		mMax = niceCeil(mMax)
		y := func(v float64) float64 { return top + panelHeight - panelHeight*v/mMax }
		for _, v := range ticks(mMax, 5) {
			c.text(chartLeft+plotWidth+6, y(v)+4, "start", `fill="`+colorRSS+`"`, strconv.FormatFloat(v, 'f', -1, 64)+" MiB")
		}
		c.points("rss", colorRSS, y, all, func(s Sample) (float64, bool) {
			if s.Resident == nil {
				return 0, false
			}
			return float64(*s.Resident) / (1 << 20), true
		})
		legend = append(legend, legendItem{"resident memory (MiB, right)", colorRSS, false})
	}
	c.legend(top, legend)
}

// frame draws a panel's box, title and time axis.
func (c *chart) frame(top float64, title string) {
	c.text(chartLeft, top-10, "start", `font-weight="bold"`, title)
	fmt.Fprintf(&c.b, `<rect x="%d" y="%.1f" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", chartLeft, top, plotWidth, panelHeight)
	for _, t := range ticks(c.end.Seconds(), 10) {
		x := c.x(time.Duration(t * float64(time.Second)))
		fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", x, top+panelHeight, x, top+panelHeight+4)
		c.text(x, top+panelHeight+16, "middle", "", strconv.FormatFloat(t, 'f', -1, 64))
	}
}

// hgrid draws a horizontal grid line at y with its label on the left axis.
func (c *chart) hgrid(y float64, label string) {
	fmt.Fprintf(&c.b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>`+"\n", chartLeft, y, chartLeft+plotWidth, y)
	c.text(chartLeft-6, y+4, "end", "", label)
}

// phases draws the schedule's phase boundaries; with labels, each phase's rate above it.
func (c *chart) phases(top float64, labels bool) {
	var at time.Duration
	for i, p := range c.r.Schedule {
		if i > 0 {
			x := c.x(at)
			fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#aaa" stroke-dasharray="4 4"/>`+"\n", x, top, x, top+panelHeight)
		}
		if labels {
			mid := c.x(at + p.Duration/2)
			c.text(mid, top+14, "middle", `fill="#666"`, fmtRate(p.Rate)+" req/s")
		}
		at += p.Duration
	}
}

// steps draws a per-interval series as a step line: each sample's value held from the end of
// the previous sample to its own end. With gaps, samples where v is 0 (no value: the log
// scale has no 0) leave a gap.
func (c *chart) steps(name, color, attrs string, gaps bool, y func(float64) float64, v func(Sample) float64) {
	var d strings.Builder
	var from time.Duration
	pen := false
	for _, s := range c.r.Series {
		val := v(s)
		if val <= 0 && gaps {
			pen = false
		} else {
			cmd := "L"
			if !pen {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f L%.1f %.1f ", cmd, c.x(from), y(val), c.x(s.Elapsed), y(val))
			pen = true
		}
		from = s.Elapsed
	}
	c.path(name, color, attrs, d.String())
}

// points draws gauge readings as a line through each reading, at the time it was read.
func (c *chart) points(name, color string, y func(float64) float64, all []Sample, v func(Sample) (float64, bool)) {
	var d strings.Builder
	pen := false
	for _, s := range all {
		val, ok := v(s)
		if !ok {
			pen = false
			continue
		}
		cmd := "L"
		if !pen {
			cmd = "M"
		}
		fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, c.x(s.Elapsed), y(val))
		pen = true
	}
	c.path(name, color, `stroke-width="2"`, d.String())
}

func (c *chart) path(name, color, attrs, d string) {
	if d == "" {
		return
	}
	fmt.Fprintf(&c.b, `<path data-series="%s" d="%s" fill="none" stroke="%s" %s/>`+"\n", name, strings.TrimSpace(d), color, attrs)
}

// legendItem is one entry of a panel's legend.
type legendItem struct {
	label  string
	color  string
	dashed bool
}

// legend writes the items right-aligned above the panel.
func (c *chart) legend(top float64, items []legendItem) {
	x := float64(chartLeft + plotWidth)
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		x -= 7 * float64(len(it.label)) // a rough width of the label at 12px
		c.text(x, top-10, "start", "", it.label)
		x -= 26
		dash := ""
		if it.dashed {
			dash = ` stroke-dasharray="6 3"`
		}
		fmt.Fprintf(&c.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", x, top-14, x+20, top-14, it.color, dash)
		x -= 14
	}
}

// text writes an escaped text element.
func (c *chart) text(x, y float64, anchor, attrs, s string) {
	fmt.Fprintf(&c.b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s>`, x, y, anchor, attrs)
	xml.EscapeText(&c.b, []byte(s))
	c.b.WriteString("</text>\n")
}

// fmtDecade labels a power of ten nanoseconds: 100 µs, 1 ms, 10 s.
func fmtDecade(ns float64) string {
	for _, u := range []struct {
		name string
		size float64
	}{{"s", 1e9}, {"ms", 1e6}, {"µs", 1e3}} {
		if ns >= u.size {
			return strconv.FormatFloat(ns/u.size, 'f', -1, 64) + " " + u.name
		}
	}
	return strconv.FormatFloat(ns, 'f', -1, 64) + " ns"
}

// niceCeil rounds v up to a round number (at least 1): 1, 1.2, 1.5, 2, ... 8 times a power of
// ten.
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// niceStep rounds v to 1, 2 or 5 times a power of ten, for axis ticks.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// ticks returns 0 and about n round values up to hi.
func ticks(hi float64, n int) []float64 {
	step := niceStep(hi / float64(n))
	scale := math.Pow(10, max(0, -math.Floor(math.Log10(step)))) // the step's decimals
	var out []float64
	for i := 0; ; i++ {
		v := float64(i) * step
		if v > hi*(1+1e-9) {
			return out
		}
		out = append(out, math.Round(v*scale)/scale) // 0.6, not 0.6000000000000001
	}
}

// fmtCount prints an axis value: 950, 12k, 1.5M.
func fmtCount(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
}
