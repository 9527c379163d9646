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
// atomic batch); with an external buffer the state has its own in <data_dir>/state.
func (a *App) openStorage(ctx context.Context, dataDir string) error {
	cfg := a.cfg
	ec := embedded.Config{Dir: filepath.Join(dataDir, "log"), Logger: a.log}
	if d := cfg.Embedded.MinSyncInterval; d != nil {
		ec.MinSyncInterval = d.D()
		if ec.MinSyncInterval == 0 {
			ec.MinSyncInterval = -1 // none
		}
	}
	if cfg.Buffer != "embedded" {
		ec.Dir = filepath.Join(dataDir, "state")
	}
	var err error
	if a.db, err = embedded.Open(ec); err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	var owner state.DB = a.db
	switch {
	case cfg.Buffer == "embedded":
		a.buf = a.db
	case strings.HasPrefix(cfg.Buffer, "nats://"), strings.HasPrefix(cfg.Buffer, "tls://"):
		b, err := natsjs.Open(ctx, natsjs.Config{URL: cfg.Buffer, Logger: a.log, Exclusive: true})
		if err != nil {
			return err
		}
		a.buf = b
		owner = state.External{Log: a.db, Buffer: b}
		a.log.Info("buffer: NATS JetStream", "replicas", b.Replicas())
	case strings.HasPrefix(cfg.Buffer, "kafka://"):
		b, err := kafka.Open(ctx, kafkaConfig(cfg, a.log))
		if err != nil {
			return err
		}
		a.buf = b
		owner = state.External{Log: a.db, Buffer: b}
		a.log.Info("buffer: Kafka", "brokers", kafkaBrokers(cfg.Buffer))
	default:
		return fmt.Errorf("buffer %q: not supported", cfg.Buffer)
	}
	a.store, err = state.New(owner)
	return err
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
