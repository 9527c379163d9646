package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/weirhq/weir/examples/quickstart"
	"github.com/weirhq/weir/internal/app"
	"github.com/weirhq/weir/internal/config"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/partner"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "", "config file (default: the quickstart demo on the embedded defaults)")
	ingestAddr := fs.String("ingest-addr", "", "ingest listener, overrides listen.ingest")
	adminAddr := fs.String("admin-addr", "", "admin listener, overrides listen.admin")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	allowPrivate := fs.Bool("allow-private-endpoints", false, "let every endpoint reach loopback and private addresses")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := logger(stderr, *level)
	// WEIR_FAILPOINTS is for crash tests: it makes weir kill itself at a workflow step boundary.
	opts := app.Options{Logger: log, IngestAddr: *ingestAddr, AdminAddr: *adminAddr, AllowPrivate: *allowPrivate,
		Failpoints: os.Getenv("WEIR_FAILPOINTS")}

	var cfg *config.Config
	var err error
	demo := *path == ""
	if demo {
		var stopPartner func()
		dataDir, err := filepath.Abs("weir-data")
		if err != nil {
			return err
		}
		cfg, stopPartner, err = demoConfig(dataDir, log)
		if err != nil {
			return err
		}
		defer stopPartner()
	} else if cfg, err = config.Load(*path); err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	if demo {
		fmt.Fprintf(stdout, `
Weir quickstart demo (embedded log and SQLite in %s)
  ingest:  http://%s    admin/metrics: http://%s/metrics
  try:     curl -u demo:demo-token -H 'Content-Type: application/json' \
             --data @examples/quickstart/order.json http://%s/v1/messages/order
  status:  curl -u demo:demo-token http://%s/v1/messages/ord-2026-000123
  rows:    sqlite3 %s 'select id, customer_id, currency, total from orders'
The demo partner logs each signed delivery below. Ctrl-C stops (gracefully).

`, cfg.Path(cfg.DataDir), a.IngestAddr(), a.AdminAddr(), a.IngestAddr(), a.IngestAddr(), filepath.Join(cfg.Path(cfg.DataDir), "quickstart.db"))
	}
	return a.Run(ctx)
}

// demoConfig writes the quickstart files under dataDir, starts the demo partner in-process and
// returns the quickstart config pointing at it, with its data in dataDir.
func demoConfig(dataDir string, log *slog.Logger) (*config.Config, func(), error) {
	cfgDir := filepath.Join(dataDir, "quickstart")
	if err := os.MkdirAll(cfgDir, 0o750); err != nil {
		return nil, nil, err
	}
	err := fs.WalkDir(quickstart.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := quickstart.Files.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(cfgDir, p), b, 0o640)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("demo: %w", err)
	}
	return withDemoPartner(filepath.Join(cfgDir, "weir.yaml"), dataDir, log)
}

// withDemoPartner starts the demo partner in-process (on 127.0.0.1:9090 when free) and loads
// the config at path with ${WEIR_DEMO_PARTNER_URL} pointing at it and ${WEIR_DATA_DIR} set to
// dataDir.
func withDemoPartner(path, dataDir string, log *slog.Logger) (*config.Config, func(), error) {
	secret, err := deliver.ParseSecret(quickstart.DemoSecret)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:9090")
	if err != nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, nil, fmt.Errorf("demo partner: %w", err)
		}
	}
	srv := &http.Server{Handler: partner.New(partner.Config{Secrets: [][]byte{secret}, Keep: 1000, Logger: log.With("component", "demo-partner")}),
		ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	stop := func() { srv.Close() }
	env := map[string]string{
		"WEIR_DATA_DIR":         dataDir,
		"WEIR_DEMO_PARTNER_URL": "http://" + ln.Addr().String() + "/webhook",
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		stop()
		return nil, nil, err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		stop()
		return nil, nil, err
	}
	cfg, err := config.Parse(raw, dir, func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	})
	if err != nil {
		stop()
		return nil, nil, err
	}
	log.Info("demo partner listening", "url", env["WEIR_DEMO_PARTNER_URL"])
	return cfg, stop, nil
}
