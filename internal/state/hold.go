package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
)

// Strict per-key order: while a message of a strict-order type waits for a retry, its key is
// held, and the later messages of that key in the stage are parked in a queue behind it, in
// order. When the held message finishes (delivered or dead-lettered), the first parked one is
// released into the stage, and so on.
const (
	prefixHold   = "h/" // h/<topic>\0<type>\0<key>
	prefixParked = "p/" // p/<topic>\0<type>\0<key>\0<parked-at ns BE u64><seq BE u32>: message envelope
)

// Hold names a held key of a stage.
type Hold struct{ Topic, Type, Key string }

func holdKey(h Hold) []byte {
	return appendHoldID(append([]byte(nil), prefixHold...), h)
}

func appendHoldID(k []byte, h Hold) []byte {
	k = append(k, h.Topic...)
	k = append(k, 0)
	k = append(k, h.Type...)
	k = append(k, 0)
	k = append(k, h.Key...)
	return append(k, 0)
}

func parkedPrefix(h Hold) []byte {
	return appendHoldID(append([]byte(nil), prefixParked...), h)
}

var parkSeq atomic.Uint32

// Holds returns the held keys of topic as "type\x00key" strings.
func (s *Store) Holds(topic string) (map[string]bool, error) {
	lower := append(append([]byte(prefixHold), topic...), 0)
	upper := append(append([]byte(prefixHold), topic...), 1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	defer it.Close()
	out := map[string]bool{}
	for it.First(); it.Valid(); it.Next() {
		id := it.Key()[len(lower):]
		out[string(id[:len(id)-1])] = true
	}
	return out, it.Error()
}

// Park puts a message behind its held key (unsynced, like Failures: written before the stage
// commits past it).
func (s *Store) Park(h Hold, value []byte, at time.Time) error {
	k := parkedPrefix(h)
	k = binary.BigEndian.AppendUint64(k, uint64(at.UnixNano()))
	k = binary.BigEndian.AppendUint32(k, parkSeq.Add(1))
	b := s.db.NewBatch()
	defer b.Close()
	b.Set(k, value, nil)
	if err := s.owner.Apply(b, false); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// Release ends the wait of a held key's current message: it appends the first parked message to
// the topic (made by mark, which flags it to run in its turn) and removes it from the queue in
// the same fsync'd batch; with nothing parked it drops the hold. It reports whether the key is
// still held.
func (s *Store) Release(ctx context.Context, h Hold, mark func([]byte) []byte) (bool, error) {
	p := parkedPrefix(h)
	upper := append(bytes.Clone(p[:len(p)-1]), 1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upper})
	if err != nil {
		return false, fmt.Errorf("state: %w", err)
	}
	var key, value []byte
	if it.First() {
		key, value = bytes.Clone(it.Key()), bytes.Clone(it.Value())
	}
	if err := it.Error(); err != nil {
		it.Close()
		return false, fmt.Errorf("state: %w", err)
	}
	it.Close()
	if key == nil {
		return false, s.apply([]embedded.KV{{Key: holdKey(h), Delete: true}}, false)
	}
	msg := buffer.Message{Key: []byte(h.Key), Value: mark(value)}
	if err := s.owner.AppendWith(ctx, h.Topic, []buffer.Message{msg}, []embedded.KV{{Key: key, Delete: true}}); err != nil {
		return true, fmt.Errorf("state: release %s: %w", h.Topic, err)
	}
	return true, nil
}
