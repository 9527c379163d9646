package crash

// R1 under retries: SIGKILL the real weir binary while deliveries wait for their retries, restart
// it on the same data dir, and check that nothing acknowledged is lost, that SQLite holds one row
// per message, that the retry schedule resumes where it stopped (the attempt numbers go on across
// restarts) and that a delivered message is not attempted again.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	retryMessages = 300 // messages posted, each with a known id
	retryKills    = 3   // SIGKILLs while retries are pending
	failFirst     = 2   // the partner answers 503 to the first attempts of every id
	// retryEndpoint is the partner endpoint's schedule: short, without jitter, and with far more
	// attempts than the test can use, so that nothing is dead-lettered.
	retryEndpoint   = "    retry: {schedule: [300ms, 600ms, 1s, 1s, 1s], jitter: 0, max_attempts: 1000}\n"
	retrySettle     = 60 * time.Second     // every acknowledged id delivered once the partner is back
	retryQuiet      = 2 * time.Second      // no attempt may follow a 2xx within this long
	retryMaxExtra   = retryKills           // attempts a message may lose to the kills (one per kill landing mid-attempt)
	deliverStage    = "deliver"            // pipeline.StageDeliver
	partnerEndpoint = "partner"            // the endpoint's name in writeConfig
	statusRetrying  = "retrying"           // state.StatusRetrying
	statusDelivered = "delivered"          // state.StatusDelivered
	statusDead      = "dead_lettered"      // state.StatusDead
	orderType       = "/v1/messages/order" // ingest path of the quickstart's order type
	adminRetries    = "/v1/admin/retries"  // {"scheduled": n}
	adminLetters    = "/v1/admin/dead-letters"
)

// attempt is one delivery attempt the flaky partner saw.
type attempt struct {
	n    int // the attempt's number at the partner for its webhook-id, from 1
	at   time.Time
	code int // what the partner answered
}

// flakyPartner records every attempt per webhook-id and answers 503 to the first failFirst
// attempts of each id, and to every attempt while it is down; otherwise 204.
type flakyPartner struct {
	down atomic.Bool

	mu       sync.Mutex
	attempts map[string][]attempt
	bodies   map[string][]byte // the body of the first attempt per id
	odd      []string          // attempts without a webhook-id, or with another body
}

func (p *flakyPartner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	id := r.Header.Get("webhook-id")
	now := time.Now()
	p.mu.Lock()
	if id == "" || err != nil {
		p.odd = append(p.odd, fmt.Sprintf("attempt without webhook-id or with an unreadable body (%v)", err))
		p.mu.Unlock()
		http.Error(w, "no webhook-id", http.StatusBadRequest)
		return
	}
	if prev, ok := p.bodies[id]; !ok {
		p.bodies[id] = body
	} else if !bytes.Equal(prev, body) {
		p.odd = append(p.odd, "webhook-id "+id+" attempted with another body")
	}
	a := attempt{n: len(p.attempts[id]) + 1, at: now, code: http.StatusNoContent}
	if p.down.Load() || a.n <= failFirst {
		a.code = http.StatusServiceUnavailable
	}
	p.attempts[id] = append(p.attempts[id], a)
	p.mu.Unlock()
	w.WriteHeader(a.code)
}

// snapshot returns a copy of every attempt per webhook-id.
func (p *flakyPartner) snapshot() map[string][]attempt {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string][]attempt, len(p.attempts))
	for id, as := range p.attempts {
		out[id] = slices.Clone(as)
	}
	return out
}

// firstOK returns the index of the first 2xx among as, or -1.
func firstOK(as []attempt) int {
	return slices.IndexFunc(as, func(a attempt) bool { return a.code >= 200 && a.code < 300 })
}

// TestKillNineDuringRetries: a partner that is down keeps every delivery retrying; weir is
// SIGKILLed three times while retries are pending and restarted on the same data dir, then the
// partner comes back. Every acknowledged message must be delivered with a 2xx and be in SQLite
// exactly once; the attempt numbers in each status trail must go on across the restarts (the
// schedule resumed rather than started over); no attempt may follow a message's 2xx; and at the
// end no retry is pending and nothing is dead-lettered.
func TestKillNineDuringRetries(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs the weir binary for tens of seconds")
	}
	began := time.Now()
	seed := *seedFlag
	rng := rand.New(rand.NewPCG(seed, 7))
	t.Logf("seed %d, %d kills, %d messages, partner fails the first %d attempts of each id", seed, retryKills, retryMessages, failFirst)

	dir := t.TempDir()
	p := &flakyPartner{attempts: map[string][]attempt{}, bodies: map[string][]byte{}}
	p.down.Store(true)
	ps := httptest.NewServer(p)
	t.Cleanup(ps.Close)
	cfgPath := writeRetryConfig(t, dir, ps.URL+"/webhook")
	w := newWeir(t, dir, cfgPath)
	w.start()
	ready := []time.Duration{w.waitReady()}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: workers}}
	t.Cleanup(hc.CloseIdleConnections)

	// Post every message before the first kill, so that each request is answered by a running
	// weir: all of them must be acknowledged.
	acked := postOrders(t, hc, w, retryMessages, rng)
	if len(acked) != retryMessages {
		t.Fatalf("%d of %d messages acknowledged; weir was running all along", len(acked), retryMessages)
	}

	// Kill while retries are pending, restart on the same data dir.
	var kills []time.Time
	for k := range retryKills {
		time.Sleep(time.Duration(300+rng.IntN(901)) * time.Millisecond)
		var n int
		if !pollUntil(10*time.Second, func() bool { n = scheduled(t, hc, w); return n > 0 }) {
			t.Fatalf("kill %d: no retry pending for 10 s while the partner is down", k+1)
		}
		before := p.snapshot()
		w.kill()
		kills = append(kills, time.Now())
		w.start()
		d := w.waitReady()
		ready = append(ready, d)
		t.Logf("kill %d: %d retries were pending, %d attempts at the partner so far; ready again after %v",
			k+1, n, countAttempts(before), d.Round(time.Millisecond))
	}

	// Let the last incarnation run its own retries against the down partner, then bring it back.
	time.Sleep(time.Duration(500+rng.IntN(501)) * time.Millisecond)
	p.down.Store(false)
	up := time.Now()

	// Wait until every acknowledged id got a 2xx.
	var undelivered []string
	deadline := up.Add(retrySettle)
	for {
		snap := p.snapshot()
		undelivered = undelivered[:0]
		for _, id := range acked {
			if firstOK(snap[webhookID(id)]) < 0 {
				undelivered = append(undelivered, id)
			}
		}
		if len(undelivered) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	allDelivered := time.Now()
	if len(undelivered) > 0 {
		t.Errorf("lost: %d acknowledged ids got no 2xx within %v after the partner came back, e.g. %v",
			len(undelivered), retrySettle, first(undelivered, 10))
		w.explain(first(undelivered, 3))
	} else {
		t.Logf("every acknowledged id delivered %v after the partner came back", allDelivered.Sub(up).Round(time.Millisecond))
	}

	// Nothing may follow a 2xx: wait, then look for attempts after each id's first 2xx.
	time.Sleep(retryQuiet)
	var pending int
	pollUntil(5*time.Second, func() bool { pending = scheduled(t, hc, w); return pending == 0 })
	final := p.snapshot()
	if pending != 0 {
		t.Errorf("%d retries still scheduled %v after every id was delivered", pending, time.Since(allDelivered).Round(time.Millisecond))
	}
	letters := deadLetters(t, hc, w)
	if len(letters) > 0 {
		t.Errorf("%d dead letters, e.g. %s", len(letters), letters[0])
	}

	// The status trails: the deliver attempts of each id are numbered 1, 2, 3, … across the
	// restarts, end with the 2xx, and account for every attempt at the partner but those a kill
	// cut short.
	trails := map[string][]trailEvent{}
	for _, id := range acked {
		trails[id] = trail(t, hc, w, id)
	}

	// A graceful stop, then SQLite on the quiet data.
	w.terminate()
	rows, foreign, err := readRows(filepath.Join(dir, "data", "orders.db"))
	if err != nil {
		t.Fatalf("reading SQLite: %v", err)
	}
	var notInSQL, dupRows []string
	for _, id := range acked {
		switch rows[id] {
		case 0:
			notInSQL = append(notInSQL, id)
		case 1:
		default:
			dupRows = append(dupRows, fmt.Sprintf("%s×%d", id, rows[id]))
		}
	}
	var unexpected []string
	for id := range rows {
		if !slices.Contains(acked, id) {
			unexpected = append(unexpected, id)
		}
	}
	if len(notInSQL) > 0 {
		t.Errorf("lost: %d acknowledged ids not in SQLite, e.g. %v", len(notInSQL), first(notInSQL, 10))
	}
	if len(dupRows) > 0 {
		t.Errorf("%d ids with more than one SQL row, e.g. %v", len(dupRows), first(dupRows, 10))
	}
	if len(unexpected) > 0 || len(foreign) > 0 {
		t.Errorf("unexpected rows: %v, of other clients: %v", first(unexpected, 10), first(foreign, 10))
	}

	// The partner's view and the trails, id by id.
	p.mu.Lock()
	odd := slices.Clone(p.odd)
	p.mu.Unlock()
	if len(odd) > 0 {
		t.Errorf("%d odd attempts, e.g. %v", len(odd), odd[:min(5, len(odd))])
	}
	var (
		tooFew, afterOK, twiceOK, resumedBadly, notDelivered, unaccounted, dupNumbers, startedOver []string
		spanned, totalAttempts, maxAttempts                                                        int
		example                                                                                    string
	)
	for _, id := range acked {
		as := final[webhookID(id)]
		totalAttempts += len(as)
		maxAttempts = max(maxAttempts, len(as))
		if len(as) < failFirst+1 {
			tooFew = append(tooFew, fmt.Sprintf("%s: %d", id, len(as)))
		}
		if i := firstOK(as); i >= 0 && i < len(as)-1 {
			afterOK = append(afterOK, fmt.Sprintf("%s: %d attempts after its 2xx (attempt %d of %d)", id, len(as)-1-i, i+1, len(as)))
		}
		oks := 0
		for _, a := range as {
			if a.code < 300 {
				oks++
			}
		}
		if oks > 1 {
			twiceOK = append(twiceOK, fmt.Sprintf("%s: %d", id, oks))
		}

		// The deliver events of the trail, oldest first.
		var ev []trailEvent
		for _, e := range trails[id] {
			if e.Stage == deliverStage && e.Endpoint == partnerEndpoint {
				ev = append(ev, e)
			}
		}
		if len(ev) == 0 || ev[len(ev)-1].Status != statusDelivered {
			notDelivered = append(notDelivered, fmt.Sprintf("%s: %s", id, describe(ev)))
			continue
		}
		last := ev[len(ev)-1].Attempts
		// Numbered 1, 2, 3, …: a repeated number is a second schedule running beside the first;
		// a gap is an attempt whose event was lost while weir went on (never expected).
		numbers := make([]int, len(ev))
		for i, e := range ev {
			numbers[i] = e.Attempts
		}
		want := make([]int, last)
		for i := range want {
			want[i] = i + 1
		}
		twoSchedules := false
		if !slices.Equal(numbers, want) {
			sorted := slices.Sorted(slices.Values(numbers))
			if len(slices.Compact(sorted)) < len(numbers) {
				twoSchedules = true
				dupNumbers = append(dupNumbers, fmt.Sprintf("%s: %s; partner saw %d attempts", id, describe(ev), len(as)))
			} else {
				resumedBadly = append(resumedBadly, fmt.Sprintf("%s: %s", id, describe(ev)))
			}
		}
		// Across a restart the numbers go on: an id retried before a kill and again after it
		// must not have its attempt 1 again after the kill.
		for _, k := range kills {
			var before, after []int
			for _, e := range ev {
				if e.At.Before(k) {
					before = append(before, e.Attempts)
				} else {
					after = append(after, e.Attempts)
				}
			}
			if len(before) > 0 && len(after) > 0 {
				spanned++
				if slices.Min(after) <= 1 || slices.Min(after) < slices.Max(before) {
					startedOver = append(startedOver, fmt.Sprintf("%s (kill at %s): %s", id, k.Format(time.TimeOnly+".000"), describe(ev)))
				}
				if example == "" && slices.Max(after) > slices.Max(before)+1 {
					example = fmt.Sprintf("%s: %s; partner saw %d attempts", id, describe(ev), len(as))
				}
			}
		}
		// Every attempt at the partner up to the 2xx is in the trail, but for at most one per
		// kill (an attempt cut short, or whose outcome the kill lost before it was stored).
		upToOK := len(as)
		if i := firstOK(as); i >= 0 {
			upToOK = i + 1
		}
		if !twoSchedules && (upToOK < last || upToOK > last+retryMaxExtra) {
			unaccounted = append(unaccounted, fmt.Sprintf("%s: partner saw %d attempts up to its 2xx, the trail delivered at attempt %d", id, upToOK, last))
		}
	}
	t.Logf("attempts at the partner: %d in all, at most %d for one id; trails spanning a kill: %d; time to ready max %v; total %v",
		totalAttempts, maxAttempts, spanned, slices.Max(ready).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	if example != "" {
		t.Logf("example of a schedule resumed across a kill: %s", example)
	}
	if spanned == 0 {
		t.Errorf("no trail has deliver attempts on both sides of a kill: the test did not kill during retries")
	}
	if len(tooFew) > 0 {
		t.Errorf("%d ids attempted fewer than %d times, e.g. %v", len(tooFew), failFirst+1, first(tooFew, 10))
	}
	if len(notDelivered) > 0 {
		t.Errorf("%d trails do not end with a delivery, e.g. %v", len(notDelivered), first(notDelivered, 5))
	}
	if len(startedOver) > 0 {
		t.Errorf("%d trails whose attempt numbers started over after a kill, e.g. %v", len(startedOver), first(startedOver, 5))
	}
	if len(resumedBadly) > 0 {
		t.Errorf("%d trails whose attempts are not numbered 1, 2, 3, …, e.g. %v", len(resumedBadly), first(resumedBadly, 5))
	}
	if len(unaccounted) > 0 {
		t.Errorf("%d ids whose attempts at the partner the trail does not account for, e.g. %v", len(unaccounted), first(unaccounted, 5))
	}
	// The partner is down for every kill, so no 2xx precedes a kill: a second 2xx, or any attempt
	// after the 2xx, would mean two retry schedules ran for one message — a failed record that
	// the restarted stage handled again (the kill landed between the retry's write and the
	// throttled offset commit) must not start a second chain.
	if len(dupNumbers) > 0 {
		t.Errorf("%d trails with an attempt number twice (two schedules for one message), e.g. %v", len(dupNumbers), first(dupNumbers, 3))
	}
	if len(afterOK) > 0 {
		t.Errorf("%d ids attempted again after their 2xx, e.g. %v", len(afterOK), first(afterOK, 5))
	}
	if len(twiceOK) > 0 {
		t.Errorf("%d ids answered 2xx more than once (no kill followed any 2xx), e.g. %v", len(twiceOK), first(twiceOK, 5))
	}
}

// writeRetryConfig writes writeConfig's weir.yaml with the retry schedule on the partner
// endpoint, which writeConfig puts last.
func writeRetryConfig(t *testing.T, dir, partnerURL string) string {
	t.Helper()
	path := writeConfig(t, dir, partnerURL)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, []byte("    allow_private: true\n")) {
		t.Fatalf("writeConfig no longer ends with the partner endpoint:\n%s", b)
	}
	if err := os.WriteFile(path, append(b, retryEndpoint...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// postOrders posts n orders with known ids from several workers and returns the ids weir
// acknowledged with a 202, reporting every other answer.
func postOrders(t *testing.T, hc *http.Client, w *weir, n int, rng *rand.Rand) []string {
	t.Helper()
	bodies := make([][]byte, n)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("r-%04d", i)
		bodies[i] = order(rng, ids[i])
	}
	okays := make([]bool, n)
	var mu sync.Mutex
	var refused []string
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, w.baseURL()+orderType, bytes.NewReader(bodies[i]))
				req.SetBasicAuth(client, token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					mu.Lock()
					refused = append(refused, fmt.Sprintf("%s: %v", ids[i], err))
					mu.Unlock()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					okays[i] = true
					continue
				}
				mu.Lock()
				refused = append(refused, fmt.Sprintf("%s: %d %s", ids[i], resp.StatusCode, bytes.TrimSpace(b)))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(refused) > 0 {
		t.Errorf("%d posts not acknowledged, e.g. %v", len(refused), first(refused, 5))
	}
	var acked []string
	for i, ok := range okays {
		if ok {
			acked = append(acked, ids[i])
		}
	}
	return acked
}

// adminGet GETs path from weir's admin listener and decodes the JSON answer into v.
func adminGet(t *testing.T, hc *http.Client, w *weir, path string, v any) {
	t.Helper()
	resp, err := hc.Get("http://" + w.admin + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// scheduled returns GET /v1/admin/retries's count of pending retries. It pauses 10 ms first,
// so that pollUntil does not hammer the admin listener.
func scheduled(t *testing.T, hc *http.Client, w *weir) int {
	t.Helper()
	time.Sleep(10 * time.Millisecond)
	var v struct {
		Scheduled *int `json:"scheduled"`
	}
	adminGet(t, hc, w, adminRetries, &v)
	if v.Scheduled == nil {
		t.Fatalf("GET %s: no scheduled count", adminRetries)
	}
	return *v.Scheduled
}

// deadLetters returns the dead letters (up to 1000) as raw JSON.
func deadLetters(t *testing.T, hc *http.Client, w *weir) []string {
	t.Helper()
	var v struct {
		DeadLetters []json.RawMessage `json:"dead_letters"`
	}
	adminGet(t, hc, w, adminLetters+"?limit=1000", &v)
	out := make([]string, len(v.DeadLetters))
	for i, d := range v.DeadLetters {
		out[i] = string(d)
	}
	return out
}

// trailEvent is one event of GET /v1/messages/{id}'s trail.
type trailEvent struct {
	Stage    string    `json:"stage"`
	Endpoint string    `json:"endpoint"`
	Status   string    `json:"status"`
	At       time.Time `json:"at"`
	Attempts int       `json:"attempts"`
	Code     int       `json:"status_code"`
}

// trail returns id's status trail, oldest first.
func trail(t *testing.T, hc *http.Client, w *weir, id string) []trailEvent {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, w.baseURL()+"/v1/messages/"+id, nil)
	req.SetBasicAuth(client, token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("status of %s: %v", id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status of %s: %d %s", id, resp.StatusCode, bytes.TrimSpace(b))
	}
	var st struct {
		Trail []trailEvent `json:"trail"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("status of %s: %v in %s", id, err, b)
	}
	return st.Trail
}

// describe renders deliver events as "retrying#1 retrying#2 … delivered#5".
func describe(ev []trailEvent) string {
	if len(ev) == 0 {
		return "no deliver events"
	}
	parts := make([]string, len(ev))
	for i, e := range ev {
		s := e.Status
		switch s {
		case statusRetrying:
			s = "r"
		case statusDelivered:
			s = "D"
		case statusDead:
			s = "DEAD"
		}
		parts[i] = fmt.Sprintf("%s#%d@%s", s, e.Attempts, e.At.Local().Format("05.000"))
	}
	return strings.Join(parts, " ")
}

// countAttempts sums the attempts of a snapshot.
func countAttempts(snap map[string][]attempt) int {
	n := 0
	for _, as := range snap {
		n += len(as)
	}
	return n
}
