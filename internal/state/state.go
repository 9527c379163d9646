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
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

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

// Store is the state store: its rules over a Space. It is safe for concurrent use.
type Store struct {
	space Space
	seen  *filter // every dedup key in the store is in it; nil when the space is shared

	replayMu sync.Mutex // serializes Replay and Discard
}

// New returns a store on the log's database, which the caller keeps open for the store's
// lifetime.
func New(owner DB) (*Store, error) { return Open(PebbleSpace(owner)) }

// Open returns a store on space. An unshared space's dedup keys are read once, to fill the
// in-memory filter that spares most lookups of new ids a read.
func Open(space Space) (*Store, error) {
	s := &Store{space: space}
	if space.Shared() {
		return s, nil
	}
	s.seen = newFilter()
	err := space.Scan([]byte(prefixDedup), []byte("d0"), func(k, _ []byte) error {
		s.seen.add(k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: loading dedup keys: %w", err)
	}
	return s, nil
}

// Shared reports whether other instances share the store.
func (s *Store) Shared() bool { return s.space.Shared() }

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
	if s.seen != nil && !s.seen.mayContain(dk) {
		return Receipt{}, false, nil
	}
	v, ok, err := s.space.Get(dk)
	if err != nil || !ok {
		return Receipt{}, false, err
	}
	if len(v) != sha256.Size+8 {
		return Receipt{}, false, fmt.Errorf("state: dedup receipt of %d bytes is corrupt", len(v))
	}
	var r Receipt
	copy(r.BodyHash[:], v)
	r.AcceptedAt = time.Unix(0, int64(binary.BigEndian.Uint64(v[sha256.Size:]))).UTC()
	return r, true, nil
}

// Append appends msgs to topic in the log and records, in the same fsync'd batch, the dedup
// receipts of accepts: a message is never acknowledged without its receipt, and a receipt
// never survives a crash without its message. The receipt is also the trail's "accepted" event
// (see Trail): writing that event too would cost a fourth key per message.
func (s *Store) Append(ctx context.Context, topic string, msgs []buffer.Message, accepts []Accept) error {
	side := make([]Op, 0, len(accepts)+1)
	var group []byte    // dedup keys accepted within a second of each other (a request's)
	var first, last int // the group's first accept, and its latest-accepted one
	flush := func() {
		if group != nil {
			a, l := accepts[first], accepts[last]
			// Filed under the latest acceptance time: none of them expires before its
			// retention (the earlier ones up to a second after it).
			side = append(side, set(expiryKey(l.Receipt.AcceptedAt, dedupKey(a.Client, a.Type, a.ID)), group))
			group = nil
		}
	}
	for i, m := range accepts {
		v := make([]byte, sha256.Size+8)
		copy(v, m.Receipt.BodyHash[:])
		binary.BigEndian.PutUint64(v[sha256.Size:], uint64(m.Receipt.AcceptedAt.UnixNano()))
		dk := dedupKey(m.Client, m.Type, m.ID)
		if s.seen != nil {
			// In the filter before the write lands: the filter may only err towards "maybe seen".
			s.seen.add(dk)
		}
		side = append(side, set(dk, v))
		if at := m.Receipt.AcceptedAt; group != nil && (at.Before(accepts[first].Receipt.AcceptedAt) || at.Sub(accepts[first].Receipt.AcceptedAt) > time.Second) {
			flush()
		}
		if group == nil {
			first, last = i, i
		}
		if m.Receipt.AcceptedAt.After(accepts[last].Receipt.AcceptedAt) {
			last = i
		}
		group = appendBytes(group, dk)
	}
	flush()
	return s.space.AppendWith(ctx, topic, msgs, Batch{Ops: side, Sync: true})
}

// expiryKey is the key of the expiry entry of receipts accepted together, the last of them at
// at, the first of them dk. Its value lists their dedup keys (length-prefixed); an empty value
// (stores written before entries were grouped) means dk alone.
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
	var ops []Op
	n := 0
	err := s.space.Scan(lower, upper, func(k, v []byte) error {
		dks := [][]byte{k[len(prefixExpiry)+8:]}
		if len(v) > 0 {
			dks = dks[:0]
			for rest := v; len(rest) > 0; {
				dk, r, ok := readBytes(rest)
				if !ok {
					return fmt.Errorf("state: expiry entry is corrupt")
				}
				dks, rest = append(dks, dk), r
			}
		}
		for _, dk := range dks {
			dk = bytes.Clone(dk)
			ops = append(ops, del(dk))
			if client, rest, ok := bytes.Cut(dk[len(prefixDedup):], []byte{0}); ok {
				if typ, id, ok := bytes.Cut(rest, []byte{0}); ok {
					p := typeStatusPrefix(string(client), string(id), string(typ))
					ops = append(ops, delRange(p, append(bytes.Clone(p[:len(p)-1]), 1)))
					m := markPrefix(string(client), string(typ), string(id))
					ops = append(ops, delRange(m, append(bytes.Clone(m[:len(m)-1]), 1)))
					run, err := s.finishedRunOps(RunID(string(client), string(typ), string(id)))
					if err != nil {
						return err
					}
					ops = append(ops, run...)
				}
			}
			n++
		}
		return nil
	})
	if err != nil || n == 0 {
		return 0, err
	}
	ops = append(ops, delRange(lower, upper))
	if err := s.space.Write(context.Background(), Batch{Ops: ops}); err != nil {
		return 0, err
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
	return k, appendEventJSON(make([]byte, 0, 96+len(e.Error)), &e), nil
}

// appendEventJSON appends e as encoding/json would write it — one is written for every message
// at ingest and at every stage, and reflection cost ~7% of batch ingest.
func appendEventJSON(b []byte, e *Event) []byte {
	if !utf8.ValidString(e.Type) || !utf8.ValidString(e.Stage) || !utf8.ValidString(e.Endpoint) || !utf8.ValidString(e.Status) ||
		!utf8.ValidString(e.Error) || !utf8.ValidString(e.Reason) || !utf8.ValidString(e.Letter) {
		v, _ := json.Marshal(e) // invalid UTF-8 (a partner's error text): let encoding/json repair it
		return append(b, v...)
	}
	b = append(b, '{')
	if e.Type != "" {
		b = appendJSONField(b, "type", e.Type)
	}
	b = appendJSONField(b, "stage", e.Stage)
	if e.Endpoint != "" {
		b = appendJSONField(b, "endpoint", e.Endpoint)
	}
	b = appendJSONField(b, "status", e.Status)
	b = append(b, `"at":"`...)
	b = append(e.At.AppendFormat(b, time.RFC3339Nano), `",`...)
	if e.Attempts != 0 {
		b = append(strconv.AppendInt(append(b, `"attempts":`...), int64(e.Attempts), 10), ',')
	}
	if e.Code != 0 {
		b = append(strconv.AppendInt(append(b, `"status_code":`...), int64(e.Code), 10), ',')
	}
	if e.Error != "" {
		b = appendJSONField(b, "error", e.Error)
	}
	if !e.NextAt.IsZero() {
		b = append(b, `"next_attempt_at":"`...)
		b = append(e.NextAt.AppendFormat(b, time.RFC3339Nano), `",`...)
	}
	if e.Reason != "" {
		b = appendJSONField(b, "reason", e.Reason)
	}
	if e.Letter != "" {
		b = appendJSONField(b, "dead_letter", e.Letter)
	}
	b[len(b)-1] = '}' // the last field's comma
	return b
}

// appendJSONField appends "name":"value", with value escaped as encoding/json escapes it.
func appendJSONField(b []byte, name, v string) []byte {
	b = append(append(append(b, '"'), name...), `":"`...)
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(v); {
		c := v[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			if c < utf8.RuneSelf {
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(v[i:])
			if r != '\u2028' && r != '\u2029' {
				i += size
				continue
			}
			b = append(append(b, v[start:i]...), `\u202`...)
			b = append(b, hex[r&0xf])
			i += size
			start = i
			continue
		}
		b = append(b, v[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default: // other control characters, and <, >, & as encoding/json escapes them
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	return append(append(b, v[start:]...), `",`...)
}

// Record writes status events (unsynced, like Accepted).
func (s *Store) Record(events ...Event) error {
	ops := make([]Op, 0, len(events))
	for _, e := range events {
		k, v, err := eventKV(e)
		if err != nil {
			return err
		}
		ops = append(ops, set(k, v))
	}
	return s.space.Write(context.Background(), Batch{Ops: ops})
}

// Trail returns the status events of client's message id (of every type that used the id),
// oldest first; none when the message is unknown or belongs to another client. The "accepted"
// event of each of types that has a receipt for the id comes from the receipt (stores written
// before receipts stood in for it hold the event itself: it is not repeated).
func (s *Store) Trail(client, id string, types ...string) ([]Event, error) {
	prefix := statusPrefix(client, id)
	upper := append(bytes.Clone(prefix[:len(prefix)-1]), 1)
	var out []Event
	err := s.space.Scan(prefix, upper, func(_, v []byte) error {
		var e Event
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("state: status event: %w", err)
		}
		e.Client, e.ID = client, id
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var accepted []Event // first: at the same instant, acceptance came before what followed
	for _, typ := range types {
		if slices.ContainsFunc(out, func(e Event) bool { return e.Type == typ && e.Status == StatusAccepted }) {
			continue
		}
		r, ok, err := s.Receipt(client, typ, id)
		if err != nil {
			return nil, err
		}
		if ok {
			accepted = append(accepted, Event{Client: client, ID: id, Type: typ, Stage: "ingest", Status: StatusAccepted, At: r.AcceptedAt})
		}
	}
	out = append(accepted, out...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}
