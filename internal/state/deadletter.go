package state

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/weirhq/weir/internal/buffer"
)

// DeadLetter is a message a stage gave up on: its schedule was exhausted, or it failed
// permanently. Replaying it appends it to Topic again, with a fresh schedule.
type DeadLetter struct {
	ID        string    `json:"id"` // time-ordered: the store lists dead letters oldest first
	Topic     string    `json:"topic"`
	Stage     string    `json:"stage"`
	Endpoint  string    `json:"endpoint,omitempty"`
	Client    string    `json:"client"`
	Type      string    `json:"type"`
	MessageID string    `json:"message_id"`
	Reason    string    `json:"reason"` // see the Reason constants
	Error     string    `json:"error"`
	Attempts  int       `json:"attempts"`
	FirstAt   time.Time `json:"first_error_at"`
	LastAt    time.Time `json:"last_error_at"`
	Code      int       `json:"last_status_code,omitempty"`
	Response  string    `json:"last_response,omitempty"` // bounded snippet of the partner's answer

	Key     []byte `json:"-"` // the ordering key
	Message []byte `json:"-"` // the envelope as it failed
}

// Reasons for dead-lettering.
const (
	ReasonExhausted = "exhausted" // the retry schedule ran out (attempts or age)
	ReasonPermanent = "permanent" // an error no retry can fix
	ReasonGone      = "gone"      // the partner answered 410 Gone: the endpoint is disabled
	ReasonRemoved   = "removed"   // its stage no longer exists in the config
)

var letterSeq atomic.Uint32

// NewLetterID returns a new dead-letter id: the time in hex, then a sequence number, so that ids
// sort in time order and stay unique across restarts.
func NewLetterID(at time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(at.UnixNano()))
	binary.BigEndian.PutUint32(b[8:], letterSeq.Add(1))
	return hex.EncodeToString(b[:])
}

func letterKey(id string) []byte { return append([]byte(prefixLetter), id...) }

func (d *DeadLetter) kv() (key, value []byte, err error) {
	meta, err := json.Marshal(d)
	if err != nil {
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	v := make([]byte, 0, 2*binary.MaxVarintLen64+len(meta)+len(d.Key)+len(d.Message))
	v = appendBytes(v, meta)
	v = appendBytes(v, d.Key)
	return letterKey(d.ID), append(v, d.Message...), nil
}

func decodeLetter(v []byte) (DeadLetter, error) {
	var d DeadLetter
	meta, rest, ok := readBytes(v)
	if !ok {
		return d, errors.New("state: dead letter is corrupt")
	}
	key, rest, ok := readBytes(rest)
	if !ok {
		return d, errors.New("state: dead letter is corrupt")
	}
	if err := json.Unmarshal(meta, &d); err != nil {
		return d, fmt.Errorf("state: dead letter: %w", err)
	}
	d.Key, d.Message = append([]byte(nil), key...), append([]byte(nil), rest...)
	return d, nil
}

// LetterFilter selects dead letters; empty fields match everything.
type LetterFilter struct {
	Type, Client, Endpoint, Stage, Reason string
	Since, Until                          time.Time // dead-lettered in [Since, Until)
	After                                 string    // list only ids after this one (paging)
	Limit                                 int       // 0: no limit
}

func (f *LetterFilter) match(d *DeadLetter) bool {
	return (f.Type == "" || f.Type == d.Type) && (f.Client == "" || f.Client == d.Client) &&
		(f.Endpoint == "" || f.Endpoint == d.Endpoint) && (f.Stage == "" || f.Stage == d.Stage) &&
		(f.Reason == "" || f.Reason == d.Reason)
}

// DeadLetters lists the dead letters that match f, oldest first.
func (s *Store) DeadLetters(f LetterFilter) ([]DeadLetter, error) {
	lower, upper := []byte(prefixLetter), []byte("q0")
	if !f.Since.IsZero() {
		lower = letterKey(NewLetterIDPrefix(f.Since))
	}
	if f.After != "" {
		if a := append(letterKey(f.After), 0); string(a) > string(lower) {
			lower = a
		}
	}
	if !f.Until.IsZero() {
		upper = letterKey(NewLetterIDPrefix(f.Until))
	}
	var out []DeadLetter
	err := s.space.Scan(lower, upper, func(_, v []byte) error {
		d, err := decodeLetter(v)
		if err != nil {
			return err
		}
		if !f.match(&d) {
			return nil
		}
		out = append(out, d)
		if f.Limit > 0 && len(out) == f.Limit {
			return errStop
		}
		return nil
	})
	return out, err
}

// NewLetterIDPrefix is the id prefix of dead letters written at t (for time-range bounds).
func NewLetterIDPrefix(t time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	return hex.EncodeToString(b[:])
}

// ErrNotFound is returned for an unknown dead-letter id.
var ErrNotFound = errors.New("state: not found")

// DeadLetter returns one dead letter.
func (s *Store) DeadLetter(id string) (DeadLetter, error) {
	v, ok, err := s.space.Get(letterKey(id))
	if err != nil {
		return DeadLetter{}, err
	}
	if !ok {
		return DeadLetter{}, ErrNotFound
	}
	return decodeLetter(v)
}

// Replay appends dead letters to their topics again, each message made fresh by reset (a new
// schedule), and removes them from the store in the same fsync'd batch: a dead letter replayed
// twice, or by two callers at once, runs once. It returns the ids it replayed.
func (s *Store) Replay(ctx context.Context, ids []string, reset func(d *DeadLetter) []byte) ([]string, error) {
	s.replayMu.Lock() // so that two replays of one id cannot both read it before either deletes
	defer s.replayMu.Unlock()
	byTopic := map[string][]DeadLetter{}
	var order []string
	for _, id := range unique(ids) {
		d, err := s.DeadLetter(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if _, ok := byTopic[d.Topic]; !ok {
			order = append(order, d.Topic)
		}
		byTopic[d.Topic] = append(byTopic[d.Topic], d)
	}
	var done []string
	now := time.Now().UTC()
	for _, topic := range order {
		letters := byTopic[topic]
		msgs := make([]buffer.Message, len(letters))
		side := make([]Op, 0, 3*len(letters))
		for i := range letters {
			d := &letters[i]
			msgs[i] = buffer.Message{Key: d.Key, Value: reset(d)}
			side = append(side, del(letterKey(d.ID)))
			// A fresh schedule: forget how far the failed run got.
			mk := Mark{Topic: d.Topic, Client: d.Client, Type: d.Type, ID: d.MessageID}
			side = append(side, del(mk.key()))
			ek, ev, err := eventKV(Event{Client: d.Client, ID: d.MessageID, Type: d.Type, Stage: d.Stage, Endpoint: d.Endpoint,
				Status: StatusReplayed, At: now, Letter: d.ID})
			if err != nil {
				return done, err
			}
			side = append(side, set(ek, ev))
		}
		if err := s.space.AppendWith(ctx, topic, msgs, Batch{Ops: side, Sync: true}); err != nil {
			return done, fmt.Errorf("state: replay into %s: %w", topic, err)
		}
		for _, d := range letters {
			done = append(done, d.ID)
		}
	}
	return done, nil
}

// Discard removes dead letters for good and returns how many existed.
func (s *Store) Discard(ids []string) (int, error) {
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	var ops []Op
	for _, id := range unique(ids) {
		if _, err := s.DeadLetter(id); errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return 0, err
		}
		ops = append(ops, del(letterKey(id)))
	}
	if err := s.space.Write(context.Background(), Batch{Ops: ops, Sync: true}); err != nil {
		return 0, err
	}
	return len(ops), nil
}

// unique returns ids without repeats, in their first order.
func unique(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// ExpireDeadLetters removes the dead letters written before cutoff.
func (s *Store) ExpireDeadLetters(cutoff time.Time) error {
	return s.space.Write(context.Background(), Batch{Ops: []Op{delRange([]byte(prefixLetter), letterKey(NewLetterIDPrefix(cutoff)))}})
}

// EndpointState is what survives a restart about an endpoint's health: whether it is paused.
type EndpointState struct {
	Paused bool      `json:"paused"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	At     time.Time `json:"at,omitzero"` // when it was last paused or resumed
}

// SetEndpoint stores an endpoint's state (synced: an operator's pause must hold).
func (s *Store) SetEndpoint(name string, st EndpointState) error {
	v, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return s.space.Write(context.Background(), Batch{Ops: []Op{set(append([]byte(prefixEndpoint), name...), v)}, Sync: true})
}

// Endpoint returns an endpoint's stored state (the zero state when none was stored).
func (s *Store) Endpoint(name string) (EndpointState, error) {
	var st EndpointState
	v, ok, err := s.space.Get(append([]byte(prefixEndpoint), name...))
	if err != nil || !ok {
		return st, err
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return st, fmt.Errorf("state: endpoint %s: %w", name, err)
	}
	return st, nil
}
