package natsjs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/buffertest"
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

// runServer starts an in-process nats-server with JetStream, fsyncing every write.
func runServer(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	o.Host, o.JetStream, o.StoreDir, o.NoLog, o.NoSigs, o.SyncAlways = "127.0.0.1", true, t.TempDir(), true, true, true
	if o.Port == 0 {
		o.Port = -1
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runCluster starts three in-process servers in one JetStream cluster and returns the client
// URLs of all three.
func runCluster(t *testing.T) string {
	t.Helper()
	ports := []int{freePort(t), freePort(t), freePort(t)}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var urls []string
	servers := make([]*server.Server, 3)
	done := make(chan int, 3)
	for i := range 3 {
		go func() {
			o := &server.Options{ServerName: fmt.Sprintf("n%d", i+1),
				Cluster: server.ClusterOpts{Name: "weir-test", Host: "127.0.0.1", Port: ports[i]},
				Routes:  server.RoutesFromStr(strings.Join(routes, ","))}
			servers[i] = runServer(t, o)
			done <- i
		}()
	}
	for range 3 {
		<-done
	}
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	url := strings.Join(urls, ",")
	// The meta leader is elected after the routes connect: wait until JetStream answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := Open(context.Background(), Config{URL: url, Logger: quiet, Timeout: 2 * time.Second})
		if err == nil {
			b.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("the JetStream cluster did not form: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestConformanceSingleServer(t *testing.T) {
	s := runServer(t, &server.Options{})
	buffertest.Run(t, func(t *testing.T) buffertest.Harness { return harness{url: s.ClientURL(), replicas: 1} })
}

func TestConformanceThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	url := runCluster(t)
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
	s := runServer(t, &server.Options{})
	b := harness{url: s.ClientURL(), replicas: 1}.Open(t)
	defer b.Close()
	ctx := context.Background()
	if err := b.EnsureTopic(ctx, buffer.TopicConfig{Name: "fixed", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	b2 := harness{url: s.ClientURL(), replicas: 1}.Open(t)
	defer b2.Close()
	if err := b2.EnsureTopic(ctx, buffer.TopicConfig{Name: "fixed", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	if err := b2.EnsureTopic(ctx, buffer.TopicConfig{Name: "fixed", Partitions: 8}); err == nil || !strings.Contains(err.Error(), "has 4 partitions") {
		t.Fatalf("got %v", err)
	}
}
