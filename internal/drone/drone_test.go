package drone

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// server starts the services with cfg behind a real HTTP server.
func server(t testing.TB, cfg Config) (*Services, *client) {
	t.Helper()
	s := New(cfg)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return s, &client{t: t, base: srv.URL, http: &http.Client{Transport: tr}}
}

type client struct {
	t    testing.TB
	base string
	http *http.Client
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

// call makes one call; key "" sends no Idempotency-Key. It is safe for concurrent use.
func (c *client) call(method, path, key, body string) (answer, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(b, &a.body); err != nil {
			return a, fmt.Errorf("%s %s: answer %q is not JSON: %w", method, path, b, err)
		}
	}
	return a, nil
}

// do is call from the test's goroutine, failing the test on an error.
func (c *client) do(method, path, key, body string) answer {
	c.t.Helper()
	a, err := c.call(method, path, key, body)
	if err != nil {
		c.t.Fatal(err)
	}
	return a
}

func (c *client) want(method, path, key, body string, status int) answer {
	c.t.Helper()
	a := c.do(method, path, key, body)
	if a.status != status {
		c.t.Fatalf("%s %s: status %d %v, want %d", method, path, a.status, a.body, status)
	}
	return a
}

func TestCreateIsIdempotent(t *testing.T) {
	s, c := server(t, Config{})
	for _, coll := range []string{"packages", "transports", "deliveries"} {
		first := c.want("PUT", "/"+coll+"/r1", "k1", `{"size":"small"}`, http.StatusCreated)
		if first.body["id"] != "r1" || first.body["status"] != "created" {
			t.Errorf("PUT /%s/r1 answered %v", coll, first.body)
		}
		again := c.want("PUT", "/"+coll+"/r1", "k1", `{"size":"small"}`, http.StatusOK)
		if fmt.Sprint(again.body) != fmt.Sprint(first.body) {
			t.Errorf("repeated PUT /%s/r1 answered %v, first %v", coll, again.body, first.body)
		}
		c.want("PUT", "/"+coll+"/r1", "", "", http.StatusOK) // no key is allowed
	}
	d1 := c.want("PUT", "/drones/r1", "k1", "", http.StatusCreated)
	d2 := c.want("PUT", "/drones/r1", "k1", "", http.StatusOK)
	other := c.want("PUT", "/drones/r2", "k2", "", http.StatusCreated)
	if d1.body["status"] != "scheduled" || !strings.HasPrefix(fmt.Sprint(d1.body["droneId"]), "drone-") {
		t.Errorf("PUT /drones/r1 answered %v", d1.body)
	}
	if d2.body["droneId"] != d1.body["droneId"] || other.body["droneId"] == d1.body["droneId"] {
		t.Errorf("droneIds: r1 %v then %v, r2 %v", d1.body["droneId"], d2.body["droneId"], other.body["droneId"])
	}

	snap := s.Snapshot()
	if len(snap.Effects) != 5 {
		t.Fatalf("effects %+v, want one create per service and id", snap.Effects)
	}
	for i, e := range snap.Effects {
		if e.Op != "create" || e.Seq != uint64(i+1) {
			t.Errorf("effect %d: %+v", i, e)
		}
	}
	if snap.Calls["package"] != 3 || snap.Calls["drone"] != 3 || snap.Calls["account"] != 0 {
		t.Errorf("calls %v", snap.Calls)
	}
}

func TestCancel(t *testing.T) {
	s, c := server(t, Config{})
	c.want("DELETE", "/packages/nope", "c1", "", http.StatusNotFound)
	c.want("PUT", "/packages/r1", "k1", "{}", http.StatusCreated)
	a := c.want("DELETE", "/packages/r1", "c1", "", http.StatusOK)
	if a.body["id"] != "r1" || a.body["status"] != "cancelled" {
		t.Errorf("DELETE answered %v", a.body)
	}
	c.want("DELETE", "/packages/r1", "c1", "", http.StatusOK)
	c.want("DELETE", "/packages/r1", "", "", http.StatusOK)
	// A create after the cancel is refused, and marks the request broken.
	c.want("PUT", "/packages/r1", "k1", "{}", http.StatusConflict)

	snap := s.Snapshot()
	if len(snap.Effects) != 2 || snap.Effects[1].Op != "cancel" || snap.Effects[1].Key != "c1" {
		t.Errorf("effects %+v, want a create and one cancel", snap.Effects)
	}
	if o, why := s.Check("r1"); o != Broken || !strings.Contains(why, "after the cancel") {
		t.Errorf("Check = %v (%s), want broken by the late create", o, why)
	}
}

func TestChangedKeyConflicts(t *testing.T) {
	s, c := server(t, Config{})
	c.want("PUT", "/transports/r1", "", "", http.StatusCreated) // no key yet: the next one is the first seen
	c.want("PUT", "/transports/r1", "k1", "", http.StatusOK)
	a := c.want("PUT", "/transports/r1", "k2", "", http.StatusConflict)
	if a.body["error"] == nil {
		t.Errorf("409 without an error: %v", a.body)
	}
	// The cancel has its own key.
	c.want("DELETE", "/transports/r1", "c1", "", http.StatusOK)
	c.want("DELETE", "/transports/r1", "c2", "", http.StatusConflict)
	if snap := s.Snapshot(); snap.Conflicts != 2 || len(snap.Effects) != 2 {
		t.Errorf("conflicts %d, effects %+v", snap.Conflicts, snap.Effects)
	}
}

func TestRouting(t *testing.T) {
	s, c := server(t, Config{})
	c.want("GET", "/healthz", "", "", http.StatusOK)
	a := c.want("GET", "/accounts/ann", "", "", http.StatusOK)
	if a.body["customer"] != "ann" || a.body["status"] != "active" {
		t.Errorf("account answered %v", a.body)
	}
	c.want("GET", "/nowhere", "", "", http.StatusNotFound)
	c.want("PUT", "/packages/", "", "", http.StatusNotFound)
	c.want("PUT", "/packages/a/b", "", "", http.StatusNotFound)
	if a := c.want("GET", "/packages/r1", "", "", http.StatusMethodNotAllowed); a.header.Get("Allow") != "PUT, DELETE" {
		t.Errorf("Allow: %q", a.header.Get("Allow"))
	}
	c.want("PUT", "/accounts/ann", "", "", http.StatusMethodNotAllowed)
	c.want("POST", "/_effects", "", "", http.StatusMethodNotAllowed)
	c.want("PUT", "/packages/r1", "", "{not json", http.StatusBadRequest)
	c.want("PUT", "/packages/r1", "k", `{"a":1}`, http.StatusCreated)

	resp, err := c.http.Get(c.base + "/_effects")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var snap Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Effects) != 1 || snap.Effects[0].ID != "r1" || snap.Calls["package"] != s.Snapshot().Calls["package"] {
		t.Errorf("GET /_effects: %+v", snap)
	}
}

func TestPermanentRefusals(t *testing.T) {
	const n, rate = 10000, 0.1
	s, c := server(t, Config{Permanent: rate, Seed: 7})
	perService := map[string]int{}
	for i := range n {
		if by := s.RefusedBy(fmt.Sprint("req-", i)); by != "" {
			perService[by]++
		}
	}
	total := 0
	for _, name := range serviceNames {
		total += perService[name]
		if perService[name] < n*rate/5/2 {
			t.Errorf("%s refuses %d of %d requests, want about %d", name, perService[name], n, int(n*rate/5))
		}
	}
	if total < n*rate*0.8 || total > n*rate*1.2 {
		t.Errorf("%d of %d requests refused, want about %d", total, n, int(n*rate))
	}
	if other := New(Config{Permanent: rate, Seed: 8}); sameRefusals(s, other, n) {
		t.Error("another seed refuses the same requests")
	}

	// Every call for a refused request fails the same way and applies nothing.
	refusedAt := map[string]string{}
	for i := 0; len(refusedAt) < numServices; i++ {
		id := fmt.Sprint("req-", i)
		if by := s.RefusedBy(id); by != "" && refusedAt[by] == "" {
			refusedAt[by] = id
		}
	}
	for by, id := range refusedAt {
		for range 2 {
			if by == "account" {
				a := c.want("GET", "/accounts/ann?request="+id, "", "", http.StatusForbidden)
				if a.body["error"] != "account suspended" {
					t.Errorf("account refusal: %v", a.body)
				}
				c.want("GET", "/accounts/"+id, "", "", http.StatusForbidden)
				continue
			}
			c.want("PUT", "/"+collections[serviceIndex(by)]+"/"+id, "k", "{}", http.StatusUnprocessableEntity)
			c.want("DELETE", "/"+collections[serviceIndex(by)]+"/"+id, "c", "", http.StatusNotFound)
		}
		if o, why := s.Check(id); o != Compensated {
			t.Errorf("Check(%s) refused by %s = %v (%s)", id, by, o, why)
		}
	}
	snap := s.Snapshot()
	if len(snap.Effects) != 0 || len(snap.Refused) != numServices {
		t.Errorf("effects %+v, refused %v", snap.Effects, snap.Refused)
	}
	for by, id := range refusedAt {
		if snap.Refused[id] != by {
			t.Errorf("Refused[%s] = %q, want %q", id, snap.Refused[id], by)
		}
	}
}

func sameRefusals(a, b *Services, n int) bool {
	for i := range n {
		id := fmt.Sprint("req-", i)
		if a.RefusedBy(id) != b.RefusedBy(id) {
			return false
		}
	}
	return true
}

func TestTransients(t *testing.T) {
	const n, rate = 4000, 0.2
	s, c := server(t, Config{Transient: rate, Seed: 3})
	var unavailable, lost int
	for i := range n {
		id := fmt.Sprint("req-", i)
		key := "k-" + id
		a := c.do("PUT", "/packages/"+id, key, "{}")
		if a.status == http.StatusCreated {
			continue
		}
		if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "0" {
			t.Fatalf("PUT %s: %d %v, want 201 or 503 with Retry-After: 0", id, a.status, a.body)
		}
		unavailable++
		// Retry with the same key until it answers: a lost response shows as a 200, the
		// effect having been applied by the call that answered 503.
		for a.status == http.StatusServiceUnavailable {
			a = c.do("PUT", "/packages/"+id, key, "{}")
		}
		switch a.status {
		case http.StatusOK:
			lost++
		case http.StatusCreated:
		default:
			t.Fatalf("retry of PUT %s: %d %v", id, a.status, a.body)
		}
	}
	if unavailable < n*rate*0.75 || unavailable > n*rate*1.25 {
		t.Errorf("%d of %d first calls answered 503, want about %d", unavailable, n, int(n*rate))
	}
	if lost < unavailable/4 || lost > unavailable*3/4 {
		t.Errorf("%d of %d 503s lost the response of an applied effect, want about half", lost, unavailable)
	}
	snap := s.Snapshot()
	if len(snap.Effects) != n {
		t.Errorf("%d effects for %d requests retried until they answered", len(snap.Effects), n)
	}
	if snap.Calls["package"] <= n {
		t.Errorf("calls %v: the retries are missing", snap.Calls)
	}
}

func TestServiceOverrides(t *testing.T) {
	_, c := server(t, Config{Transient: 1, Services: map[string]ServiceConfig{"account": {}}})
	c.want("GET", "/accounts/ann", "", "", http.StatusOK)
	c.want("PUT", "/packages/r1", "", "", http.StatusServiceUnavailable)
}

func TestValidate(t *testing.T) {
	bad := Config{Transient: 2, Permanent: -1, MinLatency: -1, Services: map[string]ServiceConfig{"pizza": {}, "drone": {Transient: -0.5}}}
	err := bad.Validate()
	for _, want := range []string{"transient: 2", "permanent: -1", "latency", `"pizza"`, "services.drone.transient"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
	if err := (Config{Transient: 0.1, Permanent: 1, Services: map[string]ServiceConfig{"delivery": {Transient: 1}}}).Validate(); err != nil {
		t.Errorf("Validate() = %v for a valid config", err)
	}
}

// saga runs the reference workflow's calls for id the way a correct caller would, creating
// up to n effects and then cancelling them in the given order.
func saga(c *client, id string, creates []string, cancels []string) {
	c.want("GET", "/accounts/cust?request="+id, "", "", http.StatusOK)
	for _, coll := range creates {
		c.want("PUT", "/"+coll+"/"+id, id+"-"+coll, "{}", http.StatusCreated)
	}
	for _, coll := range cancels {
		c.want("DELETE", "/"+coll+"/"+id, id+"-undo-"+coll, "", http.StatusOK)
	}
}

func TestCheck(t *testing.T) {
	s, c := server(t, Config{Permanent: 0.3, Seed: 11})
	var ok []string // requests no service refuses
	refusedByAccount := ""
	for i := 0; len(ok) < 6 || refusedByAccount == ""; i++ {
		id := fmt.Sprint("req-", i)
		switch s.RefusedBy(id) {
		case "":
			ok = append(ok, id)
		case "account":
			refusedByAccount = id
		}
	}
	all := []string{"transports", "packages", "drones", "deliveries"}
	saga(c, ok[0], all, nil)
	saga(c, ok[1], all[:3], []string{"drones", "packages", "transports"})
	saga(c, ok[2], all[:3], []string{"drones", "transports", "packages"}) // out of order
	saga(c, ok[3], all[:2], []string{"packages"})                         // transport never cancelled
	saga(c, ok[4], all[:1], []string{"transports"})
	c.want("PUT", "/transports/"+ok[4], ok[4]+"-late", "{}", http.StatusConflict) // changed key: no effect
	c.want("GET", "/accounts/cust?request="+refusedByAccount, "", "", http.StatusForbidden)

	for _, tc := range []struct {
		id   string
		want Outcome
		why  string
	}{
		{ok[0], Completed, "all four"},
		{ok[1], Compensated, "all 3 effects"},
		{ok[2], Broken, "transport was cancelled before package"},
		{ok[3], Broken, "transport was created but never cancelled"},
		{ok[4], Compensated, "all 1 effects"},
		{ok[5], Broken, "no effect"},
		{refusedByAccount, Compensated, "refused by account"},
	} {
		if o, why := s.Check(tc.id); o != tc.want || !strings.Contains(why, tc.why) {
			t.Errorf("Check(%s) = %v (%s), want %v (%s)", tc.id, o, why, tc.want, tc.why)
		}
	}
}

// TestConcurrentRetries sends the same create from many goroutines at once, as an eager
// caller's overlapping retries would: one effect, one 201.
func TestConcurrentRetries(t *testing.T) {
	s, c := server(t, Config{})
	var created atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			a, err := c.call("PUT", "/deliveries/r1", "k1", "{}")
			if err != nil {
				t.Error(err)
			}
			if a.status == http.StatusCreated {
				created.Add(1)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 || len(s.Snapshot().Effects) != 1 {
		t.Errorf("%d answers 201, effects %+v", created.Load(), s.Snapshot().Effects)
	}
}

// BenchmarkServices measures parallel creates of distinct requests through a real HTTP
// server, with no latency or failures injected.
func BenchmarkServices(b *testing.B) {
	_, c := server(b, Config{})
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		body := strings.NewReader(`{"size":"small"}`)
		for pb.Next() {
			id := fmt.Sprint("req-", next.Add(1))
			body.Reset(`{"size":"small"}`)
			req, err := http.NewRequest("PUT", c.base+"/packages/"+id, body)
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Idempotency-Key", id)
			resp, err := c.http.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// A package heavier than a drone can carry is refused for good, whatever the seed.
func TestDroneRefusesHeavyPackages(t *testing.T) {
	svc := New(Config{})
	srv := httptest.NewServer(svc)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/drones/h-1", strings.NewReader(`{"weight":21.5}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || svc.Snapshot().Refused["h-1"] != "drone" || len(svc.Snapshot().Effects) != 0 {
		t.Fatalf("status %d, snapshot %+v", resp.StatusCode, svc.Snapshot())
	}
}
