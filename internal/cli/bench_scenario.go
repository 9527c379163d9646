package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/weirhq/weir/internal/app"
	"github.com/weirhq/weir/internal/bench"
)

// Scenarios of `weir bench --scenario`: named rate profiles, each an open-loop bench.Schedule
// built from flags alone (and, for overload, a measured capacity that the report records), so
// that a run is repeated by its flags and its seed.
const (
	scenarioSteady   = "steady"
	scenarioSpike    = "spike"
	scenarioOverload = "overload"
	scenarioBatch    = "batch"
)

var scenarioNames = []string{scenarioSteady, scenarioSpike, scenarioOverload, scenarioBatch}

const scenarioHelp = `Scenarios (--scenario NAME; open loop, latency from each request's due time; --seed repeats a
run's ids, keys and poison choice, the flags its schedule):

  steady    --rate R (default --base) for -d
  spike     --base for --before, --peak for --burst-for, --base for --after
            (default 5000/s for 10s, 30000/s for 10s, 5000/s for 10s)
  overload  --peak (default 5 x --capacity) for --burst-for (default 60s), then --base (default
            capacity/2) for --after (default 30s), after --before at --base if given; without
            --capacity, a closed-loop probe of --probe-for (5s) measures it first (with --self,
            against an in-process weir of its own, so that the run starts on a fresh one)
  batch     NDJSON batches of --batch at --rate requests/s (default --base/--batch) for -d

Scenarios use 256 connections unless -c says otherwise. --chart FILE draws the run as an SVG.
`

// Defaults of the scenario flags; overload has its own for the ones not given.
const (
	defaultBase           = 5000
	defaultPeak           = 30000
	defaultPhase          = 10 * time.Second
	defaultOverloadFor    = 60 * time.Second
	defaultRecoveryFor    = 30 * time.Second
	defaultProbeFor       = 5 * time.Second
	defaultOverloadFactor = 5
	defaultScenarioConns  = 256
	probeSeedXor          = 0x5eed // the probe's ids differ from the run's
)

// scenario is a --scenario run: its flags, and what it resolved them to.
type scenario struct {
	Name     string         `json:"name"`
	Seed     int64          `json:"seed"`
	Schedule bench.Schedule `json:"schedule"`
	// Capacity is the overload scenario's capacity in requests/s: --capacity, or what the
	// closed-loop probe measured (CapacityMeasured).
	Capacity         float64 `json:"capacity,omitempty"`
	CapacityMeasured bool    `json:"capacity_measured,omitempty"`
	// Rerun is the flags that repeat this run's schedule and ids.
	Rerun string `json:"rerun"`

	base, peak, capacity    float64
	before, burstFor, after time.Duration
	probeFor                time.Duration
	set                     map[string]bool // flags given on the command line
	rate                    float64         // --rate
	duration                time.Duration   // -d
	batch                   int             // --batch
	measureFirst            bool            // overload without --capacity
	ceiling                 bool            // --ceiling: measured before the target is up
}

// prepare checks the scenario's flags against the others and sets cfg up for it: seed,
// connections, mode and, unless the overload scenario must measure its capacity first, the
// schedule.
func (sc *scenario) prepare(cfg *bench.Config) error {
	if !slices.Contains(scenarioNames, sc.Name) {
		return usageError{fmt.Errorf("--scenario %q: want one of %s", sc.Name, strings.Join(scenarioNames, ", "))}
	}
	var errs []error
	conflict := func(flags ...string) {
		for _, f := range flags {
			if sc.set[f] {
				dash := "--"
				if len(f) == 1 {
					dash = "-"
				}
				errs = append(errs, fmt.Errorf("%s%s does not apply to --scenario %s", dash, f, sc.Name))
			}
		}
	}
	switch sc.Name {
	case scenarioSteady, scenarioBatch:
		conflict("peak", "before", "burst-for", "after", "capacity", "probe-for")
	case scenarioSpike:
		conflict("rate", "d", "capacity", "probe-for")
	case scenarioOverload:
		conflict("rate", "d")
	}
	// A spike may come in NDJSON batches: --base and --peak are then messages per second.
	if sc.set["mode"] && (cfg.Mode == bench.ModeBatch) != (sc.Name == scenarioBatch) && sc.Name != scenarioSpike {
		errs = append(errs, fmt.Errorf("--mode %s does not go with --scenario %s", cfg.Mode, sc.Name))
	}
	if sc.base <= 0 || sc.peak <= 0 || sc.capacity < 0 || sc.before < 0 || sc.burstFor <= 0 || sc.after < 0 || sc.probeFor <= 0 {
		errs = append(errs, errors.New("--base, --peak, --burst-for and --probe-for want > 0; --capacity, --before and --after >= 0"))
	}
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixMilli()
	}
	sc.Seed = cfg.Seed
	if !sc.set["c"] {
		cfg.Connections = defaultScenarioConns
	}
	cfg.Rate, cfg.Duration = 0, 0
	switch sc.Name {
	case scenarioSteady:
		sc.Schedule = bench.Constant(sc.rateOr(sc.base), sc.duration)
	case scenarioBatch:
		cfg.Mode = bench.ModeBatch
		sc.Schedule = bench.Constant(sc.rateOr(sc.base/float64(max(sc.batch, 1))), sc.duration)
	case scenarioSpike:
		per := 1.0 // messages per request
		if cfg.Mode == bench.ModeBatch {
			per = float64(max(sc.batch, 1))
		}
		sc.Schedule = phases(bench.Phase{Rate: sc.base / per, Duration: sc.before},
			bench.Phase{Rate: sc.peak / per, Duration: sc.burstFor}, bench.Phase{Rate: sc.base / per, Duration: sc.after})
	case scenarioOverload:
		if !sc.set["burst-for"] {
			sc.burstFor = defaultOverloadFor
		}
		if !sc.set["after"] {
			sc.after = defaultRecoveryFor
		}
		if !sc.set["before"] {
			sc.before = 0
		}
		if sc.capacity == 0 && !sc.set["peak"] {
			if sc.ceiling {
				return usageError{errors.New("--scenario overload with --ceiling needs --capacity (or --peak)")}
			}
			sc.measureFirst = true
			return nil
		}
		sc.overload(sc.capacity, false)
	}
	cfg.Schedule = sc.Schedule
	return nil
}

// rateOr is --rate if given, else def.
func (sc *scenario) rateOr(def float64) float64 {
	if sc.set["rate"] && sc.rate > 0 {
		return sc.rate
	}
	return def
}

// overload sets the overload scenario's schedule for a capacity in requests/s (0: unknown, --peak
// and --base given).
func (sc *scenario) overload(capacity float64, measured bool) {
	sc.Capacity, sc.CapacityMeasured = capacity, measured
	peak, base := sc.peak, sc.base
	if !sc.set["peak"] {
		peak = defaultOverloadFactor * capacity
	}
	if !sc.set["base"] && capacity > 0 {
		base = math.Round(capacity / 2)
	}
	sc.Schedule = phases(bench.Phase{Rate: base, Duration: sc.before},
		bench.Phase{Rate: peak, Duration: sc.burstFor}, bench.Phase{Rate: base, Duration: sc.after})
}

// phases drops the phases of no duration.
func phases(ps ...bench.Phase) bench.Schedule {
	return slices.DeleteFunc(ps, func(p bench.Phase) bool { return p.Duration <= 0 })
}

// measureCapacity is the overload scenario's first step without --capacity: a closed-loop run of
// --probe-for against cfg.URL with the same connections and messages (other ids), whose 2xx
// answers per second are the capacity.
func (sc *scenario) measureCapacity(ctx context.Context, cfg bench.Config, stdout io.Writer) error {
	p := cfg
	p.Schedule, p.Rate, p.Duration, p.Messages = nil, 0, sc.probeFor, 0
	p.Seed = cfg.Seed ^ probeSeedXor
	fmt.Fprintf(stdout, "== capacity probe: %s, closed loop, %d connections, %s\n", p.URL, p.Connections, p.Duration)
	rep, err := bench.Run(ctx, p)
	if err != nil {
		return fmt.Errorf("capacity probe: %w", err)
	}
	capacity := math.Floor(float64(rep.OK) / rep.Duration.Seconds()) // whole, to pass back as --capacity
	if capacity < 1 {
		return fmt.Errorf("capacity probe: %d requests answered 2xx (errors %v): no capacity to overload", rep.OK, rep.Errors)
	}
	fmt.Fprintf(stdout, "capacity    %.0f req/s (closed loop, %d ok, p99 %s)\n", capacity, rep.OK, fmtMs(rep.Latency.P99))
	sc.overload(capacity, true)
	return nil
}

// finish fills Rerun once the schedule is known.
func (sc *scenario) finish() {
	args := []string{"--scenario", sc.Name, "--seed", fmt.Sprint(sc.Seed)}
	switch sc.Name {
	case scenarioOverload:
		if sc.Capacity > 0 {
			args = append(args, "--capacity", fmt.Sprint(sc.Capacity))
		}
		for _, f := range []string{"base", "peak", "before", "burst-for", "after"} {
			if sc.set[f] {
				args = append(args, "--"+f, sc.flagValue(f))
			}
		}
	case scenarioSpike:
		args = append(args, "--base", fmt.Sprint(sc.base), "--peak", fmt.Sprint(sc.peak),
			"--before", sc.before.String(), "--burst-for", sc.burstFor.String(), "--after", sc.after.String())
	default:
		args = append(args, "--rate", fmt.Sprint(sc.Schedule[0].Rate), "-d", sc.duration.String())
	}
	sc.Rerun = strings.Join(args, " ")
}

func (sc *scenario) flagValue(name string) string {
	switch name {
	case "base":
		return fmt.Sprint(sc.base)
	case "peak":
		return fmt.Sprint(sc.peak)
	case "before":
		return sc.before.String()
	case "burst-for":
		return sc.burstFor.String()
	default:
		return sc.after.String()
	}
}

// selfBacklog is an in-process weir's backlog as the drain measures it: messages accepted
// and not yet both persisted and delivered (delivered or dead-lettered).
func selfBacklog(a *app.App) func() int64 {
	return func() int64 {
		done := min(a.Finished("persist"), a.FinishedPrefix("deliver."))
		return max(0, a.Accepted()-done)
	}
}

// flowBacklog is an in-process weir's backlog of workflow runs: accepted and not yet finished.
func flowBacklog(a *app.App) func() int64 {
	return func() int64 { return max(0, a.Accepted()-a.Finished("workflow")) }
}

// residentGauge returns a reader of this process's resident memory, or nil where it is not known.
func residentGauge() func() int64 {
	if _, ok := bench.ResidentBytes(); !ok {
		return nil
	}
	return func() int64 {
		n, _ := bench.ResidentBytes()
		return n
	}
}

// drainSampler returns a function that appends the gauges' current readings to rep.Drain.
func drainSampler(rep *bench.Report, backlog, resident func() int64) func() {
	if backlog == nil && resident == nil {
		return func() {}
	}
	return func() {
		s := bench.Sample{Elapsed: time.Since(rep.Started)}
		if backlog != nil {
			v := backlog()
			s.Backlog = &v
		}
		if resident != nil {
			v := resident()
			s.Resident = &v
		}
		rep.Drain = append(rep.Drain, s)
	}
}

// writeChart writes rep as an SVG chart to path.
func writeChart(path string, rep *bench.Report, title string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := bench.WriteSVG(f, rep, title); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
