package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
)

// Space is the ordered key space the store keeps its records in. Every record of the store is a
// key under one of its prefixes, and every query is a point read or a range scan, so one
// implementation of the store's rules runs on any ordered key-value space: the embedded Pebble
// database (shared with the embedded log, or beside an external buffer) and a PostgreSQL table
// shared by several instances (Postgres). Both pass the same tests.
type Space interface {
	// Get returns the value of key (a copy), or ok false.
	Get(key []byte) (value []byte, ok bool, err error)
	// Scan calls fn for the keys in [lower, upper) in order; key and value are valid during the
	// call only. fn returning errStop ends the scan without error.
	Scan(lower, upper []byte, fn func(key, value []byte) error) error
	// Write applies w atomically.
	Write(ctx context.Context, w Batch) error
	// AppendWith appends msgs to topic in the buffer and applies w, synced: atomically with the
	// embedded log, else after the buffer acknowledged the append (see External).
	AppendWith(ctx context.Context, topic string, msgs []buffer.Message, w Batch) error
	// Shared reports whether other processes write to the space too: the store then keeps no
	// in-memory copy of anything (no dedup filter).
	Shared() bool
}

// Batch is an atomic set of changes.
type Batch struct {
	Ops []Op
	// Sync: durable when Write returns. Without it the next synced write carries it (see
	// Store.Failures for why that is enough where it is used).
	Sync bool
	// Fence, when set, makes the write fail with ErrFenced unless its holder still holds the
	// lease with that token: work begun under a lease cannot land after another instance took
	// the lease over.
	Fence *Lease
}

// Op is one change: a set, a delete of Key, or with End a delete of every key in [Key, End).
type Op struct {
	Key, Value, End []byte
	Delete          bool
}

func set(k, v []byte) Op        { return Op{Key: k, Value: v} }
func del(k []byte) Op           { return Op{Key: k, Delete: true} }
func delRange(lo, hi []byte) Op { return Op{Key: lo, End: hi, Delete: true} }

// errStop ends a Scan early.
var errStop = errors.New("state: stop scan")

// ErrFenced is returned by a fenced write whose lease was taken over.
var ErrFenced = errors.New("state: lease lost (fenced)")

// Lease is a named, expiring claim held by one instance: the retry scheduler's, a partition's.
// Token grows each time the lease changes hands; fenced writes check it.
type Lease struct {
	Name, Holder string
	Token        int64
	Expires      time.Time
}

// Leases grants leases. Acquire takes a free or expired lease, or renews one its holder holds;
// ok is false while another holder's lease runs.
type Leases interface {
	Acquire(ctx context.Context, name, holder string, ttl time.Duration) (l Lease, ok bool, err error)
	Release(ctx context.Context, name, holder string) error
	// Held lists the unexpired leases whose names start with prefix.
	Held(ctx context.Context, prefix string) ([]Lease, error)
}

// pebbleSpace is the Space of a Pebble database owned by the embedded log (or External).
type pebbleSpace struct {
	owner DB
	db    *pebble.DB
}

// PebbleSpace returns the space of owner's database.
func PebbleSpace(owner DB) Space { return pebbleSpace{owner: owner, db: owner.DB()} }

func (p pebbleSpace) Shared() bool { return false }

func (p pebbleSpace) Get(key []byte) ([]byte, bool, error) {
	v, closer, err := p.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: %w", err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

func (p pebbleSpace) Scan(lower, upper []byte, fn func(key, value []byte) error) error {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); errors.Is(err, errStop) {
			return nil
		} else if err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// Write ignores the fence: the embedded space has one process, which holds every lease.
func (p pebbleSpace) Write(_ context.Context, w Batch) error {
	if len(w.Ops) == 0 {
		return nil
	}
	b := p.db.NewBatch()
	defer b.Close()
	for _, op := range w.Ops {
		var err error
		switch {
		case op.Delete && op.End != nil:
			err = b.DeleteRange(op.Key, op.End, nil)
		case op.Delete:
			err = b.Delete(op.Key, nil)
		default:
			err = b.Set(op.Key, op.Value, nil)
		}
		if err != nil {
			return fmt.Errorf("state: %w", err)
		}
	}
	if err := p.owner.Apply(b, w.Sync); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

func (p pebbleSpace) AppendWith(ctx context.Context, topic string, msgs []buffer.Message, w Batch) error {
	side := make([]embedded.KV, len(w.Ops))
	for i, op := range w.Ops {
		if op.End != nil {
			return fmt.Errorf("state: a range delete cannot ride on an append")
		}
		side[i] = embedded.KV{Key: op.Key, Value: op.Value, Delete: op.Delete}
	}
	return p.owner.AppendWith(ctx, topic, msgs, side)
}

// localLeases grants leases within one process: the embedded state has no other instance to
// share work with, so every lease is granted to whoever asks (there is one asker per name).
type localLeases struct{}

// LocalLeases returns the leases of a single-instance deployment.
func LocalLeases() Leases { return localLeases{} }

func (localLeases) Acquire(_ context.Context, name, holder string, ttl time.Duration) (Lease, bool, error) {
	return Lease{Name: name, Holder: holder, Token: 1, Expires: time.Now().Add(ttl)}, true, nil
}
func (localLeases) Release(context.Context, string, string) error { return nil }
func (localLeases) Held(context.Context, string) ([]Lease, error) { return nil, nil }
