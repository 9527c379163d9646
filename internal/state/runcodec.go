package state

import (
	"encoding/binary"
	"errors"
	"time"
)

// A run is written after every step outcome, so its encoding is on the workflow's hot path: a
// compact binary form (strings and byte slices length-prefixed, times as Unix nanoseconds,
// numbers as varints) instead of JSON, which cost 14 µs a write.
const runVersion = 2

var errRunCorrupt = errors.New("state: workflow run is corrupt")

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(dst, 0)
	}
	return binary.AppendVarint(dst, t.UnixNano())
}

func (r *Run) encode() []byte {
	b := make([]byte, 0, 256+len(r.Steps)*64)
	b = append(b, runVersion)
	for _, s := range []string{r.ID, r.Workflow, r.Client, r.Type, r.MessageID, r.Key, r.State, r.Reason} {
		b = appendString(b, s)
	}
	for _, t := range []time.Time{r.ReceivedAt, r.StartedAt, r.UpdatedAt, r.FinishedAt, r.Deadline} {
		b = appendTime(b, t)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Steps)))
	for i := range r.Steps {
		s := &r.Steps[i]
		b = appendString(b, s.Name)
		b = appendString(b, s.Status)
		b = binary.AppendUvarint(b, uint64(s.Attempts))
		b = appendTime(b, s.StartedAt)
		b = appendTime(b, s.FinishedAt)
		b = appendTime(b, s.FailedAt)
		b = binary.AppendUvarint(b, uint64(s.Code))
		b = appendString(b, s.Error)
		b = appendBytes(b, s.Response)
		var unsure byte
		if s.Unsure {
			unsure = 1
		}
		b = append(b, unsure)
		b = appendTime(b, s.NextAt)
		c := s.Compensation
		if c == nil {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = appendString(b, c.Status)
		b = binary.AppendUvarint(b, uint64(c.Attempts))
		b = appendTime(b, c.At)
		b = appendTime(b, c.FailedAt)
		b = binary.AppendUvarint(b, uint64(c.Code))
		b = appendString(b, c.Error)
		b = appendString(b, c.Letter)
	}
	return b
}

// runReader reads an encoded run; the first malformed field sets bad.
type runReader struct {
	b   []byte
	bad bool
}

func (d *runReader) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *runReader) int() int { return int(d.uvarint()) }

func (d *runReader) time() time.Time {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad, d.b = true, nil
		return time.Time{}
	}
	d.b = d.b[n:]
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

func (d *runReader) bytes() []byte {
	v, rest, ok := readBytes(d.b)
	if !ok {
		d.bad, d.b = true, nil
		return nil
	}
	d.b = rest
	return v
}

func (d *runReader) string() string { return string(d.bytes()) }

func (d *runReader) byte() byte {
	if len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func decodeRun(v []byte) (*Run, error) {
	if len(v) == 0 || v[0] != runVersion {
		return nil, errRunCorrupt
	}
	d := &runReader{b: v[1:]}
	r := &Run{}
	for _, p := range []*string{&r.ID, &r.Workflow, &r.Client, &r.Type, &r.MessageID, &r.Key, &r.State, &r.Reason} {
		*p = d.string()
	}
	for _, p := range []*time.Time{&r.ReceivedAt, &r.StartedAt, &r.UpdatedAt, &r.FinishedAt, &r.Deadline} {
		*p = d.time()
	}
	n := d.int()
	if n > len(d.b) { // every step takes at least a byte
		return nil, errRunCorrupt
	}
	r.Steps = make([]StepRun, n)
	for i := range r.Steps {
		s := &r.Steps[i]
		s.Name, s.Status = d.string(), d.string()
		s.Attempts = d.int()
		s.StartedAt, s.FinishedAt, s.FailedAt = d.time(), d.time(), d.time()
		s.Code = d.int()
		s.Error = d.string()
		if resp := d.bytes(); len(resp) > 0 {
			s.Response = append([]byte(nil), resp...)
		}
		s.Unsure = d.byte() == 1
		s.NextAt = d.time()
		if d.byte() == 1 {
			c := &Compensation{Status: d.string(), Attempts: d.int(), At: d.time(), FailedAt: d.time(), Code: d.int()}
			c.Error, c.Letter = d.string(), d.string()
			s.Compensation = c
		}
	}
	if d.bad || len(d.b) != 0 {
		return nil, errRunCorrupt
	}
	r.saved = r.State
	return r, nil
}
