package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/weirhq/weir/examples/quickstart"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/partner"
)

func demoPartner(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo-partner", stderr)
	addr := fs.String("addr", "127.0.0.1:9090", "listen address")
	secretFlag := fs.String("secret", "", "Standard Webhooks secret (default: $WEIR_DEMO_SECRET or the quickstart's demo secret)")
	failFirst := fs.Int("fail-first", 0, "answer 503 to the first N attempts of each message (to watch retries)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := *secretFlag
	if s == "" {
		s = os.Getenv("WEIR_DEMO_SECRET")
	}
	if s == "" {
		s = quickstart.DemoSecret
	}
	secret, err := deliver.ParseSecret(s)
	if err != nil {
		return usageError{fmt.Errorf("--secret: %w", err)}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	rcv := partner.New(partner.Config{Secrets: [][]byte{secret}, FailFirst: *failFirst, Keep: 1000, Logger: logger(stderr, "info")})
	fmt.Fprintf(stdout, "demo partner: verifying Standard Webhooks signatures at http://%s/webhook\n", ln.Addr())
	return serveUntil(ctx, ln, rcv)
}

// serveUntil serves h on ln until ctx ends, then shuts down within 5 s (the demo commands).
func serveUntil(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
