// Package crash holds Weir's crash tests (RELIABILITY.md R1 and R6): they run the real weir
// binary as a child process under a steady load, SIGKILL it (R1) or SIGTERM it (R6) at random
// moments, restart it on the same data dir and check that every message that got a 2xx is in
// SQLite exactly once and reached the partner, with duplicates at the partner only under the
// same webhook-id. After a SIGTERM weir must exit 0 within its bound, and every request that
// overlaps the shutdown must end as a 2xx, a 503 with Retry-After or a connection error.
//
// Every request the load generator sends ends as ok (2xx), fail (definite 4xx) or unknown
// (timeout, reset, connection refused, 5xx). The checker then counts lost (ok but missing from
// SQLite or never delivered: must be 0), unexpected (an effect for an id never sent, or for a
// definite failure: 0) and duplicated rows (0). Unknown ids may or may not have landed.
package crash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	_ "modernc.org/sqlite"

	"github.com/weirhq/weir/internal/buffer/natsjs/natstest"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/partner"
	"github.com/weirhq/weir/internal/pipeline"
)

var (
	seedFlag  = flag.Uint64("crash.seed", 20260101, "seed of the load generator and the kill schedule")
	killsFlag = flag.Int("crash.kills", 5, "SIGKILLs per run (at least 3)")
	termsFlag = flag.Int("crash.terms", 5, "SIGTERMs under load per run of the shutdown test (at least 3)")
)

const (
	secret          = "whsec_Y3Jhc2gtdGVzdC1zaWduaW5nLXNlY3JldC0xMjM0NTY3OA=="
	client, token   = "acme", "acme-token"
	messageType     = "order" // the type every message is sent as, in writeConfig
	shutdownTimeout = 2 * time.Second
	workers         = 8
	// pace is the mean pause between two requests of one worker: 8 workers at ~20 requests/s,
	// a fifth of them NDJSON batches of 2–8 lines, make roughly 250 messages/s.
	pace = 50 * time.Millisecond

	readyDeadline  = 30 * time.Second // fail when a start takes longer
	readyGoal      = 10 * time.Second // R1: ready again within 10 s (reported, not asserted)
	settleDeadline = 60 * time.Second // every ok id persisted and delivered after the last restart
	// exitBound is how long weir may take to exit after SIGTERM: ingest drain and stage drain
	// (each bounded by shutdown_timeout), the admin listener (1 s), plus slack for closing the
	// stores on a loaded machine.
	exitBound = 2*shutdownTimeout + time.Second + 10*time.Second
)

// weirBin is the binary TestMain builds.
var weirBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "weir-crash-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	weirBin = filepath.Join(dir, "weir")
	build := exec.Command("go", "build", "-o", weirBin, "./cmd/weir")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building weir: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// outcome is how a request ended, as its sender saw it.
type outcome int

const (
	ok      outcome = iota // 2xx: weir acknowledged the message
	fail                   // a definite 4xx: weir refused it
	unknown                // timeout, reset, refused connection, 5xx: it may or may not be in
)

type result struct {
	id     string
	out    outcome
	detail string    // why, for fail and unknown
	ex     *exchange // the request that carried it; shared by the lines of a batch
}

// exchange is one HTTP request of the load generator as its sender saw it.
type exchange struct {
	start, end time.Time
	code       int    // the response's status; 0 when none arrived
	retryAfter string // the response's Retry-After header
	err        error  // the transport's error, or the error reading the response body
}

// verdict names how a request ended in R6's terms: "2xx", "503" (with Retry-After),
// "connection error" (refused, reset, closed before an answer), or else what went wrong.
func (ex *exchange) verdict() string {
	switch {
	case ex.code >= 200 && ex.code < 300:
		return "2xx"
	case ex.code == http.StatusServiceUnavailable && ex.retryAfter != "":
		return "503"
	case ex.code != 0:
		return fmt.Sprintf("status %d (Retry-After %q)", ex.code, ex.retryAfter)
	}
	var ne net.Error
	if errors.As(ex.err, &ne) && ne.Timeout() {
		return fmt.Sprintf("no answer within %v: %v", ex.end.Sub(ex.start).Round(time.Millisecond), ex.err)
	}
	return "connection error"
}

func TestKillNineUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs the weir binary for tens of seconds")
	}
	killNineUnderLoad(t, max(*killsFlag, 3))
}

// R1 with NATS JetStream as the buffer (a server in the test process, which outlives every
// weir): the state beside it is written after the broker's ack, so a SIGKILL between the two
// may duplicate, never lose. Each restart also waits for the killed instance's claim to expire.
func TestKillNineUnderLoadOnNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs the weir binary for tens of seconds")
	}
	killNineUnderLoad(t, 3, "buffer: "+natstest.Server(t))
}

// R1 with a Kafka-protocol buffer (a 3-broker kfake cluster in the test process).
func TestKillNineUnderLoadOnKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs the weir binary for tens of seconds")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	killNineUnderLoad(t, 3, "buffer: kafka://"+strings.Join(c.ListenAddrs(), ","))
}

func killNineUnderLoad(t *testing.T, kills int, extra ...string) {
	seed := *seedFlag
	t.Logf("seed %d, %d kills", seed, kills)

	r := newRig(t, extra...)
	w := r.w
	rng := rand.New(rand.NewPCG(seed, 0))
	load := startLoad(w, seed)

	for i := range kills {
		time.Sleep(time.Duration(300+rng.IntN(1201)) * time.Millisecond)
		w.kill()
		d := r.restart()
		t.Logf("kill %d: ready again after %v (%d requests answered so far)", i+1, d.Round(time.Millisecond), load.sent.Load())
		if d > readyGoal {
			t.Logf("kill %d: ready after %v, R1 wants 10 s", i+1, d.Round(time.Millisecond))
		}
	}
	// Let the last incarnation take load of its own before the load stops.
	time.Sleep(time.Duration(500+rng.IntN(1001)) * time.Millisecond)
	r.verify(load.stop(), fmt.Sprintf("kills %d", kills))
}

// TestSigtermUnderLoad is R6: SIGTERM at random moments under the same load. Each time weir
// must exit 0 within exitBound; every request that overlaps a shutdown ends as a 2xx, a 503
// with Retry-After or a connection error (refused, reset, closed), never a timeout or another
// status; and the checker then finds nothing lost, nothing unexpected, one row per id.
func TestSigtermUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs the weir binary for tens of seconds")
	}
	terms := max(*termsFlag, 3)
	seed := *seedFlag
	t.Logf("seed %d, %d SIGTERMs", seed, terms)

	r := newRig(t)
	w := r.w
	rng := rand.New(rand.NewPCG(seed, 0))
	load := startLoad(w, seed)

	// outages[i] runs from the i-th SIGTERM until weir is ready again: the shutdown, the exit
	// and the restart, during which requests are refused.
	var outages []window
	var exits []time.Duration
	for i := range terms {
		time.Sleep(time.Duration(300+rng.IntN(1201)) * time.Millisecond)
		// Requests are short next to the pauses between them: signal once one is on the way, so
		// that the shutdown has something to finish (or, rarely, go ahead without).
		if !pollUntil(time.Second, func() bool { return load.inFlight.Load() > 0 }) {
			t.Logf("SIGTERM %d: no request in flight for 1 s; signalling anyway", i+1)
		}
		// terminate reports a non-zero exit or a hang (and then kills weir) itself; the run goes
		// on so that the checker still judges the data.
		win, signalled := w.terminate()
		if strings.Contains(w.currentLog(), "ingest requests still running at shutdown") {
			t.Logf("SIGTERM %d: weir closed its log while ingest requests were still running", i+1)
		}
		d := r.restart()
		var out window // stays empty, overlapping nothing, when there was nothing to signal
		if signalled {
			exits = append(exits, win.to.Sub(win.from))
			out = window{from: win.from, to: time.Now()}
		}
		outages = append(outages, out)
		t.Logf("SIGTERM %d: ready again after %v (%d requests answered so far)",
			i+1, d.Round(time.Millisecond), load.sent.Load())
	}
	time.Sleep(time.Duration(500+rng.IntN(1001)) * time.Millisecond)
	results := load.stop()

	// Judge every request that overlapped an outage.
	type tally struct{ requests, inFlight, inFlightAcked, acked, refused503, connErr int }
	per := make([]tally, len(outages))
	seen := map[*exchange]bool{}
	var bad, cut []string
	for _, res := range results {
		ex := res.ex
		if ex == nil || seen[ex] {
			continue // a batch's lines share one exchange
		}
		seen[ex] = true
		for i, win := range outages {
			if !ex.start.Before(win.to) || !ex.end.After(win.from) {
				continue
			}
			tl := &per[i]
			tl.requests++
			v := ex.verdict()
			if ex.start.Before(win.from) {
				tl.inFlight++
				if v == "2xx" {
					tl.inFlightAcked++
				} else if len(cut) < 5 {
					cut = append(cut, fmt.Sprintf("SIGTERM %d: %s: %s (%v)", i+1, res.id, v, ex.err))
				}
			}
			switch v {
			case "2xx":
				tl.acked++
			case "503":
				tl.refused503++
			case "connection error":
				tl.connErr++
			default:
				bad = append(bad, fmt.Sprintf("SIGTERM %d: %s (sent %v after the signal): %s",
					i+1, res.id, ex.start.Sub(win.from).Round(time.Millisecond), v))
			}
		}
	}
	for i, tl := range per {
		t.Logf("SIGTERM %d: %d requests until ready again (%d in flight at the signal, %d of them 2xx): 2xx %d, 503 %d, connection errors %d",
			i+1, tl.requests, tl.inFlight, tl.inFlightAcked, tl.acked, tl.refused503, tl.connErr)
	}
	if len(cut) > 0 {
		t.Logf("requests in flight at a signal that did not get a 2xx, e.g. %v", cut)
	}
	if len(bad) > 0 {
		t.Errorf("%d requests from a SIGTERM until ready again ended other than 2xx, 503 with Retry-After or a connection error, e.g. %v",
			len(bad), bad[:min(10, len(bad))])
	}
	r.verify(results, fmt.Sprintf("SIGTERMs %d (exit after at most %v)", terms, slices.Max(append(exits, 0)).Round(time.Millisecond)))
}

// window is a span of time, such as from a SIGTERM to the child's exit.
type window struct{ from, to time.Time }

// pollUntil polls cond every millisecond until it holds (true) or d has passed (false).
func pollUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// rig is one test's world: a partner that records every delivery, a config, and weir running
// on a data dir, started and ready.
type rig struct {
	t     *testing.T
	dir   string
	rcv   *partner.Receiver
	w     *weir
	ready []time.Duration // time to ready of every start
}

// newRig starts weir on the quickstart-like config; extra lines go at the top of the config
// (buffer: …).
func newRig(t *testing.T, extra ...string) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir()}
	sec, err := deliver.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	r.rcv = partner.New(partner.Config{Secrets: [][]byte{sec}})
	ps := httptest.NewServer(r.rcv)
	t.Cleanup(ps.Close)
	cfgPath := writeConfig(t, r.dir, ps.URL+"/webhook", extra...)
	r.w = newWeir(t, r.dir, cfgPath)
	r.restart()
	return r
}

// restart starts a new incarnation and returns its time to ready.
func (r *rig) restart() time.Duration {
	r.t.Helper()
	r.w.start()
	d := r.w.waitReady()
	r.ready = append(r.ready, d)
	return d
}

// verify is the checker. Given every outcome of the load, it waits until each acknowledged
// message is in SQLite and at the partner, stops weir with SIGTERM (exit 0 within its bound),
// then counts lost, unexpected, duplicated rows and partner duplicates on the quiet data.
// faults describes the run for the summary line.
func (r *rig) verify(results []result, faults string) {
	t, w, rcv := r.t, r.w, r.rcv
	t.Helper()
	sent := map[string]outcome{}
	var okIDs, failIDs []string
	counts := map[outcome]int{}
	var samples []string
	for _, res := range results {
		if _, dup := sent[res.id]; dup {
			t.Fatalf("load generator sent id %s twice", res.id)
		}
		sent[res.id] = res.out
		counts[res.out]++
		switch res.out {
		case ok:
			okIDs = append(okIDs, res.id)
		case fail:
			failIDs = append(failIDs, res.id)
			if len(samples) < 5 {
				samples = append(samples, res.id+": "+res.detail)
			}
		}
	}
	if len(okIDs) == 0 {
		t.Fatal("no request got a 2xx")
	}
	// Every message is valid and its id fresh, so weir has no reason to refuse any.
	if len(failIDs) > 0 {
		t.Errorf("%d valid messages refused with a 4xx, e.g. %v", len(failIDs), samples)
	}
	// The partner sees webhook-ids; msgOf maps them back to the ids sent.
	msgOf := make(map[string]string, len(sent))
	for id := range sent {
		msgOf[webhookID(id)] = id
	}

	// Wait until every acknowledged message is in SQLite and at the partner.
	dbPath := filepath.Join(r.dir, "data", "orders.db")
	var rows map[string]int
	var lostSQL, lostPartner []string
	var err error
	deadline := time.Now().Add(settleDeadline)
	for {
		rows, _, err = readRows(dbPath)
		if err == nil {
			lostSQL = missing(okIDs, rows)
			lostPartner = missing(okIDs, deliveredIDs(rcv.Deliveries(), msgOf))
			if len(lostSQL) == 0 && len(lostPartner) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("after %v: %d ok ids not in SQLite, %d never delivered (read error: %v)",
				settleDeadline, len(lostSQL), len(lostPartner), err)
			w.explain(slices.Compact(slices.Sorted(slices.Values(append(first(lostSQL, 3), first(lostPartner, 3)...)))))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A graceful stop must exit 0 within its bound.
	w.terminate()

	// Check once more on the quiet data.
	rows, foreign, err := readRows(dbPath)
	if err != nil {
		t.Fatalf("reading SQLite: %v", err)
	}
	var total int
	if err := withDB(dbPath, func(db *sql.DB) error {
		return db.QueryRow("select count(*) from orders").Scan(&total)
	}); err != nil {
		t.Fatal(err)
	}
	// A duplicate at the partner is the same delivery again: same webhook-id, same message,
	// same body.
	deliveries := rcv.Deliveries()
	webhooks := map[string]int{} // accepted deliveries per webhook-id
	bodies := map[string][]byte{}
	var mismatched []string
	for _, d := range deliveries {
		webhooks[d.ID]++
		var body struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(d.Body, &body); err != nil || body.ID != msgOf[d.ID] {
			mismatched = append(mismatched, fmt.Sprintf("webhook-id %s (of message %q) carries message %q (%v)", d.ID, msgOf[d.ID], body.ID, err))
		}
		if prev, seen := bodies[d.ID]; seen && !bytes.Equal(prev, d.Body) {
			mismatched = append(mismatched, fmt.Sprintf("webhook-id %s redelivered with another body", d.ID))
		}
		bodies[d.ID] = d.Body
	}
	delivered := deliveredIDs(deliveries, msgOf)

	lostSQL, lostPartner = missing(okIDs, rows), missing(okIDs, delivered)
	unexpectedSQL := foreign
	var unexpectedPartner, failedWithEffect []string
	landedUnknown := 0
	for id := range rows {
		switch out, wasSent := sent[id]; {
		case !wasSent:
			unexpectedSQL = append(unexpectedSQL, id)
		case out == fail:
			failedWithEffect = append(failedWithEffect, "row "+id)
		case out == unknown:
			landedUnknown++
		}
	}
	for wid := range webhooks {
		switch id, wasSent := msgOf[wid]; {
		case !wasSent:
			unexpectedPartner = append(unexpectedPartner, "webhook-id "+wid)
		case sent[id] == fail:
			failedWithEffect = append(failedWithEffect, "delivery "+id)
		}
	}
	duplicatedRows := 0
	for _, n := range rows {
		duplicatedRows += n - 1
	}
	partnerDups := len(deliveries) - len(webhooks)

	t.Logf("sent %d: ok %d, unknown %d (%d landed), fail %d; %s; time to ready max %v; rows %d; partner deliveries %d, duplicates %d (same webhook-id)",
		len(results), counts[ok], counts[unknown], landedUnknown, counts[fail], faults, slices.Max(r.ready).Round(time.Millisecond),
		total, len(deliveries), partnerDups)

	if len(lostSQL) > 0 {
		t.Errorf("lost: %d acknowledged ids not in SQLite, e.g. %v", len(lostSQL), first(lostSQL, 10))
	}
	if len(lostPartner) > 0 {
		t.Errorf("lost: %d acknowledged ids never delivered, e.g. %v", len(lostPartner), first(lostPartner, 10))
	}
	if len(unexpectedSQL) > 0 || len(unexpectedPartner) > 0 {
		t.Errorf("unexpected: rows %v, deliveries %v for ids never sent", first(unexpectedSQL, 10), first(unexpectedPartner, 10))
	}
	if len(failedWithEffect) > 0 {
		t.Errorf("effects of refused messages: %v", first(failedWithEffect, 10))
	}
	if duplicatedRows > 0 || total != len(rows)+len(foreign) {
		t.Errorf("duplicated rows: %d rows for %d distinct (client, id)", total, len(rows)+len(foreign))
	}
	if len(mismatched) > 0 {
		t.Errorf("deliveries that are not the message of their webhook-id: %d, e.g. %v", len(mismatched), first(mismatched, 10))
	}
}

// writeConfig writes weir.yaml with the quickstart's order type into dir and returns its path.
func writeConfig(t *testing.T, dir, partnerURL string, extra ...string) string {
	t.Helper()
	for _, name := range []string{"order.schema.json", "transform.jq"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", "quickstart", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256([]byte(token))
	yaml := fmt.Sprintf(`
data_dir: data
runtime: {partitions: 4, shutdown_timeout: %s}
clients:
  - id: %s
    token_hash: sha256:%s
    types: [order]
types:
  - name: order
    schema: order.schema.json
    key: /customer/id
    id: /id
    pipeline:
      process: [{jq_file: transform.jq}]
      sink:
        dsn: sqlite:orders.db
        table: orders
        columns: [{name: total, pointer: /total, type: numeric}]
      deliver: [partner]
endpoints:
  - name: partner
    url: %s
    secret: ${WEIR_CRASH_SECRET}
    timeout: 5s
    allow_private: true
`, shutdownTimeout, client, hex.EncodeToString(sum[:]), partnerURL)
	yaml = strings.Join(extra, "\n") + yaml
	path := filepath.Join(dir, "weir.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// weir runs the binary as a child process, one incarnation at a time, on one data dir.
type weir struct {
	t       *testing.T
	cfgPath string
	logPath string
	log     *os.File // every incarnation's stdout and stderr, appended

	url   atomic.Pointer[string] // ingest base URL; changes only when a port is taken
	admin string

	runs    int
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	exitErr error         // cmd.Wait's result, set before exited closes
	logFrom int64         // log offset where the current incarnation starts
	started time.Time
}

func newWeir(t *testing.T, dir, cfgPath string) *weir {
	w := &weir{t: t, cfgPath: cfgPath, logPath: filepath.Join(dir, "weir.log")}
	f, err := os.OpenFile(w.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	w.log = f
	w.pickPorts()
	// Registered after t.TempDir, so these run before it is removed: stop the child, then show
	// its log when the test failed.
	t.Cleanup(func() {
		if b, err := os.ReadFile(w.logPath); err == nil && t.Failed() {
			const keep = 256 << 10
			if len(b) > keep {
				b = append([]byte("…\n"), b[len(b)-keep:]...)
			}
			t.Logf("weir's log:\n%s", b)
		}
		w.log.Close()
	})
	t.Cleanup(func() {
		if w.cmd != nil && !w.hasExited() {
			w.cmd.Process.Kill()
			<-w.exited
		}
	})
	return w
}

func (w *weir) pickPorts() {
	u := "http://" + freeAddr(w.t)
	w.url.Store(&u)
	w.admin = freeAddr(w.t)
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (w *weir) baseURL() string { return *w.url.Load() }

// start launches a new incarnation without waiting for it to be ready.
func (w *weir) start() {
	w.t.Helper()
	w.runs++
	off, _ := w.log.Seek(0, io.SeekEnd)
	w.logFrom = off
	fmt.Fprintf(w.log, "===== run %d at %s =====\n", w.runs, time.Now().Format(time.TimeOnly+".000"))
	cmd := exec.Command(weirBin, "serve", "--config", w.cfgPath,
		"--ingest-addr", strings.TrimPrefix(w.baseURL(), "http://"), "--admin-addr", w.admin)
	cmd.Env = append(os.Environ(), "WEIR_CRASH_SECRET="+secret)
	cmd.Stdout, cmd.Stderr = w.log, w.log
	w.started = time.Now()
	if err := cmd.Start(); err != nil {
		w.t.Fatalf("starting weir: %v", err)
	}
	w.cmd = cmd
	exited := make(chan struct{})
	w.exited = exited
	go func() {
		w.exitErr = cmd.Wait()
		close(exited)
	}()
}

func (w *weir) hasExited() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

// waitReady polls /readyz until it answers 200 and returns the time since start. When the
// child exits first because a port was taken in the meantime, it retries on new ports.
func (w *weir) waitReady() time.Duration {
	w.t.Helper()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for bindRetries := 0; ; {
		deadline := w.started.Add(readyDeadline)
		for {
			if w.hasExited() {
				break
			}
			if resp, err := hc.Get(w.baseURL() + "/readyz"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return time.Since(w.started)
				}
			}
			if time.Now().After(deadline) {
				w.t.Fatalf("run %d: not ready within %v", w.runs, readyDeadline)
			}
			time.Sleep(20 * time.Millisecond)
		}
		logs := w.currentLog()
		if bindRetries < 5 && strings.Contains(logs, "address already in use") {
			bindRetries++
			w.t.Logf("run %d: a port was taken (%v); retrying on new ports", w.runs, w.exitErr)
			w.pickPorts()
			w.start()
			continue
		}
		w.t.Fatalf("run %d: weir exited before it was ready: %v", w.runs, w.exitErr)
	}
}

// currentLog returns what the current incarnation has logged so far.
func (w *weir) currentLog() string {
	f, err := os.Open(w.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(w.logFrom, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// kill SIGKILLs the current incarnation and waits for it to be gone.
func (w *weir) kill() {
	w.t.Helper()
	if w.hasExited() {
		w.t.Fatalf("run %d: weir died on its own: %v", w.runs, w.exitErr)
	}
	if err := w.cmd.Process.Kill(); err != nil {
		w.t.Fatalf("kill: %v", err)
	}
	<-w.exited
}

// terminate sends SIGTERM and checks that weir exits 0 within exitBound (else it reports the
// failure and kills it). It returns the span from the signal to the exit, and false when there
// was nothing to signal because weir had died on its own.
func (w *weir) terminate() (window, bool) {
	w.t.Helper()
	if w.hasExited() {
		w.t.Errorf("run %d: weir died on its own: %v", w.runs, w.exitErr)
		return window{}, false
	}
	start := time.Now()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		w.t.Fatalf("SIGTERM: %v", err)
	}
	timer := time.NewTimer(exitBound)
	defer timer.Stop()
	select {
	case <-w.exited:
		if w.exitErr != nil {
			w.t.Errorf("run %d: after SIGTERM weir exited with %v after %v", w.runs, w.exitErr, time.Since(start).Round(time.Millisecond))
		} else {
			w.t.Logf("run %d: SIGTERM: exited 0 after %v", w.runs, time.Since(start).Round(time.Millisecond))
		}
	case <-timer.C:
		w.t.Errorf("run %d: weir still running %v after SIGTERM", w.runs, exitBound)
		w.cmd.Process.Kill()
		<-w.exited
	}
	return window{from: start, to: time.Now()}, true
}

// explain logs weir's status trail of a few ids, to tell where they got stuck.
func (w *weir) explain(ids []string) {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	for _, id := range ids {
		req, _ := http.NewRequest(http.MethodGet, w.baseURL()+"/v1/messages/"+id, nil)
		req.SetBasicAuth(client, token)
		resp, err := hc.Do(req)
		if err != nil {
			w.t.Logf("status of %s: %v", id, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		w.t.Logf("status of %s: %d %s", id, resp.StatusCode, bytes.TrimSpace(b))
	}
}

// load is the load generator: workers posting fresh ids at a steady pace until stopped.
type load struct {
	base     func() string // where the next request goes: one weir's URL, or one of several
	client   *http.Client
	quit     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
	results  [workers][]result
	sent     atomic.Int64 // requests answered or failed so far
	inFlight atomic.Int64 // requests on their way right now
}

func startLoad(w *weir, seed uint64) *load { return startLoadTo(w.t, w.baseURL, seed) }

// startLoadTo is startLoad against whatever base returns at each request.
func startLoadTo(t *testing.T, base func() string, seed uint64) *load {
	l := &load{base: base, quit: make(chan struct{}), client: &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: workers, IdleConnTimeout: 30 * time.Second},
	}}
	for i := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.results[i] = l.worker(i, rand.New(rand.NewPCG(seed, uint64(i)+1)))
		}()
	}
	t.Cleanup(func() { l.stop() }) // when the test ends early
	return l
}

// stop ends the load after the requests in flight and returns every outcome.
func (l *load) stop() []result {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
	l.client.CloseIdleConnections()
	var all []result
	for _, r := range l.results {
		all = append(all, r...)
	}
	return all
}

func (l *load) worker(n int, rng *rand.Rand) []result {
	var res []result
	seq := 0
	nextID := func() string {
		seq++
		return fmt.Sprintf("w%d-%06d", n, seq)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-l.quit:
			return res
		case <-timer.C:
		}
		if rng.IntN(5) == 0 {
			ids := make([]string, 2+rng.IntN(7))
			lines := make([][]byte, len(ids))
			for i := range ids {
				ids[i] = nextID()
				lines[i] = order(rng, ids[i])
			}
			res = append(res, l.postBatch(ids, bytes.Join(lines, []byte("\n")))...)
		} else {
			id := nextID()
			res = append(res, l.postOne(id, order(rng, id)))
		}
		l.sent.Add(1)
		timer.Reset(pace/2 + time.Duration(rng.Int64N(int64(pace))))
	}
}

func order(rng *rand.Rand, id string) []byte {
	var items []string
	for range 1 + rng.IntN(3) {
		items = append(items, fmt.Sprintf(`{"sku":"SKU-%03d","qty":%d,"price":%d.%02d}`, rng.IntN(1000), 1+rng.IntN(5), rng.IntN(100), rng.IntN(100)))
	}
	return fmt.Appendf(nil, `{"id":%q,"customer":{"id":"c-%d","email":"Buyer%d@Example.com"},"currency":"eur","items":[%s],"shipping":{"country":"de"}}`,
		id, rng.IntN(50), rng.IntN(1000), strings.Join(items, ","))
}

// post sends one request and returns how it went and the response body.
func (l *load) post(path, ctype string, body []byte) (*exchange, []byte) {
	l.inFlight.Add(1)
	ex := &exchange{start: time.Now()}
	defer func() {
		ex.end = time.Now()
		l.inFlight.Add(-1)
	}()
	req, err := http.NewRequest(http.MethodPost, l.base()+path, bytes.NewReader(body))
	if err != nil {
		ex.err = err
		return ex, nil
	}
	req.SetBasicAuth(client, token)
	req.Header.Set("Content-Type", ctype)
	resp, err := l.client.Do(req)
	if err != nil {
		ex.err = err
		return ex, nil
	}
	defer resp.Body.Close()
	ex.code, ex.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	b, err := io.ReadAll(resp.Body)
	ex.err = err
	return ex, b
}

// classify maps an HTTP status to an outcome.
func classify(code int) outcome {
	switch {
	case code >= 200 && code < 300:
		return ok
	case code >= 400 && code < 500:
		return fail
	default: // 5xx (503 while starting or stopping), or anything odd
		return unknown
	}
}

func (l *load) postOne(id string, body []byte) result {
	ex, b := l.post("/v1/messages/order", "application/json", body)
	if ex.code == 0 {
		return result{id: id, out: unknown, detail: ex.err.Error(), ex: ex}
	}
	// A 2xx is an acknowledgement even when the body was cut short.
	r := result{id: id, out: classify(ex.code), ex: ex}
	if r.out != ok {
		r.detail = fmt.Sprintf("%d %s", ex.code, bytes.TrimSpace(b))
	}
	return r
}

func (l *load) postBatch(ids []string, body []byte) []result {
	ex, b := l.post("/v1/messages/order/batch", "application/x-ndjson", body)
	all := func(out outcome, detail string) []result {
		res := make([]result, len(ids))
		for i, id := range ids {
			res[i] = result{id: id, out: out, detail: detail, ex: ex}
		}
		return res
	}
	if ex.code == 0 {
		return all(unknown, ex.err.Error())
	}
	detail := fmt.Sprintf("%d %s", ex.code, bytes.TrimSpace(b))
	if ex.code == http.StatusAccepted { // every line accepted
		return all(ok, "")
	}
	if ex.err != nil {
		return all(unknown, detail)
	}
	// 207 or 400 carry one result per line; other statuses speak for the whole batch.
	var br struct {
		Results []struct {
			ID   string `json:"id"`
			Code int    `json:"code"`
		} `json:"results"`
	}
	if (ex.code != http.StatusMultiStatus && ex.code != http.StatusBadRequest) ||
		json.Unmarshal(b, &br) != nil || len(br.Results) != len(ids) {
		out := classify(ex.code)
		if out == ok { // a 2xx we cannot read line by line
			out = unknown
		}
		return all(out, detail)
	}
	res := make([]result, len(ids))
	for i, id := range ids {
		lr := br.Results[i]
		res[i] = result{id: id, out: classify(lr.Code), ex: ex}
		if lr.ID != id {
			res[i] = result{id: id, out: unknown, detail: fmt.Sprintf("line %d answered for id %q", i+1, lr.ID), ex: ex}
		} else if res[i].out != ok {
			res[i].detail = fmt.Sprintf("line %d: %d in %s", i+1, lr.Code, detail)
		}
	}
	return res
}

// withDB opens the SQLite sink's database from outside, as a second process would.
func withDB(path string, f func(*sql.DB) error) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	return f(db)
}

// readRows returns the number of rows per id of our client, and the keys of rows that belong
// to any other client.
func readRows(path string) (rows map[string]int, foreign []string, err error) {
	rows = map[string]int{}
	err = withDB(path, func(db *sql.DB) error {
		rs, err := db.QueryContext(context.Background(), "select client, id from orders")
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var c, id string
			if err := rs.Scan(&c, &id); err != nil {
				return err
			}
			if c != client {
				foreign = append(foreign, c+"/"+id)
				continue
			}
			rows[id]++
		}
		return rs.Err()
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read orders: %w", err)
	}
	return rows, foreign, nil
}

// webhookID is the webhook-id weir delivers our client's order id under.
func webhookID(id string) string { return pipeline.WebhookID(client, messageType, id) }

// deliveredIDs returns the number of accepted deliveries per message id, mapping each webhook-id
// back through msgOf; webhook-ids of no message sent are left out (verify reports them).
func deliveredIDs(deliveries []partner.Delivery, msgOf map[string]string) map[string]int {
	ids := map[string]int{}
	for _, d := range deliveries {
		if id, ok := msgOf[d.ID]; ok {
			ids[id]++
		}
	}
	return ids
}

// missing returns the ids absent from have.
func missing(ids []string, have map[string]int) []string {
	var out []string
	for _, id := range ids {
		if have[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// first returns the n smallest of s, for messages.
func first(s []string, n int) []string {
	s = slices.Sorted(slices.Values(s))
	return s[:min(n, len(s))]
}
