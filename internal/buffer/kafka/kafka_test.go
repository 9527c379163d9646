package kafka

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/buffertest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// runCluster starts an in-process three-broker kfake cluster, closed when the test ends.
func runCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// harness opens buffers on one kfake cluster; topic and group names are unique per subtest, so
// subtests share it.
type harness struct {
	brokers []string
}

func (h harness) Open(t *testing.T) buffer.Buffer {
	t.Helper()
	b, err := Open(context.Background(), Config{Brokers: h.brokers, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// OpenShared opens another client, as another Weir instance on the cluster.
func (h harness) OpenShared(t *testing.T) buffer.Buffer { return h.Open(t) }

var _ buffertest.Sharer = harness{}

// Reopen is a clean restart of the client: the records and the group offsets stay in the cluster.
func (h harness) Reopen(t *testing.T, b buffer.Buffer) buffer.Buffer {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return h.Open(t)
}

func TestConformance(t *testing.T) {
	h := harness{brokers: runCluster(t).ListenAddrs()}
	buffertest.Run(t, func(t *testing.T) buffertest.Harness { return h })
}

// A topic keeps its partition count: opening it with another is refused.
func TestPartitionsAreFixed(t *testing.T) {
	h := harness{brokers: runCluster(t).ListenAddrs()}
	b := h.Open(t)
	defer b.Close()
	ctx := t.Context()
	if err := b.EnsureTopic(ctx, buffer.TopicConfig{Name: "fixed", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	b2 := h.Open(t)
	defer b2.Close()
	if err := b2.EnsureTopic(ctx, buffer.TopicConfig{Name: "fixed", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	if err := b2.EnsureTopic(ctx, buffer.TopicConfig{Name: "fixed", Partitions: 8}); err == nil || !strings.Contains(err.Error(), "has 4 partitions") {
		t.Fatalf("got %v", err)
	}
}

// The topics Weir creates are replicated on three brokers by default with two in sync, and an Append to a topic
// this buffer never ensured learns its partition count from the cluster.
func TestTopicFromCluster(t *testing.T) {
	cluster := runCluster(t)
	h := harness{brokers: cluster.ListenAddrs()}
	b := h.Open(t)
	defer b.Close()
	if err := b.EnsureTopic(t.Context(), buffer.TopicConfig{Name: "known", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	info := cluster.TopicInfo("known")
	if info == nil || info.NumReplicas != 3 {
		t.Fatalf("new topic: %+v, want 3 replicas", info)
	}
	if v := info.Configs["min.insync.replicas"]; v == nil || *v != "2" {
		t.Fatalf("new topic: min.insync.replicas %v, want 2", v)
	}
	b2 := h.Open(t)
	defer b2.Close()
	if err := b2.Append(t.Context(), "known", []buffer.Message{{Key: []byte("k"), Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	c, err := b.Consume(t.Context(), "known", "g")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), buffertest.Wait)
	defer cancel()
	recs, err := c.Fetch(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Partition != buffer.Partition([]byte("k"), 3) || recs[0].Offset != 0 {
		t.Fatalf("got %+v", recs)
	}
	if err := b2.Append(t.Context(), "unknown", []buffer.Message{{Value: []byte("v")}}); err == nil {
		t.Fatal("Append to a topic that does not exist succeeded")
	}
}

// With the cluster gone, an Append fails within the timeout and is marked ErrUnavailable.
func TestAppendUnavailable(t *testing.T) {
	cluster := runCluster(t)
	b, err := Open(t.Context(), Config{Brokers: cluster.ListenAddrs(), Logger: quiet, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.EnsureTopic(t.Context(), buffer.TopicConfig{Name: "t", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	cluster.Close()
	err = b.Append(t.Context(), "t", []buffer.Message{{Key: []byte("k"), Value: []byte("v")}})
	if !errors.Is(err, buffer.ErrUnavailable) {
		t.Fatalf("Append with the cluster down: %v, want ErrUnavailable", err)
	}
}
