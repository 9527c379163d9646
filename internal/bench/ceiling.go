package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ceiling starts a bare net/http server on 127.0.0.1 and returns its base URL, for Run to
// measure what this machine and this load generator can do with no work behind the socket.
// Benchmarking Weir against it in the same run gives a figure that travels between machines:
// Weir's throughput as a share of the ceiling.
//
// The server reads every request body fully. A path ending in /batch is answered 200
// {"accepted":N,"rejected":0}, counting the body's lines; any other path 202
// {"id":"ceiling","status":"accepted"}. It checks no credentials.
//
// stop closes the server and waits for it; it is safe to call more than once. The server also
// closes when ctx ends.
func Ceiling(ctx context.Context) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("bench: ceiling server: %w", err)
	}
	srv := &http.Server{Handler: ceilingHandler{}, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		// Serve returns ErrServerClosed after stop. Any other error means the listener
		// failed; every request of the run then fails, and the report shows it.
		_ = srv.Serve(ln)
	}()
	unwatch := context.AfterFunc(ctx, func() { srv.Close() })
	var once sync.Once
	stop = func() {
		once.Do(func() {
			unwatch()
			srv.Close()
			<-served
		})
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// ceilingHandler answers the bare ceiling's requests; see Ceiling.
type ceilingHandler struct{}

var (
	ceilingBufs   = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	ceilingJSON   = []string{"application/json"}
	ceilingSingle = []byte(`{"id":"ceiling","status":"accepted"}`)
)

func (ceilingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bp := ceilingBufs.Get().(*[]byte)
	lines, err := countLines(r.Body, *bp)
	ceilingBufs.Put(bp)
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header()["Content-Type"] = ceilingJSON
	if !strings.HasSuffix(r.URL.Path, "/batch") {
		w.WriteHeader(http.StatusAccepted)
		w.Write(ceilingSingle)
		return
	}
	out := make([]byte, 0, 48)
	out = append(out, `{"accepted":`...)
	out = strconv.AppendInt(out, lines, 10)
	out = append(out, `,"rejected":0}`...)
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// countLines reads r to the end using buf and counts its lines: newline-terminated ones plus a
// final unterminated one.
func countLines(r io.Reader, buf []byte) (int64, error) {
	var lines int64
	last := byte('\n')
	for {
		n, err := r.Read(buf)
		if n > 0 {
			lines += int64(bytes.Count(buf[:n], []byte{'\n'}))
			last = buf[n-1]
		}
		if err == io.EOF {
			if last != '\n' {
				lines++
			}
			return lines, nil
		}
		if err != nil {
			return lines, err
		}
	}
}
