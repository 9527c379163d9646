package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
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
	prefixHold   = "h/" // h/<topic>\0<type>\0<key> → the holder: the message allowed to run
	prefixParked = "p/" // p/<topic>\0<type>\0<key>\0<partition BE u32><offset BE u64>: message envelope
)

// Hold names a held key of a stage and, when written, the message that holds it: the one
// waiting for its retry, or the one released in its turn (see Holder).
type Hold struct {
	Topic, Type, Key string
	Holder           string
}

// Holder identifies a message across retries, redeliveries and replays.
func Holder(client, id string, receivedAt time.Time) string {
	return client + "\x00" + id + "\x00" + strconv.FormatInt(receivedAt.UnixNano(), 10)
}

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

// Holds returns the held keys of topic ("type\x00key") with their holders.
func (s *Store) Holds(topic string) (map[string]string, error) {
	lower := append(append([]byte(prefixHold), topic...), 0)
	upper := append(append([]byte(prefixHold), topic...), 1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	defer it.Close()
	out := map[string]string{}
	for it.First(); it.Valid(); it.Next() {
		id := it.Key()[len(lower):]
		out[string(id[:len(id)-1])] = string(it.Value())
	}
	return out, it.Error()
}

// Park puts a message behind its held key (unsynced, like Failures: written before the stage
// commits past it). Parked messages are ordered by their place in the log — a key's messages
// share one partition —, and a record parked twice (after a crash) is parked once.
func (s *Store) Park(h Hold, value []byte, partition int, offset uint64) error {
	k := parkedPrefix(h)
	k = binary.BigEndian.AppendUint32(k, uint32(partition))
	k = binary.BigEndian.AppendUint64(k, offset)
	b := s.db.NewBatch()
	defer b.Close()
	b.Set(k, value, nil)
	if err := s.owner.Apply(b, false); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// Release ends the wait of a held key's current message: it appends the first parked message
// to the topic (made by mark, which flags it to run in its turn), removes it from the queue and
// makes it the holder (holder gives its identity), all in one fsync'd batch; with nothing
// parked it drops the hold. It returns the new holder, or "" when the key is no longer held.
func (s *Store) Release(ctx context.Context, h Hold, mark func([]byte) []byte, holder func([]byte) string) (string, error) {
	p := parkedPrefix(h)
	upper := append(bytes.Clone(p[:len(p)-1]), 1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upper})
	if err != nil {
		return "", fmt.Errorf("state: %w", err)
	}
	var key, value []byte
	if it.First() {
		key, value = bytes.Clone(it.Key()), bytes.Clone(it.Value())
	}
	if err := it.Error(); err != nil {
		it.Close()
		return "", fmt.Errorf("state: %w", err)
	}
	it.Close()
	if key == nil {
		return "", s.apply([]embedded.KV{{Key: holdKey(h), Delete: true}}, false)
	}
	next := holder(value)
	msg := buffer.Message{Key: []byte(h.Key), Value: mark(value)}
	side := []embedded.KV{{Key: key, Delete: true}, {Key: holdKey(h), Value: []byte(next)}}
	if err := s.owner.AppendWith(ctx, h.Topic, []buffer.Message{msg}, side); err != nil {
		return "", fmt.Errorf("state: release %s: %w", h.Topic, err)
	}
	return next, nil
}
