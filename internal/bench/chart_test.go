package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// svgDoc is what the tests read back from a chart.
type svgDoc struct {
	root   string
	paths  map[string]string // data-series → d
	texts  []string
	width  string
	height string
}

// parseSVG decodes a chart with encoding/xml, failing the test if it is not well-formed.
func parseSVG(t *testing.T, b []byte) svgDoc {
	t.Helper()
	doc := svgDoc{paths: map[string]string{}}
	dec := xml.NewDecoder(bytes.NewReader(b))
	var inText bool
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, b)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range el.Attr {
				attr[a.Name.Local] = a.Value
			}
			if doc.root == "" {
				doc.root = el.Name.Space + " " + el.Name.Local
				doc.width, doc.height = attr["width"], attr["height"]
			}
			if el.Name.Local == "path" {
				doc.paths[attr["data-series"]] = attr["d"]
			}
			inText = el.Name.Local == "text"
		case xml.CharData:
			if inText {
				doc.texts = append(doc.texts, string(el))
			}
		case xml.EndElement:
			inText = false
		}
	}
	return doc
}

func (d svgDoc) hasText(s string) bool {
	for _, t := range d.texts {
		if strings.Contains(t, s) {
			return true
		}
	}
	return false
}

// points counts the coordinates pairs of a path's d.
func points(d string) int { return strings.Count(d, "M") + strings.Count(d, "L") }

func ptr(n int64) *int64 { return &n }

func TestWriteSVG(t *testing.T) {
	sched := Schedule{{Rate: 100, Duration: 2 * time.Second}, {Rate: 400, Duration: time.Second}, {Rate: 100, Duration: 2 * time.Second}}
	rep := &Report{Mode: ModeSingle, Connections: 8, Seed: 42, Schedule: sched, Requests: 900, OK: 850, ErrorCount: 50,
		Errors: map[string]int64{"503": 50}, Latency: Latency{P50: time.Millisecond, P99: 80 * time.Millisecond, P999: 120 * time.Millisecond}}
	for i, target := range []float64{100, 100, 400, 100, 100} {
		s := Sample{Elapsed: time.Duration(i+1) * time.Second, TargetReqPerSec: target, TargetMsgPerSec: target,
			SentPerSec: target, ReqPerSec: target, MsgPerSec: target - 10, Requests: int64(target), OK: int64(target) - 10,
			Errors: 10, Unavailable: 10, P50: time.Millisecond, P99: time.Duration(i+1) * 20 * time.Millisecond,
			Backlog: ptr(int64(i * 1000)), Resident: ptr(int64(100+i) << 20)}
		if i == 3 {
			s.P50, s.P99, s.OK = 0, 0, 0 // nothing answered 2xx that second: a gap, not a zero
		}
		rep.Series = append(rep.Series, s)
	}
	rep.Drain = []Sample{{Elapsed: 6 * time.Second, Backlog: ptr(500), Resident: ptr(90 << 20)}, {Elapsed: 7 * time.Second, Backlog: ptr(0), Resident: ptr(80 << 20)}}

	var b bytes.Buffer
	if err := WriteSVG(&b, rep, `spike <seed 42> & "friends"`); err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, b.Bytes())
	if doc.root != "http://www.w3.org/2000/svg svg" || doc.width == "" || doc.height == "" {
		t.Fatalf("root %q, size %s x %s", doc.root, doc.width, doc.height)
	}
	// Per-second series are steps: two points a sample; gauges one point a reading.
	for name, want := range map[string]int{"target": 10, "sent": 10, "accepted": 10, "refused": 10, "p50": 8, "p99": 8, "backlog": 7, "rss": 7} {
		if got := points(doc.paths[name]); got != want {
			t.Errorf("series %s has %d points, want %d: %q", name, got, want, doc.paths[name])
		}
	}
	if strings.Count(doc.paths["p99"], "M") != 2 {
		t.Errorf("p99 should break at the second without answers: %q", doc.paths["p99"])
	}
	for _, s := range []string{`spike <seed 42> & "friends"`, "seed 42", "rate (messages/s)", "latency", "backlog: accepted",
		"target", "accepted (2xx)", "p99", "resident memory", "400 req/s", "1 ms", "100 ms", "MiB", "load ends", "time since the start"} {
		if !doc.hasText(s) {
			t.Errorf("no text %q in the chart", s)
		}
	}
	if t.Failed() {
		t.Logf("%s", b.String())
	}
}

func TestWriteSVGClosedLoopWithoutGauges(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	t.Cleanup(srv.Close)
	rep := run(t, Config{URL: srv.URL, Type: "order", Connections: 2, Duration: 200 * time.Millisecond, Seed: 3, interval: 50 * time.Millisecond})
	var b bytes.Buffer
	if err := WriteSVG(&b, rep, "closed"); err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, b.Bytes())
	if _, ok := doc.paths["target"]; ok {
		t.Error("a closed loop has no target")
	}
	if points(doc.paths["accepted"]) != 2*len(rep.Series) || !doc.hasText("not measured") || !doc.hasText("closed loop") {
		t.Errorf("accepted %q for %d samples; texts %q", doc.paths["accepted"], len(rep.Series), doc.texts)
	}

	// An empty report still draws (an interrupted run may have no sample).
	b.Reset()
	if err := WriteSVG(&b, &Report{}, "empty"); err != nil {
		t.Fatal(err)
	}
	if doc := parseSVG(t, b.Bytes()); !doc.hasText("no request answered 2xx") {
		t.Errorf("empty report: %q", doc.texts)
	}
}

func TestChartAxes(t *testing.T) {
	if got := ticks(2, 10); len(got) != 11 || got[3] != 0.6 || got[10] != 2 {
		t.Fatalf("ticks(2, 10) = %v", got)
	}
	if got := ticks(50000, 5); len(got) != 6 || got[5] != 50000 {
		t.Fatalf("ticks(50000, 5) = %v", got)
	}
	for v, want := range map[float64]float64{0: 1, 0.5: 1, 7: 8, 44720: 50000, 611: 800, 1000: 1000, 1001: 1200} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
	if got := fmtCount(1200); got != "1.2k" {
		t.Errorf("fmtCount(1200) = %q", got)
	}
	if got := fmtDecade(1e8); got != "100 ms" {
		t.Errorf("fmtDecade(1e8) = %q", got)
	}
}
