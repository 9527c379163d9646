package state_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/state"
)

// accept appends one record per accept to a test topic with its receipt.
func accept(t *testing.T, s *state.Store, accepts []state.Accept) {
	t.Helper()
	msgs := make([]buffer.Message, len(accepts))
	for i, a := range accepts {
		msgs[i] = buffer.Message{Key: []byte(a.ID), Value: []byte(a.ID)}
	}
	if err := s.Append(context.Background(), "in", msgs, accepts); err != nil {
		t.Fatal(err)
	}
}

func openLog(t *testing.T, dir string) *embedded.Log {
	t.Helper()
	l, err := embedded.Open(embedded.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.EnsureTopic(context.Background(), buffer.TopicConfig{Name: "in", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	return l
}

func open(t *testing.T) *state.Store {
	t.Helper()
	l := openLog(t, t.TempDir())
	t.Cleanup(func() { l.Close() })
	s, err := storeOn(t, l)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testReceiptsTrailsAndExpiry(t *testing.T) {
	s := open(t)
	old := time.Now().Add(-8 * 24 * time.Hour)
	now := time.Now()
	h := sha256.Sum256([]byte("body"))
	accept(t, s, []state.Accept{
		{Client: "a", Type: "order", ID: "old", Receipt: state.Receipt{BodyHash: h, AcceptedAt: old}},
		{Client: "a", Type: "order", ID: "new", Receipt: state.Receipt{BodyHash: h, AcceptedAt: now}},
	})
	s.Record(state.Event{Client: "a", ID: "new", Type: "order", Stage: "persist", Status: state.StatusPersisted, At: now})
	r, ok, err := s.Receipt("a", "order", "new")
	if err != nil || !ok || r.BodyHash != h {
		t.Fatalf("receipt: %v %v %v", r, ok, err)
	}
	if _, ok, _ := s.Receipt("b", "order", "new"); ok {
		t.Fatal("another client's receipt found")
	}
	trail, _ := s.Trail("a", "new", "order")
	if len(trail) != 2 || trail[0].Status != state.StatusAccepted || trail[1].Status != state.StatusPersisted {
		t.Fatalf("trail: %+v", trail)
	}
	if trail, _ := s.Trail("b", "new", "order"); len(trail) != 0 {
		t.Fatal("another client's trail visible")
	}
	n, err := s.ExpireReceipts(now.Add(-7 * 24 * time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("expired %d, %v", n, err)
	}
	if _, ok, _ := s.Receipt("a", "order", "old"); ok {
		t.Fatal("old receipt kept")
	}
	if trail, _ := s.Trail("a", "old", "order"); len(trail) != 0 {
		t.Fatal("old trail kept")
	}
	if _, ok, _ := s.Receipt("a", "order", "new"); !ok {
		t.Fatal("new receipt expired")
	}
	if n, _ := s.ExpireReceipts(now.Add(-7 * 24 * time.Hour)); n != 0 {
		t.Fatalf("second expiry removed %d", n)
	}
}

// Receipts are found after a restart: the in-memory filter is refilled from the store.
func testReceiptsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	s, _ := storeOn(t, l)
	h := sha256.Sum256([]byte("x"))
	var accepts []state.Accept
	for i := range 1000 {
		accepts = append(accepts, state.Accept{Client: "a", Type: "t", ID: fmt.Sprint(i), Receipt: state.Receipt{BodyHash: h, AcceptedAt: time.Now()}})
	}
	accept(t, s, accepts)
	l.Close()
	l = openLog(t, dir)
	defer l.Close()
	s, err := storeOn(t, l)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if _, ok, err := s.Receipt("a", "t", fmt.Sprint(i)); !ok || err != nil {
			t.Fatalf("receipt %d lost after reopen (%v)", i, err)
		}
	}
	if _, ok, _ := s.Receipt("a", "t", "1000"); ok {
		t.Fatal("a receipt that was never written")
	}
}

// One client may use an id for two types: each has its own trail and its own expiry.
func testSameIDTwoTypes(t *testing.T) {
	s := open(t)
	h := sha256.Sum256([]byte("x"))
	old, now := time.Now().Add(-30*24*time.Hour), time.Now()
	accept(t, s, []state.Accept{
		{Client: "a", Type: "order", ID: "1", Receipt: state.Receipt{BodyHash: h, AcceptedAt: old}},
		{Client: "a", Type: "invoice", ID: "1", Receipt: state.Receipt{BodyHash: h, AcceptedAt: now}},
	})
	if trail, _ := s.Trail("a", "1", "invoice", "order"); len(trail) != 2 {
		t.Fatalf("trail: %+v", trail)
	}
	if n, err := s.ExpireReceipts(now.Add(-7 * 24 * time.Hour)); n != 1 || err != nil {
		t.Fatalf("expired %d, %v", n, err)
	}
	trail, _ := s.Trail("a", "1", "invoice", "order")
	if len(trail) != 1 || trail[0].Type != "invoice" {
		t.Fatalf("trail after expiry: %+v", trail)
	}
}
