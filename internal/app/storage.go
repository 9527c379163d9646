package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/buffer/kafka"
	"github.com/weirhq/weir/internal/buffer/natsjs"
	"github.com/weirhq/weir/internal/config"
	"github.com/weirhq/weir/internal/state"
)

// openStorage opens the buffer named by the config and the state store: with the embedded
// buffer both share one Pebble database in <data_dir>/log (an append and its state are one
// atomic batch); beside an external buffer the embedded state has its own in <data_dir>/state,
// and a PostgreSQL state store is shared by every instance pointed at it.
func (a *App) openStorage(ctx context.Context, dataDir string) error {
	cfg := a.cfg
	ec := embedded.Config{Dir: filepath.Join(dataDir, "log"), Logger: a.log}
	if d := cfg.Embedded.MinSyncInterval; d != nil {
		ec.MinSyncInterval = d.D()
		if ec.MinSyncInterval == 0 {
			ec.MinSyncInterval = -1 // none
		}
	}
	shared := cfg.State != "embedded"
	var err error
	switch {
	case cfg.Buffer == "embedded":
		if a.db, err = embedded.Open(ec); err != nil {
			return fmt.Errorf("open log: %w", err)
		}
		a.buf = a.db
	case strings.HasPrefix(cfg.Buffer, "nats://"), strings.HasPrefix(cfg.Buffer, "tls://"):
		// One instance per server unless the instances share their state (and their partitions).
		b, err := natsjs.Open(ctx, natsjs.Config{URL: cfg.Buffer, Replicas: cfg.NATS.Replicas, Logger: a.log, Exclusive: !shared})
		if err != nil {
			return err
		}
		a.buf = b
		a.log.Info("buffer: NATS JetStream", "replicas", b.Replicas())
	case strings.HasPrefix(cfg.Buffer, "kafka://"):
		b, err := kafka.Open(ctx, kafkaConfig(cfg, a.log))
		if err != nil {
			return err
		}
		a.buf = b
		a.log.Info("buffer: Kafka", "brokers", kafkaBrokers(cfg.Buffer))
	default:
		return fmt.Errorf("buffer %q: not supported", cfg.Buffer)
	}
	switch {
	case shared:
		pg, err := state.OpenPostgres(ctx, cfg.State, a.buf)
		if err != nil {
			return err
		}
		a.pg = pg
		a.store, err = state.Open(pg)
		a.log.Info("state: PostgreSQL (shared)", "instance", a.instance)
		return err
	case a.db != nil:
		a.store, err = state.New(a.db)
	default:
		ec.Dir = filepath.Join(dataDir, "state")
		if a.db, err = embedded.Open(ec); err != nil {
			return fmt.Errorf("open state: %w", err)
		}
		a.store, err = state.Open(state.External{Log: a.db, Buffer: a.buf})
	}
	return err
}

// storageErr is why the log or the state database refuses writes (nil while they accept).
func (a *App) storageErr() error {
	if a.db != nil {
		if err := a.db.Err(); err != nil {
			return err
		}
	}
	if e, ok := a.buf.(interface{ Err() error }); ok {
		return e.Err() // an external buffer that must stop (a lost claim)
	}
	return nil
}

// kafkaBrokers reads the brokers of kafka://host:port[,host:port…].
func kafkaBrokers(url string) []string {
	var out []string
	for _, b := range strings.Split(strings.TrimPrefix(url, "kafka://"), ",") {
		if b = strings.TrimPrefix(strings.TrimSpace(b), "kafka://"); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func kafkaConfig(cfg *config.Config, log *slog.Logger) kafka.Config {
	k := kafka.Config{Brokers: kafkaBrokers(cfg.Buffer), Replication: cfg.Kafka.Replication, Logger: log}
	if cfg.Kafka.TLS {
		k.Opts = append(k.Opts, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if s := cfg.Kafka.SASL; s.Mechanism == "plain" {
		k.Opts = append(k.Opts, kgo.SASL(plain.Auth{User: s.Username, Pass: string(s.Password)}.AsMechanism()))
	}
	return k
}
