package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/weirhq/weir/internal/drone"
)

// demoServices serves the Drone Delivery reference application's five services, which the
// workflow examples and benchmarks call.
func demoServices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo-services", stderr)
	addr := fs.String("addr", "127.0.0.1:9700", "listen address")
	latency := fs.String("latency", "", `latency of every call: "10ms", or uniform in a range "5ms-20ms" (default none)`)
	transient := fs.Float64("transient", 0.05, "fraction of calls answered 503, half of them after applying the effect")
	permanent := fs.Float64("permanent", 0.01, "fraction of requests that one service refuses for good")
	seed := fs.Uint64("seed", 1, "seed that chooses the refused requests and the transient failures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := drone.Config{Transient: *transient, Permanent: *permanent, Seed: *seed}
	if *latency != "" {
		var err error
		if cfg.MinLatency, cfg.MaxLatency, err = parseLatency(*latency); err != nil {
			return usageError{fmt.Errorf("--latency: %w", err)}
		}
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `demo services (Drone Delivery) at http://%[1]s:
  GET        /accounts/{customer}?request={id}
  PUT|DELETE /packages/{id}  /transports/{id}  /drones/{id}  /deliveries/{id}
  GET        /_effects (what was applied)  /healthz
`, ln.Addr())
	return serveUntil(ctx, ln, drone.New(cfg))
}

// parseLatency reads "10ms" (exactly) or "5ms-20ms" (uniform in the range).
func parseLatency(s string) (low, high time.Duration, err error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if low, err = time.ParseDuration(strings.TrimSpace(lo)); err != nil {
		return 0, 0, err
	}
	high = low
	if isRange {
		if high, err = time.ParseDuration(strings.TrimSpace(hi)); err != nil {
			return 0, 0, err
		}
	}
	if low < 0 || high < low {
		return 0, 0, fmt.Errorf("%q is not a range from low to high", s)
	}
	return low, high, nil
}
