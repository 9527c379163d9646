package embedded

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/weirhq/weir/internal/buffer"
)

// Key prefixes reserved by the log inside the shared Pebble instance. Every other user of
// (*Log).DB (the state store uses "s/", "d/", …) must keep to its own prefixes.
const (
	// PrefixRecords holds records: "l/" topic "/" partition (BE u32) offset (BE u64).
	PrefixRecords = "l/"
	// PrefixOffsets holds committed offsets: "o/" topic "/" group "/" partition (BE u32).
	PrefixOffsets = "o/"
	// PrefixTopics holds topic metadata: "t/" topic.
	PrefixTopics = "t/"
)

// maxNameLen bounds topic and group names (Kafka's limit, so that names carry across backends).
const maxNameLen = 249

// maxPartitions bounds the partition count of a topic; the key format has room for more, but a
// single process gains nothing from thousands of partitions.
const maxPartitions = 1 << 16

// recordHeaderLen is the CRC that starts every stored record value.
const recordHeaderLen = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// validName reports whether s may be used as a topic or group name: 1..249 bytes of
// [A-Za-z0-9._-]. The charset keeps '/' out so that "l/"+topic+"/" is a prefix of that topic's
// keys only, and it is the common subset that the other backends accept.
func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func checkName(kind, s string) error {
	if !validName(s) {
		return fmt.Errorf("embedded: invalid %s name %q: want 1-%d characters of [A-Za-z0-9._-]", kind, s, maxNameLen)
	}
	return nil
}

// recordPrefix returns "l/" topic "/".
func recordPrefix(topic string) []byte {
	b := make([]byte, 0, len(PrefixRecords)+len(topic)+1)
	b = append(b, PrefixRecords...)
	b = append(b, topic...)
	return append(b, '/')
}

// prefixEnd returns the smallest key greater than every key that starts with prefix. prefix
// always ends in '/', which is not 0xff, so incrementing the last byte is enough.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	end[len(end)-1]++
	return end
}

// appendRecordKey appends the key of (partition, offset) under a topic's record prefix.
func appendRecordKey(dst, prefix []byte, partition int, offset uint64) []byte {
	dst = append(dst, prefix...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(partition))
	return binary.BigEndian.AppendUint64(dst, offset)
}

// parseRecordKey returns the partition and offset of a record key under prefix.
func parseRecordKey(key, prefix []byte) (partition int, offset uint64, ok bool) {
	if len(key) != len(prefix)+12 {
		return 0, 0, false
	}
	rest := key[len(prefix):]
	return int(binary.BigEndian.Uint32(rest)), binary.BigEndian.Uint64(rest[4:]), true
}

// recordValueLen is the stored size of a message: CRC | uvarint keylen | key | value.
func recordValueLen(m *buffer.Message) int {
	return recordHeaderLen + uvarintLen(uint64(len(m.Key))) + len(m.Key) + len(m.Value)
}

// encodeRecordValue fills dst (of exactly recordValueLen(m) bytes) for the record stored under
// key. The CRC covers the storage key as well, so a value that turns up under another key
// (another topic, partition or offset) is caught like a flipped bit.
func encodeRecordValue(dst, key []byte, m *buffer.Message) {
	n := recordHeaderLen
	n += binary.PutUvarint(dst[n:], uint64(len(m.Key)))
	n += copy(dst[n:], m.Key)
	copy(dst[n:], m.Value)
	crc := crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, dst[recordHeaderLen:])
	binary.BigEndian.PutUint32(dst, crc)
}

// errBadChecksum is the cause wrapped (with buffer.ErrCorrupt) when a stored CRC does not match.
var errBadChecksum = errors.New("checksum mismatch")

// decodeRecordValue checks a stored value against its key and returns the message key and value
// (aliasing v).
func decodeRecordValue(key, v []byte) (mkey, mval []byte, err error) {
	if len(v) < recordHeaderLen+1 {
		return nil, nil, fmt.Errorf("value of %d bytes is too short: %w", len(v), errBadChecksum)
	}
	want := binary.BigEndian.Uint32(v)
	got := crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, v[recordHeaderLen:])
	if got != want {
		return nil, nil, fmt.Errorf("stored crc %08x, computed %08x: %w", want, got, errBadChecksum)
	}
	body := v[recordHeaderLen:]
	klen, n := binary.Uvarint(body)
	if n <= 0 || klen > uint64(len(body)-n) {
		// The CRC matched, so the writer produced this: a format bug, reported as corruption all
		// the same because the record cannot be read.
		return nil, nil, fmt.Errorf("bad key length: %w", errBadChecksum)
	}
	body = body[n:]
	return body[:klen], body[klen:], nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// appendOffsetKey appends "o/" topic "/" group "/" partition.
func appendOffsetKey(dst []byte, topic, group string, partition int) []byte {
	dst = append(dst, PrefixOffsets...)
	dst = append(dst, topic...)
	dst = append(dst, '/')
	dst = append(dst, group...)
	dst = append(dst, '/')
	return binary.BigEndian.AppendUint32(dst, uint32(partition))
}

// parseOffsetKey splits an offset key into topic, group and partition.
func parseOffsetKey(key []byte) (topic, group string, partition int, ok bool) {
	if len(key) < len(PrefixOffsets)+4 || string(key[:len(PrefixOffsets)]) != PrefixOffsets {
		return "", "", 0, false
	}
	rest := key[len(PrefixOffsets) : len(key)-4]
	if len(rest) == 0 || rest[len(rest)-1] != '/' {
		return "", "", 0, false
	}
	rest = rest[:len(rest)-1]
	i := bytes.IndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", 0, false
	}
	partition = int(binary.BigEndian.Uint32(key[len(key)-4:]))
	return string(rest[:i]), string(rest[i+1:]), partition, true
}

// offsetValueLen is BE u64 next offset | CRC32C(key, offset).
const offsetValueLen = 12

func encodeOffsetValue(dst, key []byte, next uint64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, next)
	crc := crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, dst[len(dst)-8:])
	return binary.BigEndian.AppendUint32(dst, crc)
}

func decodeOffsetValue(key, v []byte) (uint64, error) {
	if len(v) != offsetValueLen {
		return 0, fmt.Errorf("offset value of %d bytes: %w", len(v), errBadChecksum)
	}
	want := binary.BigEndian.Uint32(v[8:])
	if got := crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, v[:8]); got != want {
		return 0, fmt.Errorf("offset: stored crc %08x, computed %08x: %w", want, got, errBadChecksum)
	}
	return binary.BigEndian.Uint64(v), nil
}

// topicMetaVersion is the first byte of a topic's metadata after its CRC.
const topicMetaVersion = 1

// topicMeta is what "t/"+topic stores: the partition count and the groups registered for cleanup.
type topicMeta struct {
	partitions int
	groups     []string
}

func topicKey(topic string) []byte {
	return append([]byte(PrefixTopics), topic...)
}

// encodeTopicMeta returns CRC | version | uvarint partitions | uvarint ngroups | (uvarint len | name)*.
func encodeTopicMeta(key []byte, m topicMeta) []byte {
	b := make([]byte, recordHeaderLen, 32)
	b = append(b, topicMetaVersion)
	b = binary.AppendUvarint(b, uint64(m.partitions))
	b = binary.AppendUvarint(b, uint64(len(m.groups)))
	for _, g := range m.groups {
		b = binary.AppendUvarint(b, uint64(len(g)))
		b = append(b, g...)
	}
	crc := crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, b[recordHeaderLen:])
	binary.BigEndian.PutUint32(b, crc)
	return b
}

func decodeTopicMeta(key, v []byte) (topicMeta, error) {
	var m topicMeta
	if len(v) < recordHeaderLen+1 {
		return m, fmt.Errorf("topic metadata of %d bytes: %w", len(v), errBadChecksum)
	}
	want := binary.BigEndian.Uint32(v)
	if got := crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, v[recordHeaderLen:]); got != want {
		return m, fmt.Errorf("topic metadata: stored crc %08x, computed %08x: %w", want, got, errBadChecksum)
	}
	b := v[recordHeaderLen:]
	if b[0] != topicMetaVersion {
		return m, fmt.Errorf("topic metadata version %d is not supported", b[0])
	}
	b = b[1:]
	next := func() (uint64, bool) {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return x, true
	}
	parts, ok1 := next()
	ngroups, ok2 := next()
	if !ok1 || !ok2 || parts == 0 || parts > maxPartitions || ngroups > uint64(len(b)) {
		return m, errors.New("topic metadata: malformed header")
	}
	m.partitions = int(parts)
	for range ngroups {
		l, ok := next()
		if !ok || l > uint64(len(b)) {
			return m, errors.New("topic metadata: malformed group")
		}
		m.groups = append(m.groups, string(b[:l]))
		b = b[l:]
	}
	return m, nil
}
