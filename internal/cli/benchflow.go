package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dronedelivery "github.com/weirhq/weir/examples/drone-delivery"
	"github.com/weirhq/weir/internal/app"
	"github.com/weirhq/weir/internal/bench"
	"github.com/weirhq/weir/internal/config"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/drone"
	"github.com/weirhq/weir/internal/state"
)

// flowOptions are the --workflow choices: the demo services' behaviour.
type flowOptions struct {
	latency              string
	transient, permanent float64
	concurrency          int // runtime.workflow_concurrency (0: the config's)
}

// startFlow runs weir in-process on the Drone Delivery example (fresh data dir) against the
// demo services, served in-process too.
func startFlow(ctx context.Context, fo flowOptions, so selfOptions, stderr io.Writer) (*app.App, func() error, error) {
	dcfg := drone.Config{Transient: fo.transient, Permanent: fo.permanent, Seed: 1}
	if fo.latency != "" {
		var err error
		if dcfg.MinLatency, dcfg.MaxLatency, err = parseLatency(fo.latency); err != nil {
			return nil, nil, usageError{fmt.Errorf("--service-latency: %w", err)}
		}
	}
	if err := dcfg.Validate(); err != nil {
		return nil, nil, usageError{err}
	}
	dir, err := os.MkdirTemp("", "weir-bench-*")
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*app.App, func() error, error) {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	svc := &http.Server{Handler: drone.New(dcfg), ReadHeaderTimeout: 5 * time.Second}
	go svc.Serve(ln)
	var cfg *config.Config
	path, err := dronedelivery.Write(dir)
	if err == nil {
		var raw []byte
		if raw, err = os.ReadFile(path); err == nil {
			env := map[string]string{"WEIR_DATA_DIR": filepath.Join(dir, "data"), "DRONE_SERVICES": "http://" + ln.Addr().String()}
			cfg, err = config.Parse(raw, dir, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		}
	}
	if err != nil {
		svc.Close()
		return fail(err)
	}
	if fo.concurrency > 0 {
		cfg.Runtime.WorkflowConcurrency = fo.concurrency
	}
	if err := so.apply(cfg); err != nil {
		svc.Close()
		return fail(err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	a, err := app.New(ctx, cfg, app.Options{Logger: log, IngestAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if err != nil {
		svc.Close()
		return fail(err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	return a, func() error {
		cancel()
		err := <-done
		svc.Close()
		os.RemoveAll(dir)
		return err
	}, nil
}

// Flow is how the workflows of a --workflow run went.
type Flow struct {
	Accepted  int64         `json:"accepted"`
	Completed int           `json:"completed"`
	Failed    int           `json:"failed"` // failed and compensated (or not: compensation_failed)
	Elapsed   time.Duration `json:"elapsed_ns"`
	PerSec    float64       `json:"completed_per_sec"`
	// Latency runs from ingest accepting a request to its run finishing.
	Latency bench.Latency `json:"latency"`
}

// waitFlows waits until every accepted request's run finished, calling tick once a second
// meanwhile and once at the end, then reads each run's end-to-end latency from the admin API.
func waitFlows(ctx context.Context, a *app.App, from time.Time, tick func(), stdout io.Writer) (Flow, error) {
	f := Flow{Accepted: a.Accepted()}
	deadline := time.Now().Add(5 * time.Minute)
	last := time.Now()
	for a.Finished("workflow") < f.Accepted && time.Now().Before(deadline) && ctx.Err() == nil {
		if time.Since(last) >= time.Second {
			last = time.Now()
			tick()
			fmt.Fprintf(os.Stderr, "drain %5.1fs: %d of %d runs finished\n", time.Since(from).Seconds(), a.Finished("workflow"), f.Accepted)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tick()
	var lat bench.Recorder
	var end time.Time
	for _, st := range []string{state.RunCompleted, state.RunFailed, state.RunCompensationFailed} {
		after := ""
		for {
			var page struct {
				Runs []state.Run `json:"runs"`
				Next string      `json:"next"`
			}
			u := fmt.Sprintf("http://%s/v1/admin/workflows?state=%s&limit=1000&after=%s", a.AdminAddr(), st, after)
			resp, err := http.Get(u)
			if err != nil {
				return f, err
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if err != nil {
				return f, err
			}
			for _, r := range page.Runs {
				if st == state.RunCompleted {
					f.Completed++
					lat.Record(r.FinishedAt.Sub(r.ReceivedAt))
				} else {
					f.Failed++
				}
				if r.FinishedAt.After(end) {
					end = r.FinishedAt
				}
			}
			if page.Next == "" {
				break
			}
			after = page.Next
		}
	}
	f.Elapsed = end.Sub(from)
	if f.Elapsed > 0 {
		f.PerSec = float64(f.Completed) / f.Elapsed.Seconds()
	}
	f.Latency = lat.Latency()
	l := f.Latency
	fmt.Fprintf(stdout, "workflows: %d accepted, %d completed, %d failed in %s: %.0f completed/s\n",
		f.Accepted, f.Completed, f.Failed, f.Elapsed.Round(time.Millisecond), f.PerSec)
	fmt.Fprintf(stdout, "workflow e2e latency (ingest → run finished): p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max))
	return f, nil
}

// FlowCeiling is the bare ceiling of a --workflow run: the same five calls per request against
// the same demo services, made by a plain Go loop with no log, no state and no retries.
type FlowCeiling struct {
	Requests int           `json:"requests"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	PerSec   float64       `json:"requests_per_sec"`
	Latency  bench.Latency `json:"latency"`
}

// flowCeiling makes n requests of five sequential calls each, concurrency at a time.
func flowCeiling(ctx context.Context, fo flowOptions, n, concurrency int, stdout io.Writer) (FlowCeiling, error) {
	dcfg := drone.Config{Seed: 1}
	if fo.latency != "" {
		var err error
		if dcfg.MinLatency, dcfg.MaxLatency, err = parseLatency(fo.latency); err != nil {
			return FlowCeiling{}, usageError{fmt.Errorf("--service-latency: %w", err)}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return FlowCeiling{}, err
	}
	svc := &http.Server{Handler: drone.New(dcfg), ReadHeaderTimeout: 5 * time.Second}
	go svc.Serve(ln)
	defer svc.Close()
	base := "http://" + ln.Addr().String()
	hc := deliver.HTTPClient(512, true) // as weir's workflow client
	defer hc.CloseIdleConnections()
	call := func(method, url, body string) error {
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %d", method, url, resp.StatusCode)
		}
		return nil
	}
	var next atomic.Int64
	var lat bench.Recorder
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n) && ctx.Err() == nil; i = next.Add(1) {
				id := fmt.Sprintf("ceiling-%d", i)
				t := time.Now()
				err := call("GET", base+"/accounts/c-1?request="+id, "")
				for _, svc := range []string{"packages", "transports", "drones", "deliveries"} {
					if err == nil {
						err = call("PUT", base+"/"+svc+"/"+id, `{"id":"`+id+`"}`)
					}
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				lat.Record(time.Since(t))
			}
		}()
	}
	wg.Wait()
	c := FlowCeiling{Requests: n, Elapsed: time.Since(start), Latency: lat.Latency()}
	if f := failed.Load(); f > 0 {
		return c, fmt.Errorf("ceiling: %d of %d requests failed", f, n)
	}
	c.PerSec = float64(n) / c.Elapsed.Seconds()
	fmt.Fprintf(stdout, "bare ceiling (five calls per request, no weir, %d at a time): %d in %s: %.0f requests/s; latency p50 %s  p99 %s\n",
		concurrency, n, c.Elapsed.Round(time.Millisecond), c.PerSec, fmtMs(c.Latency.P50), fmtMs(c.Latency.P99))
	return c, nil
}
