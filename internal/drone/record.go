package drone

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Effect is one change the services applied: a create or its cancel (the compensation).
type Effect struct {
	Seq     uint64    `json:"seq"`     // order across all services
	Service string    `json:"service"` // package, transport, drone or delivery
	Op      string    `json:"op"`      // "create" or "cancel"
	ID      string    `json:"id"`
	Key     string    `json:"key,omitempty"` // the Idempotency-Key of the call that applied it
	At      time.Time `json:"at"`
}

// Snapshot is what the services have seen so far.
type Snapshot struct {
	Effects   []Effect          `json:"effects"`   // every applied effect, in Seq order
	Calls     map[string]int    `json:"calls"`     // calls per service, failures included
	Conflicts int               `json:"conflicts"` // 409s for a changed Idempotency-Key
	Refused   map[string]string `json:"refused"`   // id → the service that refused it for good
}

// Snapshot returns a copy of the recording. It does not stop the services: an effect applied
// while it runs may be missing.
func (s *Services) Snapshot() Snapshot {
	snap := Snapshot{
		Calls:     make(map[string]int, numServices),
		Conflicts: int(s.conflicts.Load()),
		Refused:   map[string]string{},
	}
	for i := range s.calls {
		snap.Calls[serviceNames[i]] = int(s.calls[i].Load())
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		snap.Effects = append(snap.Effects, sh.effects...)
		for id, req := range sh.requests {
			if req.refusedBy != "" {
				snap.Refused[id] = req.refusedBy
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(snap.Effects, func(a, b Effect) int { return cmp.Compare(a.Seq, b.Seq) })
	return snap
}

// Outcome is what became of one request, as Check judges it.
type Outcome int

// The outcomes. Broken is the zero value: nothing good is known.
const (
	Broken      Outcome = iota // anything else: an effect left applied, a cancel out of order, …
	Completed                  // all four effects applied once, none cancelled
	Compensated                // every effect applied was cancelled once, in reverse order
)

func (o Outcome) String() string {
	switch o {
	case Completed:
		return "completed"
	case Compensated:
		return "compensated"
	default:
		return "broken"
	}
}

// Check judges what happened to request id and says why. Completed: all four effect services
// created it once and none cancelled it. Compensated: some created it and each of those
// cancelled it exactly once, in reverse order of the creates — or a service refused it before
// any effect. Broken: anything else, such as an effect never cancelled, cancels in the wrong
// order, a create arriving after its cancel, or a request the services never refused nor saw.
// Each effect is applied at most once by construction (creates and cancels are idempotent), so
// Check looks at which effects exist and in what order.
func (s *Services) Check(id string) (Outcome, string) {
	sh := s.shard(id)
	sh.mu.Lock()
	var req request
	if p := sh.requests[id]; p != nil {
		req = *p
	}
	sh.mu.Unlock()
	return req.outcome()
}

// request is what the services know of one request id.
type request struct {
	refusedBy string          // the service that refused it for good, once it has
	ops       [numServices]op // by service; account's stays empty
}

// op is one service's state for one request.
type op struct {
	created, cancelled   uint64 // Seq of the effects; 0 until applied
	createKey, cancelKey string // first Idempotency-Key seen for each operation
	body                 []byte // the create's request body
	createAnswer         []byte // repeated to every retry of the create
	cancelAnswer         []byte // … and of the cancel
	lateCreate           bool   // a create arrived after the cancel
}

func (r *request) outcome() (Outcome, string) {
	var created []int // services that applied the create, in the order they did
	cancels := 0
	for svc := packages; svc < numServices; svc++ {
		o := &r.ops[svc]
		if o.lateCreate {
			return Broken, serviceNames[svc] + ": a create arrived after the cancel"
		}
		if o.created != 0 {
			created = append(created, svc)
		}
		if o.cancelled != 0 {
			cancels++
		}
	}
	slices.SortFunc(created, func(a, b int) int { return cmp.Compare(r.ops[a].created, r.ops[b].created) })
	switch {
	case len(created) == numServices-packages && cancels == 0:
		if r.refusedBy != "" {
			return Broken, "completed although " + r.refusedBy + " refused it"
		}
		return Completed, "all four effects applied once"
	case len(created) == 0 && r.refusedBy != "":
		return Compensated, "refused by " + r.refusedBy + " before any effect"
	case len(created) == 0:
		return Broken, "no effect applied and no refusal seen"
	}
	for i, svc := range created {
		if r.ops[svc].cancelled == 0 {
			return Broken, serviceNames[svc] + " was created but never cancelled"
		}
		// Reverse order: each cancel comes before the cancel of the effect created before it.
		if i > 0 && r.ops[svc].cancelled > r.ops[created[i-1]].cancelled {
			prev := serviceNames[created[i-1]]
			return Broken, fmt.Sprintf("%s was cancelled before %s, though created first", prev, serviceNames[svc])
		}
	}
	return Compensated, fmt.Sprintf("cancelled all %d effects in reverse order", len(created))
}
