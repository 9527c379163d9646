package natsjs

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/buffertest"
	"github.com/weirhq/weir/internal/buffer/natsjs/natstest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// harness opens buffers on one NATS deployment; topic and group names are unique per subtest,
// so subtests share it.
type harness struct {
	url      string
	replicas int
}

func (h harness) Open(t *testing.T) buffer.Buffer {
	t.Helper()
	b, err := Open(context.Background(), Config{URL: h.url, Replicas: h.replicas, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Reopen is a clean restart of the client: the data and the offsets stay on the servers.
func (h harness) Reopen(t *testing.T, b buffer.Buffer) buffer.Buffer {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return h.Open(t)
}

func TestConformanceSingleServer(t *testing.T) {
	url := natstest.Server(t)
	buffertest.Run(t, func(t *testing.T) buffertest.Harness { return harness{url: url, replicas: 1} })
}

func TestConformanceThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	url := natstest.Cluster(t)
	buffertest.Run(t, func(t *testing.T) buffertest.Harness { return harness{url: url, replicas: 3} })
}

// The machine's own NATS server (127.0.0.1:4222), when one runs: an older 2.9 server.
func TestConformanceMachineServer(t *testing.T) {
	nc, err := nats.Connect("nats://127.0.0.1:4222", nats.Timeout(time.Second))
	if err != nil {
		t.Skip("no NATS server on 127.0.0.1:4222")
	}
	nc.Close()
	buffertest.Run(t, func(t *testing.T) buffertest.Harness { return harness{url: "nats://127.0.0.1:4222", replicas: 1} })
}

// A topic keeps its partition count: opening it with another is refused.
func TestPartitionsAreFixed(t *testing.T) {
	url := natstest.Server(t)
	b := harness{url: url, replicas: 1}.Open(t)
	defer b.Close()
	ctx := context.Background()
	if err := b.EnsureTopic(ctx, buffer.TopicConfig{Name: "fixed", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	b2 := harness{url: url, replicas: 1}.Open(t)
	defer b2.Close()
	if err := b2.EnsureTopic(ctx, buffer.TopicConfig{Name: "fixed", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	if err := b2.EnsureTopic(ctx, buffer.TopicConfig{Name: "fixed", Partitions: 8}); err == nil || !strings.Contains(err.Error(), "has 4 partitions") {
		t.Fatalf("got %v", err)
	}
}
