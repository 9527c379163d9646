package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGeneratorPoison(t *testing.T) {
	g, err := newGenerator(referenceOrder, 42, 1000)
	if err != nil {
		t.Fatal(err)
	}
	g.setPoison(0.01)
	const n = 100_000
	var poison []uint64
	for i := uint64(1); i <= n; i++ {
		msg := g.appendMessage(nil, i)
		if IsPoison(msg) != g.isPoison(i) {
			t.Fatalf("message %d: IsPoison %v, isPoison %v", i, IsPoison(msg), g.isPoison(i))
		}
		if !g.isPoison(i) {
			continue
		}
		poison = append(poison, i)
		if len(poison) > 3 {
			continue
		}
		// A poison message is the clean one with one more member.
		got := decodeObject(t, msg)
		if got["weir_bench"] != "poison" {
			t.Fatalf("poison message %d lacks the mark: %s", i, msg)
		}
		delete(got, "weir_bench")
		g.setPoison(0)
		clean := g.appendMessage(nil, i)
		g.setPoison(0.01)
		if b, _ := json.Marshal(got); !bytes.Equal(b, mustCompactSorted(t, clean)) {
			t.Fatalf("poison message %d differs from the clean one beyond the mark:\n%s\n%s", i, msg, clean)
		}
	}
	if len(poison) < 800 || len(poison) > 1200 {
		t.Fatalf("%d poison messages of %d, want about 1%%", len(poison), n)
	}
	// The same seed marks the same messages; another seed others.
	g2, _ := newGenerator(referenceOrder, 42, 1000)
	g2.setPoison(0.01)
	g3, _ := newGenerator(referenceOrder, 43, 1000)
	g3.setPoison(0.01)
	same := 0
	for _, i := range poison {
		if !g2.isPoison(i) {
			t.Fatalf("message %d is poison with seed 42 once, not twice", i)
		}
		if g3.isPoison(i) {
			same++
		}
	}
	if same > len(poison)/10 {
		t.Fatalf("seed 43 marks %d of seed 42's %d poison messages", same, len(poison))
	}
	for frac, want := range map[float64]bool{0: false, 1: true} {
		g.setPoison(frac)
		for i := uint64(1); i <= 100; i++ {
			if g.isPoison(i) != want || IsPoison(g.appendMessage(nil, i)) != want {
				t.Fatalf("fraction %v: message %d poison %v", frac, i, !want)
			}
		}
	}
	// A template with nothing but the id still gets a valid poison message.
	small, err := newGenerator([]byte(`{}`), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	small.setPoison(1)
	if got := string(small.appendMessage(nil, 5)); got != `{"weir_bench":"poison","id":"b-1-5"}` {
		t.Fatalf("got %s", got)
	}
}

func mustCompactSorted(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := json.Marshal(decodeObject(t, b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIsPoison(t *testing.T) {
	for body, want := range map[string]bool{
		`{"weir_bench":"poison","id":"x"}`:          true,
		`{"id":"x","weir_bench": "poison"}`:         true,
		`{"id":"x","weir_bench":"fine","poison":1}`: false,
		`{"id":"x","notes":"poison"}`:               false,
		`{"weir_bench":1,"weir_bench":"poison"}`:    true,
		``:                                          false,
	} {
		if IsPoison([]byte(body)) != want {
			t.Errorf("IsPoison(%s) = %v", body, !want)
		}
	}
}

// lineCounter answers every request as accepted and counts messages, distinct ids and poison.
type lineCounter struct {
	mu     sync.Mutex
	ids    map[string]int
	poison int
}

func (lc *lineCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sc := bufio.NewScanner(r.Body)
	n := 0
	for sc.Scan() {
		var m struct{ ID string }
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		lc.mu.Lock()
		lc.ids[m.ID]++
		if IsPoison(sc.Bytes()) {
			lc.poison++
		}
		lc.mu.Unlock()
		n++
	}
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(map[string]any{"accepted": n, "rejected": 0})
}

func TestRunMessagesLimitAndPoisonCount(t *testing.T) {
	for _, mode := range []string{ModeSingle, ModeBatch} {
		t.Run(mode, func(t *testing.T) {
			lc := &lineCounter{ids: map[string]int{}}
			srv := httptest.NewServer(lc)
			t.Cleanup(srv.Close)
			cfg := Config{URL: srv.URL, Type: "order", Mode: mode, BatchSize: 7, Connections: 4,
				Duration: time.Minute, Seed: 5, Messages: 1000, Poison: 0.05}
			rep := run(t, cfg)
			lc.mu.Lock()
			defer lc.mu.Unlock()
			if rep.Messages != 1000 || len(lc.ids) != 1000 || rep.ErrorCount != 0 {
				t.Fatalf("report %d messages (errors %v), server saw %d distinct ids, want 1000", rep.Messages, rep.Errors, len(lc.ids))
			}
			for id, n := range lc.ids {
				if n != 1 {
					t.Fatalf("id %s sent %d times", id, n)
				}
			}
			if rep.Poisoned != int64(lc.poison) || lc.poison == 0 {
				t.Fatalf("report counts %d poison, server saw %d", rep.Poisoned, lc.poison)
			}
			if rep.Interrupted || rep.Duration >= cfg.Duration {
				t.Fatalf("the run did not stop at the message limit: %s, interrupted %v", rep.Duration, rep.Interrupted)
			}
		})
	}
}

func TestRunMessagesLimitOpenLoop(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	rep := run(t, Config{URL: srv.URL, Type: "order", Rate: 2000, Connections: 8, Duration: time.Minute, Seed: 1, Messages: 100})
	if rep.Messages != 100 || got.Load() != 100 || rep.Missed != 0 {
		t.Fatalf("messages %d, server saw %d, missed %d", rep.Messages, got.Load(), rep.Missed)
	}
}

func TestRecorder(t *testing.T) {
	var r Recorder
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 1; i <= 1000; i++ {
				r.Record(time.Duration(g*1000+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	l := r.Latency()
	if l.Count != 4000 || l.Max != 4000*time.Microsecond {
		t.Fatalf("latency %+v", l)
	}
	if d := l.P50 - 2000*time.Microsecond; d < -40*time.Microsecond || d > 40*time.Microsecond {
		t.Fatalf("p50 %s, want ~2ms", l.P50)
	}
	if d := l.P99 - 3960*time.Microsecond; d < -70*time.Microsecond || d > 70*time.Microsecond {
		t.Fatalf("p99 %s, want ~3.96ms", l.P99)
	}
}
