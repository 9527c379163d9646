package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/weirhq/weir/internal/buffer"
)

// Key prefixes of failure handling.
const (
	prefixRetry    = "r/" // r/<due unix ns, BE u64><topic>\0<partition BE u32><offset BE u64>
	prefixLetter   = "q/" // q/<dead-letter id>
	prefixEndpoint = "e/" // e/<endpoint name>: paused or not
)

// Retry is a message waiting for its next attempt in a stage: at Due the scheduler appends it
// to Topic again.
type Retry struct {
	Topic string
	Due   time.Time
	Key   []byte // the ordering key, which picks the partition
	Value []byte // the message envelope, with its attempt count and first failure
	// From is the record that failed (partition and offset): with the due time it makes the
	// entry's key unique. A record handled twice (after a crash, before its commit) is caught by
	// the message's failure mark instead (see Mark).
	Partition int
	Offset    uint64

	key []byte // the store's key, set by DueRetries
}

func (r *Retry) storeKey() []byte {
	k := make([]byte, 0, len(prefixRetry)+8+len(r.Topic)+13)
	k = append(k, prefixRetry...)
	k = binary.BigEndian.AppendUint64(k, uint64(r.Due.UnixNano()))
	k = append(k, r.Topic...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint32(k, uint32(r.Partition))
	return binary.BigEndian.AppendUint64(k, r.Offset)
}

func (r *Retry) storeValue() []byte {
	v := make([]byte, 0, 2*binary.MaxVarintLen64+len(r.Topic)+len(r.Key)+len(r.Value))
	v = appendBytes(v, []byte(r.Topic))
	v = appendBytes(v, r.Key)
	return append(v, r.Value...)
}

func decodeRetry(k, v []byte) (Retry, error) {
	r := Retry{key: bytes.Clone(k)}
	if len(k) < len(prefixRetry)+8 {
		return r, fmt.Errorf("state: retry key of %d bytes is corrupt", len(k))
	}
	r.Due = time.Unix(0, int64(binary.BigEndian.Uint64(k[len(prefixRetry):]))).UTC()
	topic, rest, ok := readBytes(v)
	if !ok {
		return r, fmt.Errorf("state: retry entry is corrupt")
	}
	key, rest, ok := readBytes(rest)
	if !ok {
		return r, fmt.Errorf("state: retry entry is corrupt")
	}
	r.Topic, r.Key, r.Value = string(topic), bytes.Clone(key), bytes.Clone(rest)
	return r, nil
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

func readBytes(b []byte) (v, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, false
	}
	return b[w : w+int(n)], b[w+int(n):], true
}

// Notification is an operations event appended with the dead letters it announces.
type Notification struct {
	Topic string
	Msgs  []buffer.Message
}

// Failures is what Store.Failures writes.
type Failures struct {
	Retries []Retry
	Letters []DeadLetter
	Events  []Event
	Holds   []Hold // strict-order keys that now wait for a retry
	Marks   []Mark // how far each failed message got (see Mark)
	Notify  *Notification
}

// Mark records how many attempts of a message in a stage have failed, so that the same record
// handled again — redelivered after a crash, before its stage committed — is recognized as
// already scheduled (or dead-lettered) and does not start a second chain of retries. Marks are
// keyed by the message (client, type, id) and stage topic, carry its acceptance time to tell a
// later message with a reused id apart, and expire with the message's dedup receipt.
type Mark struct {
	Topic, Client, Type, ID string
	ReceivedAt              time.Time
	Failed                  uint32 // attempts failed so far; MarkFinal once dead-lettered
}

// MarkFinal is the Failed count of a message that was dead-lettered.
const MarkFinal = ^uint32(0)

const prefixMark = "m/" // m/<client>\0<type>\0<id>\0<topic>

func markPrefix(client, typ, id string) []byte {
	k := make([]byte, 0, len(prefixMark)+len(client)+len(typ)+len(id)+3)
	k = append(k, prefixMark...)
	k = append(k, client...)
	k = append(k, 0)
	k = append(k, typ...)
	k = append(k, 0)
	k = append(k, id...)
	return append(k, 0)
}

func (m *Mark) key() []byte { return append(markPrefix(m.Client, m.Type, m.ID), m.Topic...) }

func (m *Mark) value() []byte {
	v := binary.AppendUvarint(nil, uint64(m.Failed))
	return binary.AppendVarint(v, m.ReceivedAt.UnixNano())
}

// Marked returns the failed attempts recorded for the message accepted at receivedAt in topic
// (0 when none are).
func (s *Store) Marked(topic, client, typ, id string, receivedAt time.Time) (uint32, error) {
	m := Mark{Topic: topic, Client: client, Type: typ, ID: id}
	v, ok, err := s.space.Get(m.key())
	if err != nil || !ok {
		return 0, err
	}
	failed, n := binary.Uvarint(v)
	if n <= 0 {
		return 0, fmt.Errorf("state: failure mark is corrupt")
	}
	at, w := binary.Varint(v[n:])
	if w <= 0 {
		return 0, fmt.Errorf("state: failure mark is corrupt")
	}
	if at != receivedAt.UnixNano() {
		return 0, nil // another message that reused the id after the first one expired
	}
	return uint32(failed), nil
}

// Failures writes, in one batch, the retries and dead letters of failed records together with
// their status events. The batch is not synced on its own: the stage commits past the failed
// records only after this returns, and the log's write-ahead order makes these writes durable no
// later than that commit, so a crash either keeps both or redelivers the records. With a
// notification the batch is an fsync'd append of its messages instead.
func (s *Store) Failures(f Failures) error {
	retries, letters, events, notify := f.Retries, f.Letters, f.Events, f.Notify
	kvs := make([]Op, 0, len(retries)+len(letters)+len(events)+len(f.Holds)+len(f.Marks))
	for _, h := range f.Holds {
		kvs = append(kvs, set(holdKey(h), []byte(h.Holder)))
	}
	for i := range f.Marks {
		kvs = append(kvs, set(f.Marks[i].key(), f.Marks[i].value()))
	}
	for i := range retries {
		kvs = append(kvs, set(retries[i].storeKey(), retries[i].storeValue()))
	}
	for i := range letters {
		k, v, err := letters[i].kv()
		if err != nil {
			return err
		}
		kvs = append(kvs, set(k, v))
	}
	for _, e := range events {
		k, v, err := eventKV(e)
		if err != nil {
			return err
		}
		kvs = append(kvs, set(k, v))
	}
	if notify != nil && len(notify.Msgs) > 0 {
		if err := s.space.AppendWith(context.Background(), notify.Topic, notify.Msgs, Batch{Ops: kvs, Sync: true}); err != nil {
			return fmt.Errorf("state: %w", err)
		}
		return nil
	}
	return s.space.Write(context.Background(), Batch{Ops: kvs})
}

// Orphan replaces retries by dead letters in one batch.
func (s *Store) Orphan(retries []Retry, letters []DeadLetter) error {
	kvs := make([]Op, 0, len(retries)+len(letters))
	for i := range retries {
		kvs = append(kvs, del(retries[i].key))
	}
	for i := range letters {
		k, v, err := letters[i].kv()
		if err != nil {
			return err
		}
		kvs = append(kvs, set(k, v))
	}
	return s.space.Write(context.Background(), Batch{Ops: kvs, Sync: true})
}

// DueRetries returns up to limit retries due at or before now, earliest first, and the due time
// of the earliest retry not returned (zero when there is none).
func (s *Store) DueRetries(now time.Time, limit int) ([]Retry, time.Time, error) {
	return s.DueRetriesFrom(time.Time{}, now, limit)
}

// DueRetriesFrom is DueRetries over the retries due at or after from: a scheduler that already
// took everything due before from need not step over the entries it deleted.
func (s *Store) DueRetriesFrom(from, now time.Time, limit int) ([]Retry, time.Time, error) {
	lower := []byte(prefixRetry)
	if from.UnixNano() > 0 {
		lower = binary.BigEndian.AppendUint64(lower, uint64(from.UnixNano()))
	}
	var out []Retry
	var next time.Time
	err := s.space.Scan(lower, []byte("r0"), func(k, v []byte) error {
		r, err := decodeRetry(k, v)
		if err != nil {
			return err
		}
		if r.Due.After(now) || len(out) == limit {
			next = r.Due
			return errStop
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	return out, next, nil
}

// CountRetries returns how many messages wait for a retry.
func (s *Store) CountRetries() (int, error) {
	return s.count(prefixRetry, "r0")
}

func (s *Store) count(lower, upper string) (int, error) {
	n := 0
	err := s.space.Scan([]byte(lower), []byte(upper), func(_, _ []byte) error {
		n++
		return nil
	})
	return n, err
}

// Reinject appends due retries to their topics and removes their entries in the same fsync'd
// batch, so a retry is re-run once: never lost, never twice. With a fence (the scheduler's
// lease) the removal fails with ErrFenced once another instance took the lease over.
func (s *Store) Reinject(ctx context.Context, retries []Retry, fence *Lease) error {
	byTopic := map[string][]int{}
	var order []string
	for i, r := range retries {
		if _, ok := byTopic[r.Topic]; !ok {
			order = append(order, r.Topic)
		}
		byTopic[r.Topic] = append(byTopic[r.Topic], i)
	}
	for _, topic := range order {
		idx := byTopic[topic]
		msgs := make([]buffer.Message, len(idx))
		side := make([]Op, len(idx))
		for j, i := range idx {
			msgs[j] = buffer.Message{Key: retries[i].Key, Value: retries[i].Value}
			side[j] = del(retries[i].key)
		}
		if err := s.space.AppendWith(ctx, topic, msgs, Batch{Ops: side, Sync: true, Fence: fence}); err != nil {
			return fmt.Errorf("state: re-inject into %s: %w", topic, err)
		}
	}
	return nil
}
