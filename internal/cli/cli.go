// Package cli implements weir's subcommands: flag parsing and wiring only; the work happens in
// the packages they call.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/weirhq/weir/internal/app"
	"github.com/weirhq/weir/internal/config"
)

// Version is set at build time with -ldflags "-X github.com/weirhq/weir/internal/cli.Version=…".
var Version = "dev"

const usage = `weir — the integration hub in one binary

Usage:
  weir serve [--config FILE] [--ingest-addr ADDR] [--admin-addr ADDR]
                                  run Weir; with no config, the quickstart demo
  weir check --config FILE        list every problem in a config (exit 0 when none)
  weir dlq list|show|replay|discard
                                  dead letters (see weir dlq)
  weir endpoints list|pause|resume
                                  endpoint health (see weir endpoints)
  weir bench [flags]              load-test an ingest endpoint (see weir bench -h)
  weir demo-partner [--addr ADDR] a partner endpoint that verifies and logs webhooks
  weir demo-services [--addr ADDR] [--transient F] [--permanent F] [--latency MIN-MAX]
                                  the Drone Delivery services a workflow calls (examples/drone-delivery)
  weir hash-token TOKEN           print the token_hash of a client or admin token
  weir version                    print the version
`

// Main runs the subcommand in args and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv("GOGC") == "" {
		// Weir's live heap is small and bounded (windows, batches); collecting less often
		// trades some of the plentiful memory for CPU on the hot path. GOGC overrides it.
		debug.SetGCPercent(400)
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "check":
		err = check(args[1:], stdout, stderr)
	case "dlq":
		err = dlq(ctx, args[1:], stdout, stderr)
	case "endpoints":
		err = endpoints(ctx, args[1:], stdout, stderr)
	case "bench":
		err = runBench(ctx, args[1:], stdout, stderr)
	case "demo-partner":
		err = demoPartner(ctx, args[1:], stdout, stderr)
	case "demo-services":
		err = demoServices(ctx, args[1:], stdout, stderr)
	case "hash-token":
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: weir hash-token TOKEN")
			return 2
		}
		fmt.Fprintln(stdout, app.HashToken(args[1]))
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "weir", version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "weir: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "weir:", err)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "weir:", err)
		return 1
	}
	return 0
}

type usageError struct{ error }

func version() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("weir "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func logger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func check(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	path := fs.String("config", "", "config file to check")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return usageError{errors.New("check needs --config FILE")}
	}
	cfg, err := config.Load(*path)
	if err == nil {
		err = app.Check(cfg)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d clients, %d message types, %d endpoints)\n", *path, len(cfg.Clients), len(cfg.Types), len(cfg.Endpoints))
	return nil
}
