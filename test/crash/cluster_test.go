package crash

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weirhq/weir/internal/buffer/natsjs/natstest"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/partner"
	"github.com/weirhq/weir/internal/pgpool/pgtest"
)

// Issue 6, many instances: three weir processes share one buffer and one PostgreSQL state
// store (and write one PostgreSQL table); under load one is SIGKILLed, and later a fresh one
// joins. Nothing acknowledged is lost, no row is written twice, a partner duplicate is only
// ever the same webhook-id again, and each key's messages reach the partner in the order they
// were acknowledged. The fail-over time (SIGKILL until the survivors own every partition) is
// logged.
func TestThreeInstancesOnNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs three weir binaries for tens of seconds")
	}
	threeInstances(t, "buffer: "+natstest.Cluster(t))
}

func TestThreeInstancesOnKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs three weir binaries for tens of seconds")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	threeInstances(t, "buffer: kafka://"+strings.Join(c.ListenAddrs(), ","))
}

const clusterPartitions = 4 // runtime.partitions in writeConfig

func threeInstances(t *testing.T, bufferLine string) {
	seed := *seedFlag
	rng := rand.New(rand.NewPCG(seed, 7))
	stateURL := pgtest.Schema(t)
	u, _ := url.Parse(stateURL)
	schema := u.Query().Get("search_path")

	sec, err := deliver.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	rcv := partner.New(partner.Config{Secrets: [][]byte{sec}})
	ps := httptest.NewServer(rcv)
	t.Cleanup(ps.Close)

	var mu sync.Mutex
	var live []*weir
	add := func() *weir {
		dir := t.TempDir()
		cfg := writeConfig(t, dir, ps.URL+"/webhook", bufferLine, "state: "+stateURL)
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.Replace(string(b), "dsn: sqlite:orders.db\n        table: orders",
			fmt.Sprintf("dsn: %s\n        table: %s.orders", pgtest.DSN(), schema), 1))
		if err := os.WriteFile(cfg, b, 0o600); err != nil {
			t.Fatal(err)
		}
		w := newWeir(t, dir, cfg)
		w.start()
		w.waitReady()
		mu.Lock()
		live = append(live, w)
		mu.Unlock()
		return w
	}
	for range 3 {
		add()
	}
	var next atomic.Uint64
	load := startLoadTo(t, func() string {
		mu.Lock()
		defer mu.Unlock()
		return live[next.Add(1)%uint64(len(live))].baseURL()
	}, seed)

	time.Sleep(time.Duration(2000+rng.IntN(2000)) * time.Millisecond)
	mu.Lock()
	victim := live[rng.IntN(len(live))]
	mu.Unlock()
	victim.kill()
	killed := time.Now()
	mu.Lock()
	live = slices.DeleteFunc(live, func(w *weir) bool { return w == victim })
	survivors := slices.Clone(live)
	mu.Unlock()
	failover, ok := ownedByAll(survivors, 30*time.Second)
	if !ok {
		t.Errorf("the survivors did not take over every partition within 30s of the SIGKILL")
	}
	t.Logf("fail-over: %v from SIGKILL until the survivors own every partition", failover.Round(time.Millisecond))

	time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
	joined := add()
	t.Logf("a fourth instance joined %v after the kill", time.Since(killed).Round(time.Millisecond))
	mu.Lock()
	all := slices.Clone(live)
	mu.Unlock()
	if _, ok := ownedByAll(all, 30*time.Second); !ok {
		t.Errorf("the new instance did not get its share: %s", joined.currentLog())
	}
	time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
	results := load.stop()

	verifyShared(t, results, rcv, schema, all)
}

var ownedRE = regexp.MustCompile(`msg="cluster: partitions".* owned="?\[([0-9 ]*)\]`)

// ownedByAll waits until the instances' latest shares are disjoint and cover every partition,
// each instance holding its fair share, and returns how long that took.
func ownedByAll(ws []*weir, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < limit {
		var all []string
		fair := true
		for _, w := range ws {
			m := ownedRE.FindAllStringSubmatch(w.currentLog(), -1)
			if len(m) == 0 {
				fair = false
				break
			}
			share := strings.Fields(m[len(m)-1][1])
			if n := len(share); n < clusterPartitions/len(ws) || n > (clusterPartitions+len(ws)-1)/len(ws) {
				fair = false
			}
			all = append(all, share...)
		}
		slices.Sort(all)
		if fair && len(all) == clusterPartitions && len(slices.Compact(all)) == clusterPartitions {
			return time.Since(start), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return limit, false
}

// verifyShared checks the run: every acknowledged message once in the table and at the partner,
// nothing for ids never sent, each key in acknowledged order at the partner.
func verifyShared(t *testing.T, results []result, rcv *partner.Receiver, schema string, ws []*weir) {
	t.Helper()
	sent := map[string]result{}
	var okIDs []string
	counts := map[outcome]int{}
	for _, r := range results {
		sent[r.id] = r
		counts[r.out]++
		switch r.out {
		case ok:
			okIDs = append(okIDs, r.id)
		case fail:
			t.Errorf("a valid message refused: %s: %s", r.id, r.detail)
		}
	}
	if len(okIDs) == 0 {
		t.Fatal("no request got a 2xx")
	}
	msgOf := make(map[string]string, len(sent))
	for id := range sent {
		msgOf[webhookID(id)] = id
	}
	var rows map[string]int
	var lostSQL, lostPartner []string
	deadline := time.Now().Add(settleDeadline)
	for {
		var err error
		rows, err = pgRows(schema)
		if err == nil {
			lostSQL, lostPartner = missing(okIDs, rows), missing(okIDs, deliveredIDs(rcv.Deliveries(), msgOf))
			if len(lostSQL) == 0 && len(lostPartner) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("lost: %d acknowledged ids not in the table (e.g. %v), %d never delivered (e.g. %v); %v",
				len(lostSQL), first(lostSQL, 5), len(lostPartner), first(lostPartner, 5), err)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, w := range ws {
		w.terminate()
	}
	rows, err := pgRows(schema)
	if err != nil {
		t.Fatal(err)
	}
	for id, n := range rows {
		if r, wasSent := sent[id]; !wasSent || r.out == fail {
			t.Errorf("a row for id %s that was never accepted", id)
		} else if n > 1 {
			t.Errorf("id %s written %d times", id, n)
		}
	}
	deliveries := rcv.Deliveries()
	type firstSeen struct {
		key string
		pos int
	}
	seen := map[string]firstSeen{} // message id → its key and first delivery
	dups := 0
	for i, d := range deliveries {
		id, known := msgOf[d.ID]
		if !known {
			t.Errorf("a delivery under webhook-id %s of no message sent", d.ID)
			continue
		}
		if _, again := seen[id]; again {
			dups++
			continue
		}
		var body struct {
			ID       string `json:"id"`
			Customer struct {
				ID string `json:"id"`
			} `json:"customer"`
		}
		if err := json.Unmarshal(d.Body, &body); err != nil || body.ID != id {
			t.Errorf("webhook-id %s carries message %q (%v)", d.ID, body.ID, err)
			continue
		}
		seen[id] = firstSeen{key: body.Customer.ID, pos: i}
	}
	// Per-key order: a message acknowledged before another of its key was sent reached the
	// partner first.
	byKey := map[string][]result{}
	for _, id := range okIDs {
		if f, ok := seen[id]; ok {
			byKey[f.key] = append(byKey[f.key], sent[id])
		}
	}
	outOfOrder := 0
	for key, rs := range byKey {
		for _, x := range rs {
			for _, y := range rs {
				if x.ex.end.Before(y.ex.start) && seen[x.id].pos > seen[y.id].pos {
					if outOfOrder++; outOfOrder <= 5 {
						t.Errorf("key %s: %s (acknowledged first) reached the partner after %s", key, x.id, y.id)
					}
				}
			}
		}
	}
	t.Logf("sent %d: ok %d, unknown %d, fail %d; rows %d; deliveries %d, %d of them the same webhook-id again; %d keys, %d out of order",
		len(results), counts[ok], counts[unknown], counts[fail], len(rows), len(deliveries), dups, len(byKey), outOfOrder)
}

// pgRows counts the table's rows per id of our client.
func pgRows(schema string) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pgtest.DSN())
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	rs, err := c.Query(ctx, fmt.Sprintf(`SELECT id FROM %s.orders WHERE client = $1`, schema), client)
	if err != nil {
		return nil, err
	}
	rows := map[string]int{}
	var id string
	_, err = pgx.ForEachRow(rs, []any{&id}, func() error {
		rows[id]++
		return nil
	})
	return rows, err
}
