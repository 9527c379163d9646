package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/weirhq/weir/internal/buffer"
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
	out := map[string]string{}
	err := s.space.Scan(lower, upper, func(k, v []byte) error {
		id := k[len(lower):]
		out[string(id[:len(id)-1])] = string(v)
		return nil
	})
	return out, err
}

// Park puts a message behind its held key (unsynced, like Failures: written before the stage
// commits past it). Parked messages are ordered by their place in the log — a key's messages
// share one partition —, and a record parked twice (after a crash) is parked once.
func (s *Store) Park(h Hold, value []byte, partition int, offset uint64) error {
	k := parkedPrefix(h)
	k = binary.BigEndian.AppendUint32(k, uint32(partition))
	k = binary.BigEndian.AppendUint64(k, offset)
	return s.space.Write(context.Background(), Batch{Ops: []Op{set(k, value)}})
}

// Release ends the wait of a held key's current message: it appends the first parked message
// to the topic (made by mark, which flags it to run in its turn), removes it from the queue and
// makes it the holder (holder gives its identity), all in one fsync'd batch; with nothing
// parked it drops the hold. It returns the new holder, or "" when the key is no longer held.
func (s *Store) Release(ctx context.Context, h Hold, mark func([]byte) []byte, holder func([]byte) string) (string, error) {
	p := parkedPrefix(h)
	upper := append(bytes.Clone(p[:len(p)-1]), 1)
	var key, value []byte
	err := s.space.Scan(p, upper, func(k, v []byte) error {
		key, value = bytes.Clone(k), bytes.Clone(v)
		return errStop
	})
	if err != nil {
		return "", err
	}
	if key == nil {
		return "", s.space.Write(ctx, Batch{Ops: []Op{del(holdKey(h))}})
	}
	next := holder(value)
	msg := buffer.Message{Key: []byte(h.Key), Value: mark(value)}
	side := []Op{del(key), set(holdKey(h), []byte(next))}
	if err := s.space.AppendWith(ctx, h.Topic, []buffer.Message{msg}, Batch{Ops: side, Sync: true}); err != nil {
		return "", fmt.Errorf("state: release %s: %w", h.Topic, err)
	}
	return next, nil
}
