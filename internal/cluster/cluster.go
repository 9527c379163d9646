// Package cluster shares the topics' partitions between the weir instances that use one state
// store. Each instance holds a membership lease, renewed every second or so; from the live
// members it works out its fair share of the partitions and holds a lease on each partition it
// works on. A partition changes hands only through its lease: the holder stops its work on it
// (the stages drain and commit) before releasing it, and an instance that died stops renewing,
// so its partitions are free once their leases expire and the others take them over.
//
// Assignment is sticky: an instance keeps what it holds up to its share, takes free partitions
// while below it, and gives up the surplus when instances join, so a join or a death moves only
// the partitions it has to.
package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weirhq/weir/internal/state"
)

// Config configures a Member.
type Config struct {
	Leases     state.Leases
	ID         string // this instance, unique among those sharing the leases
	Partitions int
	// TTL is how long a lease runs without renewal: the longest a dead instance's partitions
	// wait (default 5s). Leases are renewed every TTL/5.
	TTL    time.Duration
	Logger *slog.Logger
}

// Apply makes the instance work on exactly owned (sorted), and returns once work on every
// partition not in it has stopped and its progress is committed.
type Apply func(owned []int) error

// Member is one instance's part in the sharing.
type Member struct {
	cfg Config

	mu   sync.Mutex
	held map[int]state.Lease // the partition leases this instance holds
}

// New returns a member; Run makes it take part.
func New(cfg Config) *Member {
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Second
	}
	return &Member{cfg: cfg, held: map[int]state.Lease{}}
}

const (
	memberPrefix    = "member/"
	partitionPrefix = "partition/"
)

func partitionLease(p int) string { return partitionPrefix + strconv.Itoa(p) }

// Run takes part until ctx ends, calling apply whenever the partitions this instance owns
// change; at the end it applies the empty set and releases its leases, so that the others take
// its partitions over at once. It returns apply's error, if any.
func (m *Member) Run(ctx context.Context, apply Apply) error {
	renew := time.NewTicker(m.cfg.TTL / 5)
	defer renew.Stop()
	var owned []int
	defer func() {
		stop := context.WithoutCancel(ctx)
		if len(owned) > 0 {
			if err := apply(nil); err != nil {
				m.cfg.Logger.Error("cluster: stopping partitions", "err", err)
			}
		}
		m.mu.Lock()
		held := m.held
		m.held = map[int]state.Lease{}
		m.mu.Unlock()
		for p := range held {
			m.cfg.Leases.Release(stop, partitionLease(p), m.cfg.ID)
		}
		m.cfg.Leases.Release(stop, memberPrefix+m.cfg.ID, m.cfg.ID)
	}()
	if _, _, err := m.cfg.Leases.Acquire(ctx, memberPrefix+m.cfg.ID, m.cfg.ID, m.cfg.TTL); err != nil {
		m.cfg.Logger.Warn("cluster: joining", "err", err) // renew tries again
	}
	// Renewals (the membership's too) run on their own while apply waits for stages to drain: a
	// slow drain must not let the partitions this instance keeps expire.
	renewed := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-renew.C:
			}
			m.renew(ctx)
			select {
			case renewed <- struct{}{}:
			default:
			}
		}
	}()
	for {
		next, err := m.balance(ctx)
		if err != nil {
			m.cfg.Logger.Warn("cluster: balancing partitions", "err", err)
		}
		if !slices.Equal(next, owned) {
			m.cfg.Logger.Info("cluster: partitions", "instance", m.cfg.ID, "owned", fmt.Sprint(next))
			if err := apply(next); err != nil {
				return err
			}
			owned = next
			m.releaseExcept(ctx, owned)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-renewed:
		}
	}
}

// renew extends the membership and every held partition lease. A lease another instance took
// meanwhile (this one was paused past its TTL), or one not renewed by its local expiry (the
// state store unreachable), is dropped: the next balance stops work on it.
func (m *Member) renew(ctx context.Context) {
	if _, _, err := m.cfg.Leases.Acquire(ctx, memberPrefix+m.cfg.ID, m.cfg.ID, m.cfg.TTL); err != nil {
		m.cfg.Logger.Warn("cluster: renewing membership", "err", err)
	}
	m.mu.Lock()
	held := make(map[int]state.Lease, len(m.held))
	for p, l := range m.held {
		held[p] = l
	}
	m.mu.Unlock()
	for p, old := range held {
		l, ok, err := m.cfg.Leases.Acquire(ctx, partitionLease(p), m.cfg.ID, m.cfg.TTL)
		m.mu.Lock()
		if _, still := m.held[p]; !still { // released meanwhile
			m.mu.Unlock()
			continue
		}
		switch {
		case err == nil && ok && l.Token == old.Token:
			m.held[p] = l
		case err != nil && time.Now().Before(old.Expires.Add(-2*m.cfg.TTL/5)):
			// Unsure (the state store did not answer): keep working, but stop well before the
			// lease can run out, so that this instance is done before another may start.
		default:
			m.cfg.Logger.Warn("cluster: lost a partition lease", "partition", p, "err", err)
			delete(m.held, p)
		}
		m.mu.Unlock()
	}
}

// balance works out this instance's share and takes free partitions up to it. It returns the
// partitions to work on: those held, minus the surplus over the share.
func (m *Member) balance(ctx context.Context) ([]int, error) {
	members, err := m.cfg.Leases.Held(ctx, memberPrefix)
	if err != nil {
		return m.owned(m.cfg.Partitions), err
	}
	ids := make([]string, 0, len(members))
	for _, l := range members {
		ids = append(ids, strings.TrimPrefix(l.Name, memberPrefix))
	}
	slices.Sort(ids)
	me := slices.Index(ids, m.cfg.ID)
	if me < 0 { // not listed yet (a read racing the first heartbeat)
		ids, me = append(ids, m.cfg.ID), len(ids)
	}
	share := m.cfg.Partitions / len(ids)
	if me < m.cfg.Partitions%len(ids) {
		share++
	}
	taken, err := m.cfg.Leases.Held(ctx, partitionPrefix)
	if err != nil {
		return m.owned(share), err
	}
	busy := map[int]bool{}
	for _, l := range taken {
		if p, err := strconv.Atoi(strings.TrimPrefix(l.Name, partitionPrefix)); err == nil {
			busy[p] = true
		}
	}
	for p := 0; p < m.cfg.Partitions && m.count() < share; p++ {
		if busy[p] || m.holds(p) {
			continue
		}
		l, ok, err := m.cfg.Leases.Acquire(ctx, partitionLease(p), m.cfg.ID, m.cfg.TTL)
		if err != nil {
			return m.owned(share), err
		}
		if ok {
			m.mu.Lock()
			m.held[p] = l
			m.mu.Unlock()
		}
	}
	return m.owned(share), nil
}

// Fence returns the lease that work on partition p is fenced by: the one this instance holds,
// or one that fails every fenced write when it holds none.
func (m *Member) Fence(p int) *state.Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.held[p]; ok {
		return &l
	}
	return &state.Lease{Name: partitionLease(p), Holder: m.cfg.ID, Token: -1}
}

func (m *Member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.held)
}

func (m *Member) holds(p int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.held[p]
	return ok
}

// owned returns up to share held partitions, the lowest first (the surplus goes).
func (m *Member) owned(share int) []int {
	m.mu.Lock()
	out := make([]int, 0, len(m.held))
	for p := range m.held {
		out = append(out, p)
	}
	m.mu.Unlock()
	slices.Sort(out)
	if len(out) > share {
		out = out[:share]
	}
	return out
}

// releaseExcept gives up the held partitions not in owned: their work has stopped.
func (m *Member) releaseExcept(ctx context.Context, owned []int) {
	m.mu.Lock()
	var drop []int
	for p := range m.held {
		if !slices.Contains(owned, p) {
			drop = append(drop, p)
			delete(m.held, p)
		}
	}
	m.mu.Unlock()
	for _, p := range drop {
		if err := m.cfg.Leases.Release(ctx, partitionLease(p), m.cfg.ID); err != nil {
			m.cfg.Logger.Warn("cluster: releasing a partition", "partition", p, "err", err)
		}
	}
}
