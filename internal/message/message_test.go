package message

import (
	"bytes"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	m := Message{ID: "ord-1", Client: "acme", Type: "order", Key: "cust-42", Endpoint: "partner", Attempt: 3,
		ReceivedAt: time.Date(2026, 11, 21, 12, 0, 0, 123, time.UTC), Payload: []byte(`{"a":1}`)}
	got, err := Decode(m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != m.ID || got.Client != m.Client || got.Type != m.Type || got.Key != m.Key || got.Endpoint != m.Endpoint ||
		got.Attempt != m.Attempt || !got.ReceivedAt.Equal(m.ReceivedAt) || !bytes.Equal(got.Payload, m.Payload) {
		t.Fatalf("round trip: %+v != %+v", got, m)
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	b := (&Message{ID: "x", Payload: []byte("{}")}).Encode()
	for _, bad := range [][]byte{nil, {9}, b[:len(b)-1], append(append([]byte{}, b...), 0)} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%q) succeeded", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add((&Message{ID: "a", Client: "b", Payload: []byte("{}")}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(m.Encode())
		if err != nil || again.ID != m.ID || !bytes.Equal(again.Payload, m.Payload) {
			t.Fatalf("re-encoding %q: %v", b, err)
		}
	})
}
