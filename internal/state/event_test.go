package state

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
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
