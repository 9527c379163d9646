// Command weir-devcluster runs a throwaway NATS JetStream cluster (three servers in one process,
// fsync on every write) or a Kafka-protocol cluster (franz-go's kfake, three brokers, in
// memory) on loopback, for trying and benchmarking Weir's scale-out buffers on one machine:
//
//	go run ./cmd/weir-devcluster nats     # prints buffer: nats://127.0.0.1:…,…
//	go run ./cmd/weir-devcluster kafka    # prints buffer: kafka://127.0.0.1:…,…
//
// It stops on SIGINT or SIGTERM and keeps nothing. It is a development tool: Weir itself never
// links a broker.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "nats" && os.Args[1] != "kafka") {
		fmt.Fprintln(os.Stderr, "usage: weir-devcluster nats|kafka")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var url string
	var shutdown func()
	var err error
	if os.Args[1] == "nats" {
		url, shutdown, err = natsCluster()
	} else {
		url, shutdown, err = kafkaCluster()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weir-devcluster:", err)
		os.Exit(1)
	}
	fmt.Printf("buffer: %s\n", url)
	<-ctx.Done()
	shutdown()
}

func natsCluster() (string, func(), error) {
	dir, err := os.MkdirTemp("", "weir-devcluster-")
	if err != nil {
		return "", nil, err
	}
	var ports []int
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var servers []*server.Server
	var urls []string
	for i := range 3 {
		s, err := server.NewServer(&server.Options{ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: fmt.Sprintf("%s/n%d", dir, i+1), SyncAlways: true, NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "weir-dev", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ","))})
		if err != nil {
			return "", nil, err
		}
		go s.Start()
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(30 * time.Second) {
			return "", nil, fmt.Errorf("nats-server %s did not start", s.Name())
		}
		urls = append(urls, s.ClientURL())
	}
	deadline := time.Now().Add(30 * time.Second)
	for !servers[0].JetStreamIsCurrent() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	return strings.Join(urls, ","), func() {
		for _, s := range servers {
			s.Shutdown()
		}
		os.RemoveAll(dir)
	}, nil
}

func kafkaCluster() (string, func(), error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		return "", nil, err
	}
	return "kafka://" + strings.Join(c.ListenAddrs(), ","), c.Close, nil
}
