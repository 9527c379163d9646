package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	dronedelivery "github.com/weirhq/weir/examples/drone-delivery"
	"github.com/weirhq/weir/examples/quickstart"
	"github.com/weirhq/weir/internal/app"
	"github.com/weirhq/weir/internal/bench"
	"github.com/weirhq/weir/internal/config"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/partner"
)

const benchHelp = `Posts messages to an ingest endpoint and reports throughput and latency.

  weir bench --self                 start an in-process weir (quickstart config, fresh data dir),
                                    measure ingest, then wait until every accepted message is in
                                    SQLite and at the demo partner, and report the end-to-end rate
  weir bench --url http://127.0.0.1:8080 --client demo --token demo-token
  weir bench --ceiling ...          also measure a bare net/http handler in the same run
  weir bench --self --poison 0.01   mark 1% of the messages as poison: the demo partner answers
                                    500 to them every time, so they end as dead letters after a
                                    short retry schedule (--retry-schedule, default 200ms,500ms,1s)

  weir bench --workflow             run the Drone Delivery example's five-step workflow in-process
                                    against the demo services (--service-latency 5ms-20ms) and
                                    report completed workflows/s and ingest → finished latency

With --self the demo partner is the bench's own (the same verifying receiver): it also records
each good message's end-to-end latency, from weir's ingest (the ingested_at the quickstart
transform stamps) to the verified delivery.

`

// defaultPoisonSchedule is the demo endpoint's retry schedule with --poison and no
// --retry-schedule: four attempts within about two seconds, then a dead letter, so that a run
// ends. The default delivery schedule would keep poison messages for a day.
const defaultPoisonSchedule = "200ms,500ms,1s"

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchHelp, scenarioHelp, "\n"); fs.PrintDefaults() }
	var cfg bench.Config
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "weir ingest base URL")
	fs.StringVar(&cfg.Type, "type", "order", "message type")
	fs.StringVar(&cfg.Client, "client", "demo", "client id")
	fs.StringVar(&cfg.Token, "token", "demo-token", "client token")
	fs.StringVar(&cfg.Mode, "mode", "single", "single (one JSON per request) or batch (NDJSON)")
	fs.IntVar(&cfg.BatchSize, "batch", 100, "messages per batch request")
	fs.IntVar(&cfg.Connections, "c", 64, "connections")
	fs.DurationVar(&cfg.Duration, "d", 10*time.Second, "duration")
	fs.Float64Var(&cfg.Rate, "rate", 0, "requests/s (open loop); 0 = as fast as answers come")
	fs.Int64Var(&cfg.Seed, "seed", 0, "seed for ids and keys (0: from the clock)")
	fs.IntVar(&cfg.Keys, "keys", 1000, "distinct ordering keys (customer ids)")
	payload := fs.String("payload", "", "JSON template file (default: the 512 B reference order)")
	ceiling := fs.Bool("ceiling", false, "first measure a bare net/http 202 handler with the same load")
	self := fs.Bool("self", false, "run against an in-process weir on the quickstart config")
	selfConfig := fs.String("self-config", "", "with --self: this config instead of the quickstart")
	hold := fs.Bool("hold", false, "with --self: keep the pipeline stopped during the load (ingest alone, the log absorbs it), then measure the drain")
	fs.Float64Var(&cfg.Poison, "poison", 0, "fraction (0..1) of messages marked as poison; with --self the demo partner refuses them (500) until they are dead letters")
	fs.Int64Var(&cfg.Messages, "messages", 0, "stop after sending this many messages (0: run for -d)")
	retrySchedule := fs.String("retry-schedule", "", "with --self: the demo endpoint's delivery retry schedule, comma-separated delays with no jitter (e.g. 200ms,500ms,1s); default with --poison: "+defaultPoisonSchedule)
	flow := fs.Bool("workflow", false, "run the Drone Delivery workflow example in-process against the demo services (implies the delivery type and client)")
	var fo flowOptions
	fs.StringVar(&fo.latency, "service-latency", "5ms-20ms", "with --workflow: latency of each demo service call")
	fs.Float64Var(&fo.transient, "service-transient", 0, "with --workflow: fraction of service calls answered 503")
	fs.Float64Var(&fo.permanent, "service-permanent", 0, "with --workflow: fraction of requests a service refuses for good")
	fs.IntVar(&fo.concurrency, "workflow-concurrency", 0, "with --workflow: runtime.workflow_concurrency (default: the config's)")
	bufURL := fs.String("buffer", "", "with --self or --workflow: the buffer (nats://…, kafka://…; default: the config's); go run ./cmd/weir-devcluster nats|kafka starts one on loopback")
	priority := fs.Bool("ingest-priority", false, "with --self or --workflow: runtime.ingest_priority on (stages yield the CPU to a burst of ingest)")
	maxBacklog := fs.Int64("max-backlog", 0, "with --self or --workflow: limits.max_backlog, the backlog above which ingest answers 429 (default: the config's)")
	stateURL := fs.String("state", "", "with --self or --workflow: the state store (postgres://…; default: the config's); needs an external --buffer")
	adapt := fs.Bool("adaptive-concurrency", false, "with --self or --workflow: runtime.adaptive_concurrency on")
	minSync := fs.String("min-sync-interval", "", "with --self or --workflow: embedded.min_sync_interval (default: the config's, 500us)")
	jsonOut := fs.String("json", "", "write the report(s) as JSON to this file")
	cpuProfile := fs.String("cpuprofile", "", "with --self: write a CPU profile of the weir run (generator included) to this file")
	fs.DurationVar(&cfg.Timeout, "timeout", bench.DefaultTimeout, "per request; in open loop also how long a due request may wait for a free connection before it counts as expired")
	var sc scenario
	fs.StringVar(&sc.Name, "scenario", "", "a named open-loop scenario: "+strings.Join(scenarioNames, ", ")+" (see above)")
	fs.Float64Var(&sc.base, "base", defaultBase, "scenarios: the base rate, requests/s; overload: capacity/2 unless given")
	fs.Float64Var(&sc.peak, "peak", defaultPeak, "spike: the burst's rate, requests/s; overload: the overload's, 5 x capacity unless given")
	fs.DurationVar(&sc.before, "before", defaultPhase, "spike: how long --base runs before the burst; overload: 0 unless given")
	fs.DurationVar(&sc.burstFor, "burst-for", defaultPhase, "spike: the burst's duration; overload: the overload's, 60s unless given")
	fs.DurationVar(&sc.after, "after", defaultPhase, "spike: how long --base runs after the burst; overload: the recovery's, 30s unless given")
	fs.Float64Var(&sc.capacity, "capacity", 0, "overload: the server's capacity in requests/s (0: measure it with a closed-loop probe first)")
	fs.DurationVar(&sc.probeFor, "probe-for", defaultProbeFor, "overload without --capacity: how long the closed-loop probe runs")
	chart := fs.String("chart", "", "write the run as an SVG chart to this file (rate, latency, backlog and memory by second)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sc.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { sc.set[f.Name] = true })
	if *payload != "" {
		b, err := os.ReadFile(*payload)
		if err != nil {
			return err
		}
		cfg.Payload = b
	}
	cfg.Progress = stderr
	out := map[string]any{}
	so := selfOptions{hold: *hold, sync: *minSync, buf: *bufURL, state: *stateURL, adapt: *adapt, maxBacklog: *maxBacklog, priority: *priority}
	if *retrySchedule == "" && cfg.Poison > 0 {
		*retrySchedule = defaultPoisonSchedule
	}
	if *retrySchedule != "" {
		r, err := parseSchedule(*retrySchedule)
		if err != nil {
			return err
		}
		so.retry = r
	}
	if sc.Name != "" {
		sc.rate, sc.duration, sc.batch, sc.ceiling = cfg.Rate, cfg.Duration, cfg.BatchSize, *ceiling
		if err := sc.prepare(&cfg); err != nil {
			return err
		}
	}

	if *ceiling && *flow {
		n := int(cfg.Messages)
		if n == 0 {
			n = 20000
		}
		conc := fo.concurrency
		if conc == 0 {
			conc = 512 // runtime.workflow_concurrency's default
		}
		c, err := flowCeiling(ctx, fo, n, conc, stdout)
		if err != nil {
			return err
		}
		out["workflow_ceiling"] = c
	} else if *ceiling {
		url, stop, err := bench.Ceiling(ctx)
		if err != nil {
			return err
		}
		c := cfg
		c.URL = url
		fmt.Fprintln(stdout, "== bare net/http ceiling")
		rep, err := bench.Run(ctx, c)
		stop()
		if err != nil {
			return err
		}
		rep.WriteText(stdout)
		out["ceiling"] = rep
	}

	if *flow {
		if *payload == "" {
			b, err := dronedelivery.Files.ReadFile("delivery.json")
			if err != nil {
				return err
			}
			cfg.Payload = b
		}
		cfg.Type, cfg.Client, cfg.Token = "delivery", "drone-app", "drone-token"
	}
	// start starts the in-process weir of --self or --workflow; nothing for an external --url.
	start := func() (*app.App, *selfPartner, func() error, error) {
		switch {
		case *flow:
			a, stop, err := startFlow(ctx, fo, so, stderr)
			return a, nil, stop, err
		case *self:
			return startSelf(ctx, *selfConfig, so, stderr)
		}
		return nil, nil, nil, nil
	}
	if sc.measureFirst {
		// The probe gets an in-process weir of its own, so that the run starts on a fresh one,
		// not on the probe's backlog.
		probe := cfg
		pa, _, stopProbe, err := start()
		if err != nil {
			return err
		}
		if pa != nil {
			probe.URL = "http://" + pa.IngestAddr()
		}
		err = sc.measureCapacity(ctx, probe, stdout)
		if stopProbe != nil {
			err = errors.Join(err, stopProbe())
			debug.FreeOSMemory() // the run's resident memory should not start with the probe's
		}
		if err != nil {
			return err
		}
		cfg.Schedule = sc.Schedule
	}
	a, sp, stopSelf, err := start()
	if err != nil {
		return err
	}
	if a != nil {
		cfg.URL = "http://" + a.IngestAddr()
		cfg.Backlog, cfg.Resident = selfBacklog(a), residentGauge()
		if *flow {
			cfg.Backlog = flowBacklog(a)
		}
	}
	if sc.Name != "" {
		sc.finish()
		out["scenario"] = &sc
		fmt.Fprintf(stdout, "== scenario %s: %s; seed %d (rerun: weir bench %s)\n", sc.Name, sc.Schedule, sc.Seed, sc.Rerun)
	}
	fmt.Fprintf(stdout, "== weir %s (%s)\n", cfg.URL, cfg.Mode)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := cpuNow()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		if stopSelf != nil {
			stopSelf()
		}
		return err
	}
	cpu1 := cpuNow()
	rep.WriteText(stdout)
	out["weir"] = rep
	if c, ok := out["ceiling"].(*bench.Report); ok {
		fmt.Fprintln(stdout, bench.Compare(rep, c))
	}
	tick := drainSampler(rep, cfg.Backlog, cfg.Resident)
	if a != nil && *flow {
		f, err := waitFlows(ctx, a, rep.Started, tick, stdout)
		if err != nil {
			stopSelf()
			return err
		}
		out["workflows"] = f
		if cpu := cpuUse(cpu0, cpu1, cpuNow(), rep.Messages, f.Accepted); cpu != nil {
			cpu.WriteText(stdout)
			out["cpu"] = cpu
		}
		if err := stopSelf(); err != nil {
			return err
		}
	} else if a != nil {
		from := rep.Started
		if *hold {
			from = time.Now()
			a.StartStages()
		}
		e2e := waitDrained(ctx, a, sp, rep.Poisoned, from, tick, stdout)
		out["end_to_end"] = e2e
		if cpu := cpuUse(cpu0, cpu1, cpuNow(), rep.Messages, e2e.Accepted); cpu != nil {
			cpu.WriteText(stdout)
			out["cpu"] = cpu
		}
		if err := stopSelf(); err != nil {
			return err
		}
	}
	if *chart != "" {
		title := "weir bench against " + cfg.URL
		switch {
		case *flow:
			title = "weir bench --workflow (in-process weir, Drone Delivery)"
		case *self:
			title = "weir bench --self (in-process weir)"
		}
		if sc.Name != "" {
			title += ": scenario " + sc.Name
		}
		if err := writeChart(*chart, rep, title); err != nil {
			return err
		}
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(out, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// selfOptions are the --self choices.
type selfOptions struct {
	hold  bool
	retry *config.Retry // the demo endpoint's delivery schedule (nil: the config's)
	sync  string        // embedded.min_sync_interval ("": the config's)
	buf   string        // buffer ("": the config's)
	state string        // state store ("": the config's)
	// maxBacklog is limits.max_backlog (0: the config's)
	maxBacklog int64
	priority   bool // runtime.ingest_priority on
	adapt      bool // runtime.adaptive_concurrency on
}

// apply sets the --self choices that apply to any config.
func (so selfOptions) apply(cfg *config.Config) error {
	if so.buf != "" {
		cfg.Buffer = so.buf
	}
	if so.priority {
		cfg.Runtime.IngestPriority = true
	}
	if so.maxBacklog > 0 {
		cfg.Limits.MaxBacklog = so.maxBacklog
	}
	if so.state != "" {
		cfg.State = so.state
	}
	if so.adapt {
		cfg.Runtime.AdaptiveConcurrency = true
	}
	if so.sync == "" {
		return nil
	}
	d, err := time.ParseDuration(so.sync)
	if err != nil || d < 0 {
		return usageError{fmt.Errorf("--min-sync-interval %q: want a duration like 500us or 0s", so.sync)}
	}
	cd := config.Duration(d)
	cfg.Embedded.MinSyncInterval = &cd
	return nil
}

// parseSchedule reads a comma-separated list of delays into a retry schedule without jitter.
func parseSchedule(s string) (*config.Retry, error) {
	zero := 0.0
	r := &config.Retry{Jitter: &zero}
	for f := range strings.SplitSeq(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("--retry-schedule %q: want delays like 200ms,500ms,1s", s)
		}
		r.Schedule = append(r.Schedule, config.Duration(d))
	}
	return r, nil
}

// selfPartner is the demo partner of a --self run: the same verifying receiver as `weir serve`'s,
// which also refuses poison messages (bench.IsPoison) with 500 and records, for every good
// message it accepts, the end-to-end latency from weir's ingest to the verified delivery.
type selfPartner struct {
	rc       *partner.Receiver
	latency  bench.Recorder
	good     atomic.Int64 // distinct good messages accepted
	refused  atomic.Int64 // attempts refused as poison
	lastGood atomic.Int64 // unix ns of the latest good delivery
	noStamp  atomic.Int64 // good deliveries without a readable ingested_at
}

func newSelfPartner(log *slog.Logger) (*selfPartner, error) {
	secret, err := deliver.ParseSecret(quickstart.DemoSecret)
	if err != nil {
		return nil, err
	}
	sp := &selfPartner{}
	sp.rc = partner.New(partner.Config{Secrets: [][]byte{secret}, Keep: 1000, Logger: log.With("component", "demo-partner"),
		Refuse: func(_ string, body []byte) bool {
			if bench.IsPoison(body) {
				sp.refused.Add(1)
				return true
			}
			return false
		},
		OnAccept: sp.accepted})
	return sp, nil
}

func (sp *selfPartner) accepted(d partner.Delivery) {
	if d.Duplicate {
		return
	}
	sp.good.Add(1)
	at := d.Received.UnixNano()
	for {
		last := sp.lastGood.Load()
		if at <= last || sp.lastGood.CompareAndSwap(last, at) {
			break
		}
	}
	if t, ok := ingestedAt(d.Body); ok {
		sp.latency.Record(d.Received.Sub(t))
	} else {
		sp.noStamp.Add(1)
	}
}

// ingestedAt reads the "ingested_at" the quickstart transform stamps on each order: when weir
// accepted it (RFC 3339 with nanoseconds).
func ingestedAt(body []byte) (time.Time, bool) {
	const key = `"ingested_at":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return time.Time{}, false
	}
	v := body[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(v[:j]))
	return t, err == nil
}

// useSelfPartner serves sp on a free loopback port and points the config's demo-partner
// endpoints (loopback URLs ending in /webhook) at it, with retry as their schedule when set.
func useSelfPartner(cfg *config.Config, sp *selfPartner, retry *config.Retry) (func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo partner: %w", err)
	}
	srv := &http.Server{Handler: sp.rc, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	found := false
	for i := range cfg.Endpoints {
		e := &cfg.Endpoints[i]
		u, err := url.Parse(e.URL)
		if err != nil || u.Hostname() != "127.0.0.1" || u.Path != "/webhook" {
			continue
		}
		found = true
		e.URL = "http://" + ln.Addr().String() + "/webhook"
		if retry != nil {
			e.Retry = retry
		}
	}
	if !found {
		srv.Close()
		return nil, errors.New("--self: the config has no demo-partner endpoint (a loopback URL ending in /webhook)")
	}
	return func() { srv.Close() }, nil
}

// startSelf runs weir in-process on a fresh data dir with the quickstart config (or another),
// its demo partner included.
func startSelf(ctx context.Context, path string, so selfOptions, stderr io.Writer) (*app.App, *selfPartner, func() error, error) {
	dir, err := os.MkdirTemp("", "weir-bench-*")
	if err != nil {
		return nil, nil, nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var cfg *config.Config
	var stopPartner func()
	if path == "" {
		cfg, stopPartner, err = demoConfig(dir, log)
	} else {
		cfg, stopPartner, err = withDemoPartner(path, filepath.Join(dir, "data"), log)
		if err == nil {
			cfg.DataDir = filepath.Join(dir, "data")
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	// The config's partner gives way to the bench's own, which measures.
	stopPartner()
	sp, err := newSelfPartner(log)
	if err == nil {
		stopPartner, err = useSelfPartner(cfg, sp, so.retry)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	var a *app.App
	if err = so.apply(cfg); err == nil {
		a, err = app.New(ctx, cfg, app.Options{Logger: log, IngestAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", HoldStages: so.hold})
	}
	if err != nil {
		stopPartner()
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	return a, sp, func() error {
		cancel()
		err := <-done
		stopPartner()
		os.RemoveAll(dir)
		return err
	}, nil
}

// EndToEnd is how fast accepted messages reached every effect.
type EndToEnd struct {
	Accepted  int64         `json:"accepted"`
	Persisted int64         `json:"persisted"`
	Delivered int64         `json:"delivered"`  // deliveries finished: accepted by the partner, or dead-lettered
	Elapsed   time.Duration `json:"elapsed_ns"` // from the first request (or the release of a held pipeline) to the last effect
	PerSec    float64       `json:"msg_per_sec"`
	Complete  bool          `json:"complete"`

	// Poisoned is how many accepted messages were poison (--poison); Refused counts the
	// delivery attempts the partner refused (each poison message's, until its dead letter).
	Poisoned int64 `json:"poisoned,omitempty"`
	Refused  int64 `json:"refused_attempts,omitempty"`
	// Good counts the distinct good (not poison) messages the partner accepted; GoodElapsed runs
	// from the same start as Elapsed to the last of them, so GoodPerSec leaves out the tail of
	// the poison messages' retry schedule.
	Good        int64         `json:"good_delivered"`
	GoodElapsed time.Duration `json:"good_elapsed_ns"`
	GoodPerSec  float64       `json:"good_msg_per_sec"`
	// GoodLatency is each good message's end-to-end latency: from weir accepting it (its
	// ingested_at) to the partner accepting its verified delivery.
	GoodLatency bench.Latency `json:"good_latency"`
}

// waitDrained waits until every accepted message is persisted and delivered (or 5 minutes), and
// calls tick once a second meanwhile and once at the end.
func waitDrained(ctx context.Context, a *app.App, sp *selfPartner, poisoned int64, from time.Time, tick func(), stdout io.Writer) EndToEnd {
	accepted := a.Accepted()
	e := EndToEnd{Accepted: accepted, Poisoned: poisoned}
	deadline := time.Now().Add(5 * time.Minute)
	lastReport := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
			tick()
			fmt.Fprintf(os.Stderr, "drain %5.1fs: processed %d persisted %d delivered %d of %d\n", time.Since(from).Seconds(),
				a.Finished("process"), a.Finished("persist"), a.FinishedPrefix("deliver."), accepted)
		}
		e.Persisted, e.Delivered = a.Finished("persist"), a.FinishedPrefix("deliver.")
		if e.Persisted >= accepted && e.Delivered >= accepted {
			e.Complete = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	tick()
	e.Elapsed = time.Since(from)
	e.PerSec = float64(min(e.Persisted, e.Delivered)) / e.Elapsed.Seconds()
	fmt.Fprintf(stdout, "end to end: %d accepted, %d in SQL, %d delivered in %s: %.0f msg/s (complete: %v)\n",
		e.Accepted, e.Persisted, e.Delivered, e.Elapsed.Round(time.Millisecond), e.PerSec, e.Complete)
	if sp != nil {
		e.Good, e.Refused = sp.good.Load(), sp.refused.Load()
		if last := sp.lastGood.Load(); last > 0 {
			e.GoodElapsed = time.Unix(0, last).Sub(from)
			e.GoodPerSec = float64(e.Good) / e.GoodElapsed.Seconds()
		}
		e.GoodLatency = sp.latency.Latency()
		l := e.GoodLatency
		fmt.Fprintf(stdout, "good messages: %d delivered in %s: %.0f msg/s; %d poison accepted, %d attempts refused\n",
			e.Good, e.GoodElapsed.Round(time.Millisecond), e.GoodPerSec, e.Poisoned, e.Refused)
		fmt.Fprintf(stdout, "good e2e latency (ingest → verified delivery): p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%d measured",
			fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max), l.Count)
		if n := sp.noStamp.Load(); n > 0 {
			fmt.Fprintf(stdout, ", %d without ingested_at", n)
		}
		fmt.Fprintln(stdout, ")")
	}
	return e
}

func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// cpuSample is the process's CPU time at one moment.
type cpuSample struct {
	at        time.Time
	user, sys time.Duration
	ok        bool
}

func cpuNow() cpuSample {
	u, s, ok := bench.ProcessCPU()
	return cpuSample{at: time.Now(), user: u, sys: s, ok: ok}
}

// CPUUse prices a --self run in CPU time: the whole process (weir, its partner and the load
// generator share it), during the load and during the drain that follows.
type CPUUse struct {
	Cores       int           `json:"cores"`
	Load        time.Duration `json:"load_cpu_ns"`         // user + system during the load
	LoadWall    time.Duration `json:"load_wall_ns"`        // wall time of the load
	LoadPerMsg  time.Duration `json:"load_cpu_per_msg_ns"` // Load / messages accepted during the load
	Drain       time.Duration `json:"drain_cpu_ns"`        // after the load until every effect was done
	TotalPerMsg time.Duration `json:"total_cpu_per_msg_ns"`
}

func cpuUse(before, afterLoad, end cpuSample, loadMsgs, accepted int64) *CPUUse {
	if !before.ok || !afterLoad.ok || !end.ok {
		return nil
	}
	c := &CPUUse{Cores: runtime.NumCPU(), LoadWall: afterLoad.at.Sub(before.at),
		Load:  afterLoad.user + afterLoad.sys - before.user - before.sys,
		Drain: end.user + end.sys - afterLoad.user - afterLoad.sys}
	if loadMsgs > 0 {
		c.LoadPerMsg = c.Load / time.Duration(loadMsgs)
	}
	if accepted > 0 {
		c.TotalPerMsg = (c.Load + c.Drain) / time.Duration(accepted)
	}
	return c
}

// WriteText writes one line about c.
func (c *CPUUse) WriteText(w io.Writer) {
	fmt.Fprintf(w, "cpu: load %.1f s in %.1f s on %d cores = %.1f µs per accepted message; drain %.1f s; %.1f µs per message in all\n",
		c.Load.Seconds(), c.LoadWall.Seconds(), c.Cores, float64(c.LoadPerMsg)/1e3, c.Drain.Seconds(), float64(c.TotalPerMsg)/1e3)
}
