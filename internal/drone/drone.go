// Package drone is the Drone Delivery reference application — five services: account, package,
// third-party transport, drone scheduler and delivery — as one in-process http.Handler that
// workflow (saga) tests, benchmarks and `weir demo-services` run against.
//
// It injects what a saga must survive, deterministically given a seed: latency, transient 503s
// (half of them after the effect was applied, so a caller that does not retry idempotently
// doubles it) and permanent refusals of chosen requests. It records every effect, so that a test
// can check the saga's promise for each request with Check: every effect exactly once, every
// compensation at most once and in reverse order of the effects.
//
// The API, all JSON:
//
//	GET    /accounts/{customer}[?request=ID]   200 {"customer":…,"status":"active"}; 403 when suspended
//	PUT    /packages/{id}     DELETE …          create (201, a repeat 200) and cancel (200; 404 if unknown)
//	PUT    /transports/{id}   DELETE …          the same
//	PUT    /drones/{id}       DELETE …          the same; the create answers a stable droneId
//	PUT    /deliveries/{id}   DELETE …          the same
//	GET    /_effects                            the Snapshot
//	GET    /healthz
//
// A create or cancel whose Idempotency-Key differs from the first one seen for the same service,
// id and operation answers 409: the caller changed keys between retries.
package drone

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config chooses the faults the services inject. The zero Config injects none.
type Config struct {
	// Latency of every call is uniform in [MinLatency, MaxLatency] (zero: none). A MaxLatency
	// below MinLatency means exactly MinLatency.
	MinLatency, MaxLatency time.Duration
	// Transient is the fraction of calls (creates and cancels, every service) answered 503 with
	// Retry-After: 0; half of those apply the effect first and then answer 503 (a lost response),
	// so a caller must retry idempotently.
	Transient float64
	// Permanent is the fraction of requests (ids) that one service refuses for good, chosen by a
	// hash of (Seed, id) so that every call for the id fails the same way; the hash also chooses
	// the refusing service among the five. Account refuses with 403, the others with 422; a
	// refusal applies no effect, and cancels never fail permanently. RefusedBy predicts it.
	Permanent float64
	// Seed makes the faults reproducible: the permanent refusals exactly, the random draws of
	// latency and transients as a sequence over the calls in the order they arrive.
	Seed uint64
	// Services overrides the latency and transient rate of the services it names ("account",
	// "package", "transport", "drone", "delivery"): an entry replaces them entirely.
	Services map[string]ServiceConfig
}

// ServiceConfig is one service's latency and transient rate, as in Config.
type ServiceConfig struct {
	MinLatency, MaxLatency time.Duration
	Transient              float64
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	check := func(at string, min, max time.Duration, transient float64) {
		if min < 0 || max < 0 {
			errs = append(errs, fmt.Errorf("%slatency: must not be negative", at))
		}
		if transient < 0 || transient > 1 {
			errs = append(errs, fmt.Errorf("%stransient: %v is not a fraction in [0, 1]", at, transient))
		}
	}
	check("", c.MinLatency, c.MaxLatency, c.Transient)
	if c.Permanent < 0 || c.Permanent > 1 {
		errs = append(errs, fmt.Errorf("permanent: %v is not a fraction in [0, 1]", c.Permanent))
	}
	for name, sc := range c.Services {
		if serviceIndex(name) < 0 {
			errs = append(errs, fmt.Errorf("services: unknown service %q (account, package, transport, drone, delivery)", name))
			continue
		}
		check("services."+name+".", sc.MinLatency, sc.MaxLatency, sc.Transient)
	}
	return errors.Join(errs...)
}

// The services, in the order of the reference workflow. Account has no effects.
const (
	account = iota
	packages
	transport
	drones
	delivery
	numServices
)

var (
	serviceNames = [numServices]string{"account", "package", "transport", "drone", "delivery"}
	collections  = [numServices]string{"accounts", "packages", "transports", "drones", "deliveries"}
)

func serviceIndex(name string) int {
	for i, n := range serviceNames {
		if n == name {
			return i
		}
	}
	return -1
}

// numShards spreads the per-request state so that concurrent calls for different ids seldom
// share a lock.
const numShards = 64

// MaxDroneLoad is the heaviest package a drone takes, in kg: the drone service refuses a
// heavier "weight" for good.
const MaxDroneLoad = 20

// maxBody bounds a create's request body.
const maxBody = 1 << 20

// Services is the five services' http.Handler. It is safe for concurrent use.
type Services struct {
	cfg    Config
	faults [numServices]faults
	mux    *http.ServeMux

	seq       atomic.Uint64 // Seq of the last effect
	draws     atomic.Uint64 // calls that drew faults so far; seeds each call's draws
	drones    atomic.Uint64 // drones scheduled so far; numbers droneIds
	conflicts atomic.Int64
	calls     [numServices]atomic.Int64

	shards [numShards]shard
}

// New returns the services injecting cfg's faults. It panics if cfg is invalid (see
// Validate): a Config is written by a test or checked by the command that builds it.
func New(cfg Config) *Services {
	if err := cfg.Validate(); err != nil {
		panic("drone: invalid Config: " + err.Error())
	}
	s := &Services{cfg: cfg, mux: http.NewServeMux()}
	for i := range s.faults {
		sc, ok := cfg.Services[serviceNames[i]]
		if !ok {
			sc = ServiceConfig{MinLatency: cfg.MinLatency, MaxLatency: cfg.MaxLatency, Transient: cfg.Transient}
		}
		s.faults[i] = newFaults(sc)
	}
	s.cfg.Services = nil // resolved into faults; the caller keeps its map
	for i := range s.shards {
		s.shards[i].requests = make(map[string]*request)
	}
	s.mux.HandleFunc("/accounts/{customer}", s.account)
	for svc := packages; svc < numServices; svc++ {
		s.mux.HandleFunc("/"+collections[svc]+"/{id}", func(w http.ResponseWriter, r *http.Request) {
			s.effect(w, r, svc)
		})
	}
	s.mux.HandleFunc("/_effects", s.effects)
	s.mux.HandleFunc("/healthz", s.health)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such path: "+r.URL.Path)
	})
	return s
}

// ServeHTTP serves the five services and the recording.
func (s *Services) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

func (s *Services) account(w http.ResponseWriter, r *http.Request) {
	s.calls[account].Add(1)
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	d := s.draw(account)
	sleep(d.latency)
	customer := r.PathValue("customer")
	// The workflow names the request so that a suspension can be chosen per request, as it
	// is for the other services, rather than per customer.
	id := r.URL.Query().Get("request")
	if id == "" {
		id = customer
	}
	if s.RefusedBy(id) == serviceNames[account] {
		s.refuse(id, account)
		writeError(w, http.StatusForbidden, "account suspended")
		return
	}
	if d.transient {
		unavailable(w, account)
		return
	}
	b, _ := json.Marshal(accountAnswer{Customer: customer, Status: "active"})
	writeJSON(w, http.StatusOK, b)
}

// effect serves a create (PUT) or a cancel (DELETE) of one of the four effect services.
func (s *Services) effect(w http.ResponseWriter, r *http.Request, svc int) {
	s.calls[svc].Add(1)
	create := r.Method == http.MethodPut
	if !create && r.Method != http.MethodDelete {
		methodNotAllowed(w, "PUT, DELETE")
		return
	}
	d := s.draw(svc)
	sleep(d.latency)
	id := r.PathValue("id")
	var body []byte
	if create {
		var err error
		if body, err = readJSON(w, r); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if s.RefusedBy(id) == serviceNames[svc] {
			s.refuse(id, svc)
			writeError(w, http.StatusUnprocessableEntity, serviceNames[svc]+" refuses request "+id)
			return
		}
		if svc == drones {
			// A refusal anyone can trigger on purpose, to watch a compensation.
			var load struct{ Weight float64 }
			if json.Unmarshal(body, &load) == nil && load.Weight > MaxDroneLoad {
				s.refuse(id, svc)
				writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("no drone can carry %g kg (at most %g)", load.Weight, float64(MaxDroneLoad)))
				return
			}
		}
	}
	status, answer := s.apply(svc, create, id, r.Header.Get("Idempotency-Key"), body, d)
	switch status {
	case http.StatusServiceUnavailable:
		unavailable(w, svc)
	case http.StatusOK, http.StatusCreated:
		writeJSON(w, status, answer)
	default:
		writeError(w, status, string(answer))
	}
}

// apply does what a create or cancel asks, under the id's shard lock so that concurrent
// retries apply an effect once. It answers a status and, for a 200 or 201, the body (the
// same for every repeat), else an error message.
func (s *Services) apply(svc int, create bool, id, key string, body []byte, d draw) (int, []byte) {
	sh := s.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	req := sh.requests[id]
	if !create && (req == nil || req.ops[svc].created == 0) {
		if d.transient {
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusNotFound, []byte(serviceNames[svc] + " " + id + " does not exist")
	}
	if req == nil {
		req = &request{}
		sh.requests[id] = req
	}
	o := &req.ops[svc]
	first := &o.createKey
	if !create {
		first = &o.cancelKey
	}
	if key != "" {
		if *first == "" {
			*first = key
		} else if *first != key {
			s.conflicts.Add(1)
			return http.StatusConflict, []byte("Idempotency-Key " + strconv.Quote(key) + " differs from " + strconv.Quote(*first) + " seen first for this " + serviceNames[svc])
		}
	}
	if create && o.cancelled != 0 {
		o.lateCreate = true
		return http.StatusConflict, []byte(serviceNames[svc] + " " + id + " was cancelled")
	}
	if d.transient && !d.lost {
		return http.StatusServiceUnavailable, nil
	}
	status := http.StatusOK
	var answer []byte
	if create {
		if o.created == 0 {
			o.created = sh.record(s.seq.Add(1), svc, "create", id, key)
			o.body = body
			a := effectAnswer{ID: id, Status: "created"}
			if svc == drones {
				a.DroneID = "drone-" + strconv.FormatUint(s.drones.Add(1), 10)
				a.Status = "scheduled"
			}
			o.createAnswer, _ = json.Marshal(a)
			status = http.StatusCreated
		}
		answer = o.createAnswer
	} else {
		if o.cancelled == 0 {
			o.cancelled = sh.record(s.seq.Add(1), svc, "cancel", id, key)
			o.cancelAnswer, _ = json.Marshal(effectAnswer{ID: id, Status: "cancelled"})
		}
		answer = o.cancelAnswer
	}
	if d.lost {
		return http.StatusServiceUnavailable, nil
	}
	return status, answer
}

// refuse remembers that svc refused id for good, for Snapshot and Check.
func (s *Services) refuse(id string, svc int) {
	sh := s.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	req := sh.requests[id]
	if req == nil {
		req = &request{}
		sh.requests[id] = req
	}
	req.refusedBy = serviceNames[svc]
}

func (s *Services) effects(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	w.Header()["Content-Type"] = jsonContentType
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(s.Snapshot())
}

func (s *Services) health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	writeJSON(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

type accountAnswer struct {
	Customer string `json:"customer"`
	Status   string `json:"status"`
}

type effectAnswer struct {
	ID      string `json:"id"`
	DroneID string `json:"droneId,omitempty"`
	Status  string `json:"status"`
}

// readJSON reads a create's body: any JSON, or nothing.
func readJSON(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	if len(body) > 0 && !json.Valid(body) {
		return nil, errors.New("the body is not JSON")
	}
	return body, nil
}

// jsonContentType is shared by every answer: setting the header map directly saves an
// allocation per call.
var jsonContentType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	w.Write(body)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	writeJSON(w, status, b)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method not allowed; use "+allow)
}

func unavailable(w http.ResponseWriter, svc int) {
	w.Header().Set("Retry-After", "0")
	writeError(w, http.StatusServiceUnavailable, serviceNames[svc]+" is temporarily unavailable")
}

// shard holds the state of the ids that hash to it, and the effects applied to them.
type shard struct {
	mu       sync.Mutex
	requests map[string]*request
	effects  []Effect // in Seq order
	_        [64]byte // keeps neighbouring shards' locks off one cache line
}

// record appends the effect numbered seq and returns seq. Its caller holds sh.mu, so the
// shard's effects stay in Seq order.
func (sh *shard) record(seq uint64, svc int, op, id, key string) uint64 {
	sh.effects = append(sh.effects, Effect{Seq: seq, Service: serviceNames[svc], Op: op, ID: id, Key: key, At: time.Now()})
	return seq
}

func (s *Services) shard(id string) *shard {
	return &s.shards[mix(hashString(id))%numShards]
}
