package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/cluster"
	"github.com/weirhq/weir/internal/pgpool/pgtest"
	"github.com/weirhq/weir/internal/state"
)

// mortal is an instance's view of the leases that it loses when it dies: from then on every
// call fails, as for a process that is gone (or cut off from the state store).
type mortal struct {
	state.Leases
	dead atomic.Bool
}

var errDead = errors.New("dead")

func (m *mortal) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (state.Lease, bool, error) {
	if m.dead.Load() {
		return state.Lease{}, false, errDead
	}
	return m.Leases.Acquire(ctx, name, holder, ttl)
}

func (m *mortal) Release(ctx context.Context, name, holder string) error {
	if m.dead.Load() {
		return errDead
	}
	return m.Leases.Release(ctx, name, holder)
}

func (m *mortal) Held(ctx context.Context, prefix string) ([]state.Lease, error) {
	if m.dead.Load() {
		return nil, errDead
	}
	return m.Leases.Held(ctx, prefix)
}

type instance struct {
	leases *mortal
	cancel context.CancelFunc
	done   chan error

	mu    sync.Mutex
	owned []int
}

func (i *instance) get() []int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.owned
}

func start(t *testing.T, leases state.Leases, id string, partitions int) *instance {
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{leases: &mortal{Leases: leases}, cancel: cancel, done: make(chan error, 1)}
	m := cluster.New(cluster.Config{Leases: in.leases, ID: id, Partitions: partitions, TTL: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	go func() {
		in.done <- m.Run(ctx, func(owned []int) error {
			in.mu.Lock()
			in.owned = owned
			in.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-in.done })
	return in
}

// settled waits until the live instances own every partition exactly once, each its fair share.
func settled(t *testing.T, partitions int, live ...*instance) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var all []int
		fair := true
		for _, in := range live {
			o := in.get()
			all = append(all, o...)
			if n := len(o); n < partitions/len(live) || n > partitions/len(live)+1 {
				fair = false
			}
		}
		slices.Sort(all)
		if fair && len(all) == partitions && len(slices.Compact(all)) == partitions {
			return
		}
		if time.Now().After(deadline) {
			var shares []string
			for _, in := range live {
				shares = append(shares, fmt.Sprint(in.get()))
			}
			t.Fatalf("partitions not shared out: %v", shares)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leases(t *testing.T) *state.Postgres {
	l, err := embedded.Open(embedded.Config{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p, err := state.OpenPostgres(t.Context(), pgtest.Schema(t), buffer.Buffer(l))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Instances joining share the partitions; one leaving hands its partitions over at once; one
// dying loses them to the others once its leases expire; a partition is never owned twice at
// any moment the test looks.
func TestShareJoinLeaveDie(t *testing.T) {
	const n = 8
	pg := leases(t)
	a := start(t, pg, "a", n)
	settled(t, n, a)
	b := start(t, pg, "b", n)
	c := start(t, pg, "c", n)
	settled(t, n, a, b, c)

	b.cancel() // a clean stop releases at once
	if err := <-b.done; err != nil {
		t.Fatal(err)
	}
	b.done <- nil // for the cleanup
	settled(t, n, a, c)

	c.leases.dead.Store(true) // c dies: it renews nothing any more
	settled(t, n, a)
	if got := c.get(); len(got) != 0 {
		// The dead instance itself must have stopped working on its partitions by its leases'
		// local expiry, before anyone else could take them.
		t.Fatalf("a dead instance still works on %v", got)
	}
	d := start(t, pg, "d", n)
	settled(t, n, a, d)
}
