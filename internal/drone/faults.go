package drone

import (
	"math/rand/v2"
	"time"
)

// faults is one service's latency and transient rate, resolved from the Config.
type faults struct {
	minLatency, spread time.Duration // latency is minLatency plus up to spread
	transient          float64
}

func newFaults(sc ServiceConfig) faults {
	return faults{
		minLatency: sc.MinLatency,
		spread:     max(sc.MaxLatency-sc.MinLatency, 0),
		transient:  sc.Transient,
	}
}

// draw is the random part of one call's fate.
type draw struct {
	latency   time.Duration
	transient bool // answer 503
	lost      bool // … after applying the effect
}

// draw decides one call of svc. Each call seeds its own generator from the Seed and a call
// counter: no lock is shared between calls, nothing is allocated, and a run with the same seed
// and the same order of calls draws the same.
func (s *Services) draw(svc int) draw {
	f := &s.faults[svc]
	var src rand.PCG
	src.Seed(s.cfg.Seed, mix(s.draws.Add(1)))
	d := draw{latency: f.minLatency}
	if f.spread > 0 {
		d.latency += time.Duration(src.Uint64() % uint64(f.spread+1))
	}
	if f.transient > 0 && unit(src.Uint64()) < f.transient {
		d.transient = true
		d.lost = src.Uint64()&1 == 1
	}
	return d
}

// RefusedBy reports the service ("account", "package", "transport", "drone" or "delivery")
// that refuses request id for good, or "" when none does. It depends only on the Config's
// Permanent and Seed, so a test can predict each request's outcome.
func (s *Services) RefusedBy(id string) string {
	if s.cfg.Permanent <= 0 {
		return ""
	}
	h := mix(hashString(id) ^ mix(s.cfg.Seed))
	if unit(h) >= s.cfg.Permanent {
		return ""
	}
	return serviceNames[mix(h)%numServices]
}

// sleep waits out a call's latency. The latency is short (milliseconds), so waiting for it
// even after the caller has gone costs less than watching the request's context.
func sleep(d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}

// hashString is FNV-1a: stable across runs and processes, unlike maphash, so that refusals
// can be predicted from the seed alone.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is splitmix64's finalizer: it spreads every input bit over the output.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// unit maps x to a fraction in [0, 1).
func unit(x uint64) float64 {
	return float64(x>>11) / (1 << 53)
}
