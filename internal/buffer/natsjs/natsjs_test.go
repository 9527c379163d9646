package natsjs

import (
	"context"
	"errors"
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

// OpenShared opens another client, as another Weir instance on the servers.
func (h harness) OpenShared(t *testing.T) buffer.Buffer { return h.Open(t) }

var _ buffertest.Sharer = harness{}

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

// With Exclusive, a second process on the same topics waits while the first lives (here its
// short ctx ends: ErrClaimed), and gets them once the first closes — or, having died, lets its
// claim expire.
func TestExclusiveClaim(t *testing.T) {
	url := natstest.Server(t)
	open := func() (*Buffer, error) {
		// A short ctx: with the claim held, Open waits (a standby) until its ctx ends.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		return Open(ctx, Config{URL: url, Logger: quiet, Exclusive: true, OwnerTTL: time.Second})
	}
	first, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(); !errors.Is(err, ErrClaimed) {
		t.Fatalf("second open: %v, want ErrClaimed", err)
	}
	first.Close()
	second, err := open()
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	// The second dies without releasing (its connection drops first, so its last delete cannot
	// reach the server): the claim expires after its TTL.
	second.nc.Close()
	close(second.stopClaim)
	<-second.claimDone
	if _, err := open(); !errors.Is(err, ErrClaimed) {
		t.Fatalf("right after the death: %v, want the claim still held", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		third, err := open()
		if err == nil {
			third.Close()
			break
		}
		if !errors.Is(err, ErrClaimed) || time.Now().After(deadline) {
			t.Fatalf("the dead instance's claim did not expire: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if first.Err() != nil {
		t.Fatalf("a closed buffer reports %v", first.Err())
	}
}
