package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/weirhq/weir/internal/app"
	"github.com/weirhq/weir/internal/bench"
	"github.com/weirhq/weir/internal/config"
)

const benchHelp = `Posts messages to an ingest endpoint and reports throughput and latency.

  weir bench --self                 start an in-process weir (quickstart config, fresh data dir),
                                    measure ingest, then wait until every accepted message is in
                                    SQLite and at the demo partner, and report the end-to-end rate
  weir bench --url http://127.0.0.1:8080 --client demo --token demo-token
  weir bench --ceiling ...          also measure a bare net/http handler in the same run
`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchHelp); fs.PrintDefaults() }
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
	jsonOut := fs.String("json", "", "write the report(s) as JSON to this file")
	cpuProfile := fs.String("cpuprofile", "", "with --self: write a CPU profile of the weir run (generator included) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *payload != "" {
		b, err := os.ReadFile(*payload)
		if err != nil {
			return err
		}
		cfg.Payload = b
	}
	cfg.Progress = stderr
	out := map[string]any{}

	if *ceiling {
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

	var a *app.App
	var stopSelf func() error
	if *self {
		var err error
		a, stopSelf, err = startSelf(ctx, *selfConfig, *hold, stderr)
		if err != nil {
			return err
		}
		cfg.URL = "http://" + a.IngestAddr()
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
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		if stopSelf != nil {
			stopSelf()
		}
		return err
	}
	rep.WriteText(stdout)
	out["weir"] = rep
	if c, ok := out["ceiling"].(*bench.Report); ok {
		fmt.Fprintln(stdout, bench.Compare(rep, c))
	}
	if a != nil {
		from := rep.Started
		if *hold {
			from = time.Now()
			a.StartStages()
		}
		e2e := waitDrained(ctx, a, from, stdout)
		out["end_to_end"] = e2e
		if err := stopSelf(); err != nil {
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

// startSelf runs weir in-process on a fresh data dir with the quickstart config (or another),
// its demo partner included.
func startSelf(ctx context.Context, path string, hold bool, stderr io.Writer) (*app.App, func() error, error) {
	dir, err := os.MkdirTemp("", "weir-bench-*")
	if err != nil {
		return nil, nil, err
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
		return nil, nil, err
	}
	a, err := app.New(ctx, cfg, app.Options{Logger: log, IngestAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", HoldStages: hold})
	if err != nil {
		stopPartner()
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	return a, func() error {
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
	Delivered int64         `json:"delivered"`
	Elapsed   time.Duration `json:"elapsed_ns"` // from the first request (or the release of a held pipeline) to the last effect
	PerSec    float64       `json:"msg_per_sec"`
	Complete  bool          `json:"complete"`
}

func waitDrained(ctx context.Context, a *app.App, from time.Time, stdout io.Writer) EndToEnd {
	accepted := a.Accepted()
	e := EndToEnd{Accepted: accepted}
	deadline := time.Now().Add(5 * time.Minute)
	lastReport := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
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
	e.Elapsed = time.Since(from)
	e.PerSec = float64(min(e.Persisted, e.Delivered)) / e.Elapsed.Seconds()
	fmt.Fprintf(stdout, "end to end: %d accepted, %d in SQL, %d delivered in %s: %.0f msg/s (complete: %v)\n",
		e.Accepted, e.Persisted, e.Delivered, e.Elapsed.Round(time.Millisecond), e.PerSec, e.Complete)
	return e
}
