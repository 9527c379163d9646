// Package natstest starts NATS JetStream servers in-process, on loopback, fsyncing every write:
// for the tests that run Weir on NATS and for cmd/weir-devcluster. Weir itself never links it.
package natstest

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Start starts one server with JetStream storing in dir.
func Start(dir string, o *server.Options) (*server.Server, error) {
	if o == nil {
		o = &server.Options{}
	}
	o.Host, o.JetStream, o.StoreDir, o.NoLog, o.NoSigs, o.SyncAlways = "127.0.0.1", true, dir, true, true, true
	if o.Port == 0 {
		o.Port = -1
	}
	s, err := server.NewServer(o)
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats-server %s did not start", o.ServerName)
	}
	return s, nil
}

// StartCluster starts three servers in one JetStream cluster, storing under dir, and waits until
// JetStream is current. It returns the client URLs of the three, comma-separated.
func StartCluster(dir string) (string, []*server.Server, error) {
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
	servers := make([]*server.Server, 3)
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			var err error
			servers[i], err = Start(filepath.Join(dir, fmt.Sprintf("n%d", i+1)), &server.Options{ServerName: fmt.Sprintf("n%d", i+1),
				Cluster: server.ClusterOpts{Name: "weir-test", Host: "127.0.0.1", Port: ports[i]},
				Routes:  server.RoutesFromStr(strings.Join(routes, ","))})
			errs <- err
		}()
	}
	var failed error
	for range 3 {
		if err := <-errs; err != nil {
			failed = err
		}
	}
	if failed != nil {
		Stop(servers)
		return "", nil, failed
	}
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	deadline := time.Now().Add(30 * time.Second)
	for !servers[0].JetStreamIsCurrent() {
		if time.Now().After(deadline) {
			Stop(servers)
			return "", nil, fmt.Errorf("the JetStream cluster did not form")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return strings.Join(urls, ","), servers, nil
}

// Stop shuts servers down and waits for them.
func Stop(servers []*server.Server) {
	for _, s := range servers {
		if s != nil {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
}

// Server starts one server for the test and returns its client URL.
func Server(t testing.TB) string {
	t.Helper()
	s, err := Start(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Stop([]*server.Server{s}) })
	return s.ClientURL()
}

// Cluster starts a three-server cluster for the test and returns its client URLs.
func Cluster(t testing.TB) string {
	t.Helper()
	url, servers, err := StartCluster(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Stop(servers) })
	return url
}
