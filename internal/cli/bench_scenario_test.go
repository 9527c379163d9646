package cli

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/bench"
)

// newScenario is a scenario with the flags' defaults, name, and the given flags marked as set.
func newScenario(name string, set ...string) *scenario {
	sc := &scenario{Name: name, base: defaultBase, peak: defaultPeak, before: defaultPhase, burstFor: defaultPhase,
		after: defaultPhase, probeFor: defaultProbeFor, duration: 10 * time.Second, batch: 100, set: map[string]bool{}}
	for _, f := range set {
		sc.set[f] = true
	}
	return sc
}

func TestScenarioSchedules(t *testing.T) {
	s := time.Second
	tests := []struct {
		name   string
		sc     *scenario
		mode   string
		want   bench.Schedule
		measur bool
	}{
		{"spike defaults", newScenario("spike"), bench.ModeSingle,
			bench.Schedule{{Rate: 5000, Duration: 10 * s}, {Rate: 30000, Duration: 10 * s}, {Rate: 5000, Duration: 10 * s}}, false},
		{"spike without a before", func() *scenario { sc := newScenario("spike", "before"); sc.before = 0; return sc }(), bench.ModeSingle,
			bench.Schedule{{Rate: 30000, Duration: 10 * s}, {Rate: 5000, Duration: 10 * s}}, false},
		{"steady at --rate", func() *scenario { sc := newScenario("steady", "rate"); sc.rate = 800; return sc }(), bench.ModeSingle,
			bench.Constant(800, 10*s), false},
		{"steady at --base", newScenario("steady"), bench.ModeSingle, bench.Constant(5000, 10*s), false},
		{"batch", newScenario("batch"), bench.ModeBatch, bench.Constant(50, 10*s), false},
		{"overload of a capacity", func() *scenario { sc := newScenario("overload", "capacity"); sc.capacity = 1000; return sc }(), bench.ModeSingle,
			bench.Schedule{{Rate: 5000, Duration: 60 * s}, {Rate: 500, Duration: 30 * s}}, false},
		{"overload with a before", func() *scenario {
			sc := newScenario("overload", "capacity", "before", "base")
			sc.capacity, sc.before, sc.base = 1000, 5*s, 300
			return sc
		}(), bench.ModeSingle, bench.Schedule{{Rate: 300, Duration: 5 * s}, {Rate: 5000, Duration: 60 * s}, {Rate: 300, Duration: 30 * s}}, false},
		{"overload to measure", newScenario("overload"), bench.ModeSingle, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := bench.Config{Mode: bench.ModeSingle, Connections: 64, Rate: 99, Duration: 10 * s}
			if err := tt.sc.prepare(&cfg); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Schedule, tt.want) || cfg.Mode != tt.mode || tt.sc.measureFirst != tt.measur {
				t.Fatalf("schedule %v mode %s measure %v; want %v %s %v", cfg.Schedule, cfg.Mode, tt.sc.measureFirst, tt.want, tt.mode, tt.measur)
			}
			if cfg.Connections != defaultScenarioConns || cfg.Seed == 0 || cfg.Rate != 0 || cfg.Duration != 0 {
				t.Fatalf("connections %d, seed %d, rate %v, duration %s", cfg.Connections, cfg.Seed, cfg.Rate, cfg.Duration)
			}
		})
	}
}

func TestScenarioFlagConflicts(t *testing.T) {
	tests := []struct {
		name string
		sc   *scenario
		want string
	}{
		{"unknown", newScenario("soak"), "want one of steady, spike"},
		{"spike with -d", newScenario("spike", "d"), "-d does not apply to --scenario spike"},
		{"spike with --rate", newScenario("spike", "rate"), "--rate does not apply"},
		{"steady with --peak", newScenario("steady", "peak"), "--peak does not apply"},
		{"overload with --ceiling", func() *scenario { sc := newScenario("overload"); sc.ceiling = true; return sc }(), "needs --capacity"},
		{"negative", func() *scenario { sc := newScenario("spike", "after"); sc.after = -time.Second; return sc }(), "want > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := bench.Config{Mode: bench.ModeSingle}
			err := tt.sc.prepare(&cfg)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a usage error about %q", err, tt.want)
			}
		})
	}
}

func TestScenarioMeasuresCapacity(t *testing.T) {
	url, stop, err := bench.Ceiling(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	sc := newScenario("overload", "probe-for")
	sc.probeFor = 200 * time.Millisecond
	cfg := bench.Config{URL: url, Type: "order", Mode: bench.ModeSingle, Connections: 2, Seed: 11}
	if err := sc.prepare(&cfg); err != nil || !sc.measureFirst {
		t.Fatalf("prepare: %v, measure %v", err, sc.measureFirst)
	}
	cfg.Connections = 2
	if err := sc.measureCapacity(t.Context(), cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !sc.CapacityMeasured || sc.Capacity < 1 || len(sc.Schedule) != 2 ||
		sc.Schedule[0].Rate != 5*sc.Capacity || sc.Schedule[1].Duration != defaultRecoveryFor {
		t.Fatalf("capacity %v (measured %v), schedule %v", sc.Capacity, sc.CapacityMeasured, sc.Schedule)
	}
	sc.finish()
	if !strings.Contains(sc.Rerun, "--scenario overload --seed 11 --capacity ") {
		t.Fatalf("rerun %q", sc.Rerun)
	}
}

// TestBenchScenarioWritesReportAndChart runs the command end to end against the bare ceiling
// server, at a tiny rate.
func TestBenchScenarioWritesReportAndChart(t *testing.T) {
	url, stop, err := bench.Ceiling(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	dir := t.TempDir()
	jsonPath, svgPath := filepath.Join(dir, "steady.json"), filepath.Join(dir, "steady.svg")
	var stdout, stderr bytes.Buffer
	err = runBench(t.Context(), []string{"--scenario", "steady", "--rate", "40", "-d", "300ms", "-c", "2", "--seed", "9",
		"--url", url, "--json", jsonPath, "--chart", svgPath}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "== scenario steady: 40/s for 300ms; seed 9") {
		t.Fatalf("stdout:\n%s", stdout.String())
	}
	var out struct {
		Scenario scenario     `json:"scenario"`
		Weir     bench.Report `json:"weir"`
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Scenario.Name != "steady" || out.Scenario.Seed != 9 || out.Weir.Seed != 9 ||
		out.Weir.Requests+out.Weir.Missed != 12 || len(out.Weir.Series) == 0 {
		t.Fatalf("report: scenario %+v, requests %d + missed %d, %d samples", out.Scenario, out.Weir.Requests, out.Weir.Missed, len(out.Weir.Series))
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("chart is not well-formed: %v", err)
		}
	}
	if !bytes.Contains(svg, []byte(`data-series="target"`)) {
		t.Fatal("chart has no target series")
	}
}

// A spike in NDJSON batches: --base and --peak are messages per second.
func TestScenarioSpikeInBatches(t *testing.T) {
	sc := newScenario("spike", "mode")
	sc.batch = 20
	cfg := bench.Config{Mode: bench.ModeBatch}
	if err := sc.prepare(&cfg); err != nil {
		t.Fatal(err)
	}
	want := bench.Schedule{{Rate: 250, Duration: 10 * time.Second}, {Rate: 1500, Duration: 10 * time.Second}, {Rate: 250, Duration: 10 * time.Second}}
	if !slices.Equal(cfg.Schedule, want) || cfg.Mode != bench.ModeBatch {
		t.Fatalf("schedule %v mode %s, want %v in batches", cfg.Schedule, cfg.Mode, want)
	}
	if err := newScenario("steady", "mode").prepare(&bench.Config{Mode: bench.ModeBatch}); err == nil {
		t.Fatal("steady in batches: want the usage error (the batch scenario is that)")
	}
}
