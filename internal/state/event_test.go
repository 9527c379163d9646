package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
)

// The hand-written event encoding is byte for byte what encoding/json writes.
func TestAppendEventJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", " ", "\"", "\\", "/", "<", ">", "&", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f",
		"é", "日本", "\u2028", "\u2029", "😀", "\xff", "\xc3"}
	str := func() string {
		if rng.IntN(4) == 0 {
			return ""
		}
		var b []byte
		for range rng.IntN(12) {
			b = append(b, alphabet[rng.IntN(len(alphabet))]...)
		}
		return string(b)
	}
	at := func() time.Time {
		if rng.IntN(5) == 0 {
			return time.Time{}
		}
		zones := []*time.Location{time.UTC, time.FixedZone("x", 3600+1800), time.FixedZone("y", -7*3600)}
		return time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)*int64(rng.IntN(2))).In(zones[rng.IntN(len(zones))])
	}
	for i := range 20000 {
		e := Event{Type: str(), Stage: str(), Endpoint: str(), Status: str(), At: at(), Attempts: rng.IntN(3) * rng.IntN(100),
			Code: rng.IntN(2) * (100 + rng.IntN(500)), Error: str(), NextAt: at(), Reason: str(), Letter: str()}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEventJSON(nil, &e); !bytes.Equal(got, want) {
			t.Fatalf("event %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func BenchmarkEventJSON(b *testing.B) {
	e := Event{Type: "order", Stage: "ingest", Status: StatusAccepted, At: time.Now()}
	b.Run("hand", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = appendEventJSON(buf[:0], &e)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(e)
		}
	})
}

// Receipts appended together share one expiry entry, filed under the latest of them; entries
// written one per receipt (as before grouping) still expire.
func TestExpiryEntries(t *testing.T) {
	l, err := embedded.Open(embedded.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.EnsureTopic(context.Background(), buffer.TopicConfig{Name: "in", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	s, err := New(l)
	if err != nil {
		t.Fatal(err)
	}
	at, later := time.Unix(1000, 0), time.Unix(2000, 0)
	var accepts []Accept
	var msgs []buffer.Message
	for i, when := range []time.Time{at.Add(-2 * time.Millisecond), at.Add(-time.Millisecond), at, later} {
		id := fmt.Sprint("m", i)
		accepts = append(accepts, Accept{Client: "a", Type: "t", ID: id, Receipt: Receipt{AcceptedAt: when}})
		msgs = append(msgs, buffer.Message{Key: []byte(id), Value: []byte(id)})
	}
	if err := s.Append(context.Background(), "in", msgs[:3], accepts[:3]); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(context.Background(), "in", msgs[3:], accepts[3:]); err != nil {
		t.Fatal(err)
	}
	n := 0
	s.space.Scan([]byte(prefixExpiry), []byte("x0"), func(_, _ []byte) error { n++; return nil })
	if n != 2 {
		t.Fatalf("%d expiry entries for 4 receipts in 2 appends, want 2", n)
	}
	// An entry of the old shape: the dedup key in the key, no value.
	dk := dedupKey("a", "t", "old")
	v := make([]byte, sha256.Size+8)
	binary.BigEndian.PutUint64(v[sha256.Size:], uint64(at.UnixNano()))
	if err := s.space.Write(context.Background(), Batch{Ops: []Op{set(dk, v), set(expiryKey(at, dk), []byte{})}}); err != nil {
		t.Fatal(err)
	}
	s.seen.add(dk)
	if got, err := s.ExpireReceipts(at); err != nil || got != 0 {
		t.Fatalf("expired %d (%v) before the group's latest receipt was due", got, err)
	}
	if got, err := s.ExpireReceipts(at.Add(time.Second)); err != nil || got != 4 {
		t.Fatalf("expired %d (%v), want the 3 grouped and the old one", got, err)
	}
	for _, id := range []string{"m0", "m1", "m2", "old"} {
		if _, ok, _ := s.Receipt("a", "t", id); ok {
			t.Fatalf("receipt %s survived its expiry", id)
		}
	}
	if _, ok, _ := s.Receipt("a", "t", "m3"); !ok {
		t.Fatal("a later receipt expired early")
	}
}
