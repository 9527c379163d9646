// Package state keeps what Weir remembers about messages besides the log itself: the dedup
// receipts of accepted message ids and each message's status trail. The embedded store lives in
// the same Pebble database as the embedded log (under its own key prefixes), so it adds no
// process, no file and no fsync of its own: its writes ride on the log's group commits.
package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
)

// Key prefixes owned by this package (the embedded log owns others; see internal/buffer/embedded).
const (
	prefixDedup  = "d/"
	prefixStatus = "s/"
	prefixExpiry = "x/" // x/<accepted-at unix ns, BE u64><dedup key>: receipts in age order
)

// DB is the shared Pebble database: the embedded log (*embedded.Log) provides it, commits
// through Apply so that a failed write stops the log instead of the process, and appends
// records together with the state that describes them (AppendWith).
type DB interface {
	DB() *pebble.DB
	Apply(b *pebble.Batch, sync bool) error
	AppendWith(ctx context.Context, topic string, msgs []buffer.Message, side []embedded.KV) error
}

// Store is the embedded state store. It is safe for concurrent use.
type Store struct {
	owner DB
	db    *pebble.DB
	seen  *filter // every dedup key in the store is in it

	replayMu sync.Mutex // serializes Replay and Discard
}

// New returns a store on the log's database, which the caller keeps open for the store's
// lifetime. It reads every remembered dedup key once, to fill the in-memory filter.
func New(owner DB) (*Store, error) {
	s := &Store{owner: owner, db: owner.DB(), seen: newFilter()}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixDedup), UpperBound: []byte("d0")})
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		s.seen.add(it.Key())
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("state: loading dedup keys: %w", err)
	}
	return s, nil
}

// Receipt is what dedup remembers about an accepted message id.
type Receipt struct {
	BodyHash   [sha256.Size]byte
	AcceptedAt time.Time
}

func dedupKey(client, typ, id string) []byte {
	k := make([]byte, 0, len(prefixDedup)+len(client)+len(typ)+len(id)+2)
	k = append(k, prefixDedup...)
	k = append(k, client...)
	k = append(k, 0)
	k = append(k, typ...)
	k = append(k, 0)
	return append(k, id...)
}

// Receipt returns the receipt of (client, type, id), if that id was accepted before.
func (s *Store) Receipt(client, typ, id string) (Receipt, bool, error) {
	dk := dedupKey(client, typ, id)
	if !s.seen.mayContain(dk) {
		return Receipt{}, false, nil
	}
	v, closer, err := s.db.Get(dk)
	if errors.Is(err, pebble.ErrNotFound) {
		return Receipt{}, false, nil
	}
	if err != nil {
		return Receipt{}, false, fmt.Errorf("state: dedup lookup: %w", err)
	}
	defer closer.Close()
	if len(v) != sha256.Size+8 {
		return Receipt{}, false, fmt.Errorf("state: dedup receipt of %d bytes is corrupt", len(v))
	}
	var r Receipt
	copy(r.BodyHash[:], v)
	r.AcceptedAt = time.Unix(0, int64(binary.BigEndian.Uint64(v[sha256.Size:]))).UTC()
	return r, true, nil
}

// Append appends msgs to topic in the log and records, in the same fsync'd batch, the dedup
// receipts and "accepted" status events in accepts: a message is never acknowledged without
// its receipt, and a receipt never survives a crash without its message.
func (s *Store) Append(ctx context.Context, topic string, msgs []buffer.Message, accepts []Accept) error {
	side := make([]embedded.KV, 0, 3*len(accepts))
	for _, m := range accepts {
		v := make([]byte, sha256.Size+8)
		copy(v, m.Receipt.BodyHash[:])
		binary.BigEndian.PutUint64(v[sha256.Size:], uint64(m.Receipt.AcceptedAt.UnixNano()))
		dk := dedupKey(m.Client, m.Type, m.ID)
		// In the filter before the write lands: the filter may only err towards "maybe seen".
		s.seen.add(dk)
		ek, ev, err := eventKV(Event{Client: m.Client, ID: m.ID, Type: m.Type, Stage: "ingest", Status: StatusAccepted, At: m.Receipt.AcceptedAt})
		if err != nil {
			return err
		}
		side = append(side, embedded.KV{Key: dk, Value: v}, embedded.KV{Key: expiryKey(m.Receipt.AcceptedAt, dk)}, embedded.KV{Key: ek, Value: ev})
	}
	return s.owner.AppendWith(ctx, topic, msgs, side)
}

func expiryKey(at time.Time, dk []byte) []byte {
	k := make([]byte, 0, len(prefixExpiry)+8+len(dk))
	k = append(k, prefixExpiry...)
	k = binary.BigEndian.AppendUint64(k, uint64(at.UnixNano()))
	return append(k, dk...)
}

// ExpireReceipts forgets the dedup receipts of messages accepted before cutoff, and their
// status trails, so that what Weir remembers stays bounded by the retention. It returns how many
// receipts it removed. A resend after its receipt expired is a new message.
func (s *Store) ExpireReceipts(cutoff time.Time) (int, error) {
	lower := []byte(prefixExpiry)
	upper := binary.BigEndian.AppendUint64([]byte(prefixExpiry), uint64(cutoff.UnixNano()))
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, fmt.Errorf("state: %w", err)
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		dk := k[len(prefixExpiry)+8:]
		b.Delete(dk, nil)
		if client, rest, ok := bytes.Cut(dk[len(prefixDedup):], []byte{0}); ok {
			if typ, id, ok := bytes.Cut(rest, []byte{0}); ok {
				p := typeStatusPrefix(string(client), string(id), string(typ))
				b.DeleteRange(p, append(bytes.Clone(p[:len(p)-1]), 1), nil)
				m := markPrefix(string(client), string(typ), string(id))
				b.DeleteRange(m, append(bytes.Clone(m[:len(m)-1]), 1), nil)
				if err := s.deleteRun(b, RunID(string(client), string(typ), string(id))); err != nil {
					return 0, err
				}
			}
		}
		n++
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("state: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	b.DeleteRange(lower, upper, nil)
	if err := s.owner.Apply(b, false); err != nil {
		return 0, fmt.Errorf("state: %w", err)
	}
	return n, nil
}

// Accept is one accepted message for Store.Accepted.
type Accept struct {
	Client, Type, ID string
	Receipt          Receipt
}

// Status values in a trail.
const (
	StatusAccepted  = "accepted"
	StatusProcessed = "processed"
	StatusPersisted = "persisted"
	StatusDelivered = "delivered"
	StatusRetrying  = "retrying"
	StatusFailed    = "failed"
	StatusDead      = "dead_lettered"
	StatusReplayed  = "replayed"
	// A message type's workflow: its overall outcome (each step's is in the run).
	StatusCompleted                  = "completed"
	StatusWorkflowCompleted          = "workflow_" + RunCompleted
	StatusWorkflowFailed             = "workflow_" + RunFailed
	StatusWorkflowCompensationFailed = "workflow_" + RunCompensationFailed
)

// Event is one step of a message's status trail: one per attempt of each stage and endpoint,
// bounded by the retry schedules' attempt limits.
type Event struct {
	Client   string    `json:"-"`
	ID       string    `json:"-"`
	Type     string    `json:"type,omitempty"`
	Stage    string    `json:"stage"`
	Endpoint string    `json:"endpoint,omitempty"`
	Status   string    `json:"status"`
	At       time.Time `json:"at"`
	Attempts int       `json:"attempts,omitempty"`
	Code     int       `json:"status_code,omitempty"`
	Error    string    `json:"error,omitempty"`
	NextAt   time.Time `json:"next_attempt_at,omitzero"`
	Reason   string    `json:"reason,omitempty"`      // why it was dead-lettered
	Letter   string    `json:"dead_letter,omitempty"` // its dead-letter id
}

func statusPrefix(client, id string) []byte {
	k := make([]byte, 0, len(prefixStatus)+len(client)+len(id)+2)
	k = append(k, prefixStatus...)
	k = append(k, client...)
	k = append(k, 0)
	k = append(k, id...)
	return append(k, 0)
}

// typeStatusPrefix is where the trail of one (client, id, type) lives: the same id may be used
// by one client for several types, each with its own trail and its own retention.
func typeStatusPrefix(client, id, typ string) []byte {
	k := statusPrefix(client, id)
	k = append(k, typ...)
	return append(k, 0)
}

func eventKV(e Event) (key, value []byte, err error) {
	k := typeStatusPrefix(e.Client, e.ID, e.Type)
	k = binary.BigEndian.AppendUint64(k, uint64(e.At.UnixNano()))
	k = append(k, e.Stage...)
	k = append(k, 0)
	k = append(k, e.Endpoint...)
	v, err := json.Marshal(e)
	if err != nil {
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	return k, v, nil
}

func setEvent(b *pebble.Batch, e Event) error {
	k, v, err := eventKV(e)
	if err != nil {
		return err
	}
	if err := b.Set(k, v, nil); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// Record writes status events (unsynced, like Accepted).
func (s *Store) Record(events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, e := range events {
		if err := setEvent(b, e); err != nil {
			return err
		}
	}
	if err := s.owner.Apply(b, false); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// Trail returns the status events of client's message id (of every type that used the id),
// oldest first; none when the message is unknown or belongs to another client.
func (s *Store) Trail(client, id string) ([]Event, error) {
	prefix := statusPrefix(client, id)
	upper := append(bytes.Clone(prefix[:len(prefix)-1]), 1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	defer it.Close()
	var out []Event
	for it.First(); it.Valid(); it.Next() {
		var e Event
		if err := json.Unmarshal(it.Value(), &e); err != nil {
			return nil, fmt.Errorf("state: status event: %w", err)
		}
		e.Client, e.ID = client, id
		out = append(out, e)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}
