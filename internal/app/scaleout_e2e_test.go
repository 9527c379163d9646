package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	dronedelivery "github.com/weirhq/weir/examples/drone-delivery"
	"github.com/weirhq/weir/internal/app"
	"github.com/weirhq/weir/internal/buffer/natsjs"
	"github.com/weirhq/weir/internal/buffer/natsjs/natstest"
	"github.com/weirhq/weir/internal/config"
	"github.com/weirhq/weir/internal/drone"
	"github.com/weirhq/weir/internal/state"
)

// The Drone Delivery example on NATS JetStream instead of the embedded log: ingest, the process
// hop, the workflow stage and the retry machinery's re-injections all go through JetStream;
// every request ends completed or compensated, each effect once.
func TestDroneDeliveryOnNATS(t *testing.T) { droneDeliveryOn(t, natstest.Server(t)) }

// The same on a three-broker Kafka-protocol cluster (franz-go's kfake).
func TestDroneDeliveryOnKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	droneDeliveryOn(t, "kafka://"+strings.Join(c.ListenAddrs(), ","))
}

func droneDeliveryOn(t *testing.T, url string) {
	svc := drone.New(drone.Config{MaxLatency: time.Millisecond, Transient: 0.05, Permanent: 0.02, Seed: 6})
	h := startDroneExample(t, svc, "data_dir: ${WEIR_DATA_DIR:-./weir-data}", "buffer: "+url+"\ndata_dir: ${WEIR_DATA_DIR:-./weir-data}")
	const n = 1000
	ids := make([]string, n)
	var lines []string
	for i := range n {
		ids[i] = fmt.Sprintf("j-%04d", i)
		lines = append(lines, delivery(ids[i], fmt.Sprintf("c-%d", i%50)))
	}
	for i := 0; i < n; i += 250 {
		a := h.do("POST", "/v1/messages/delivery/batch", "drone-app", "drone-token", "application/x-ndjson", []byte(strings.Join(lines[i:i+250], "\n")))
		if a.code != 202 || a.body["accepted"] != float64(250) {
			t.Fatalf("batch at %d: %d %s", i, a.code, a.raw)
		}
	}
	// A resend is a duplicate: the receipt was written after JetStream acknowledged the message.
	if a := h.do("POST", "/v1/messages/delivery", "drone-app", "drone-token", "application/json", []byte(lines[0])); a.code != 200 || a.body["duplicate"] != true {
		t.Fatalf("resend: %d %s", a.code, a.raw)
	}
	counts := h.waitRuns(n, 2*time.Minute)
	for _, id := range ids {
		if o, why := svc.Check(state.RunID("drone-app", "delivery", id)); o == drone.Broken {
			t.Fatalf("%s: %s (runs %v)", id, why, counts)
		}
	}
	if counts[state.RunFailed] != len(svc.Snapshot().Refused) || svc.Snapshot().Conflicts != 0 {
		t.Fatalf("runs %v, %d refused, %d conflicts", counts, len(svc.Snapshot().Refused), svc.Snapshot().Conflicts)
	}
}

// A second weir on the same NATS topics waits at start while the first runs (both would consume
// every partition): it does not start consuming.
func TestSecondInstanceOnNATSWaits(t *testing.T) {
	url := natstest.Server(t)
	svc := drone.New(drone.Config{})
	edit := []string{"data_dir: ${WEIR_DATA_DIR:-./weir-data}", "buffer: " + url + "\ndata_dir: ${WEIR_DATA_DIR:-./weir-data}"}
	startDroneExample(t, svc, edit...)
	path, err := dronedelivery.Write(t.TempDir(), append(edit, "data_dir: ${WEIR_DATA_DIR:-./weir-data}", "data_dir: data")...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second) // it waits as a standby until then
	defer cancel()
	_, err = app.New(ctx, cfg, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		IngestAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if !errors.Is(err, natsjs.ErrClaimed) {
		t.Fatalf("second instance: %v, want natsjs.ErrClaimed", err)
	}
}
