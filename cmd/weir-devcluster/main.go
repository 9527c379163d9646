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
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weirhq/weir/internal/buffer/natsjs/natstest"
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
	url, servers, err := natstest.StartCluster(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return url, func() {
		natstest.Stop(servers)
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
