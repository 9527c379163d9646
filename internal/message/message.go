// Package message defines the envelope that carries a partner message between Weir's stages, and
// its compact binary encoding in the buffer.
package message

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Message is one partner message as it moves through the stages. Payload is the canonical JSON
// document (after validation and, from the process stage on, after the transform).
type Message struct {
	ID       string    // message id: Idempotency-Key, the type's id pointer, or a UUIDv7
	Client   string    // client id of the sender
	Type     string    // message type
	Key      string    // ordering key (the type's key pointer), or ID when the type has none
	Endpoint string    // target endpoint on deliver topics; empty elsewhere
	Attempt  uint32    // attempts of the current stage that already failed (set by retries)
	FailedAt time.Time // when the current stage first failed it (zero before any failure)
	// Released marks a message of a strict-order key that waited behind a failed one and now
	// runs in its turn (see internal/retry).
	Released   bool
	ReceivedAt time.Time // when ingest accepted it
	Payload    []byte
}

// version 2 added FailedAt and flags; version 1 envelopes still decode.
const version = 2

const flagReleased = 1 << 0

// ErrMalformed is returned when bytes do not decode as a Message.
var ErrMalformed = errors.New("message: malformed envelope")

// Append encodes m onto dst and returns the extended slice.
func (m *Message) Append(dst []byte) []byte {
	dst = append(dst, version)
	dst = appendString(dst, m.ID)
	dst = appendString(dst, m.Client)
	dst = appendString(dst, m.Type)
	dst = appendString(dst, m.Key)
	dst = appendString(dst, m.Endpoint)
	dst = binary.AppendUvarint(dst, uint64(m.Attempt))
	var failed int64
	if !m.FailedAt.IsZero() {
		failed = m.FailedAt.UnixNano()
	}
	dst = binary.AppendVarint(dst, failed)
	var flags uint64
	if m.Released {
		flags |= flagReleased
	}
	dst = binary.AppendUvarint(dst, flags)
	dst = binary.AppendVarint(dst, m.ReceivedAt.UnixNano())
	dst = binary.AppendUvarint(dst, uint64(len(m.Payload)))
	return append(dst, m.Payload...)
}

// Encode returns the binary form of m.
func (m *Message) Encode() []byte {
	return m.Append(make([]byte, 0, 74+len(m.ID)+len(m.Client)+len(m.Type)+len(m.Key)+len(m.Payload)))
}

// Decode parses b into a Message. Payload aliases b.
func Decode(b []byte) (Message, error) {
	var m Message
	if len(b) == 0 || (b[0] != version && b[0] != 1) {
		return m, ErrMalformed
	}
	d := decoder{b: b[1:]}
	m.ID = d.string()
	m.Client = d.string()
	m.Type = d.string()
	m.Key = d.string()
	m.Endpoint = d.string()
	m.Attempt = uint32(d.uvarint())
	if b[0] >= 2 {
		if ns := d.varint(); ns != 0 {
			m.FailedAt = time.Unix(0, ns).UTC()
		}
		m.Released = d.uvarint()&flagReleased != 0
	}
	m.ReceivedAt = time.Unix(0, d.varint()).UTC()
	m.Payload = d.bytes()
	if d.err != nil || len(d.b) != 0 {
		return Message{}, fmt.Errorf("%w: %v", ErrMalformed, d.err)
	}
	return m, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errors.New("length past end")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }
