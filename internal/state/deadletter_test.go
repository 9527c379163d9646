package state_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/state"
)

// letterBase is when the first test dead letter was written.
var letterBase = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

// letterSpec is a dead letter written at letterBase+At.
type letterSpec struct {
	At                                    time.Duration
	Type, Client, Endpoint, Stage, Reason string
}

// writeLetters stores one dead letter per spec and returns them as written, in spec order.
func writeLetters(t *testing.T, s *state.Store, specs ...letterSpec) []state.DeadLetter {
	t.Helper()
	letters := make([]state.DeadLetter, len(specs))
	for i, sp := range specs {
		at := letterBase.Add(sp.At)
		letters[i] = state.DeadLetter{ID: state.NewLetterID(at), Topic: "in", Stage: sp.Stage, Endpoint: sp.Endpoint,
			Client: sp.Client, Type: sp.Type, MessageID: fmt.Sprintf("msg-%d", i), Reason: sp.Reason,
			Error: "boom", Attempts: i + 1, FirstAt: at.Add(-time.Hour), LastAt: at, Code: 500 + i,
			Response: "busy", Key: []byte(fmt.Sprintf("key-%d", i)), Message: []byte(fmt.Sprintf("envelope-%d", i))}
	}
	if err := s.Failures(state.Failures{Letters: letters}); err != nil {
		t.Fatal(err)
	}
	return letters
}

// fiveLetters are written a minute apart, with varied attributes.
var fiveLetters = []letterSpec{
	{0, "order", "a", "e1", "deliver", state.ReasonExhausted},
	{time.Minute, "invoice", "a", "e1", "deliver", state.ReasonPermanent},
	{2 * time.Minute, "order", "b", "", "process", state.ReasonPermanent},
	{3 * time.Minute, "order", "a", "e2", "deliver", state.ReasonGone},
	{4 * time.Minute, "order", "a", "", "persist", state.ReasonRemoved},
}

// indexes maps listed letters back to their index in written (by id), failing on strangers.
func indexes(t *testing.T, written, listed []state.DeadLetter) []int {
	t.Helper()
	out := []int{}
	for _, d := range listed {
		i := slices.IndexFunc(written, func(w state.DeadLetter) bool { return w.ID == d.ID })
		if i < 0 {
			t.Fatalf("listed a dead letter that was never written: %+v", d)
		}
		out = append(out, i)
	}
	return out
}

func list(t *testing.T, s *state.Store, f state.LetterFilter) []state.DeadLetter {
	t.Helper()
	ls, err := s.DeadLetters(f)
	if err != nil {
		t.Fatalf("DeadLetters(%+v): %v", f, err)
	}
	return ls
}

func testDeadLetterFilters(t *testing.T) {
	s := open(t)
	w := writeLetters(t, s, fiveLetters...)
	minute := func(n int) time.Time { return letterBase.Add(time.Duration(n) * time.Minute) }
	cases := []struct {
		name string
		f    state.LetterFilter
		want []int
	}{
		{"all", state.LetterFilter{}, []int{0, 1, 2, 3, 4}},
		{"type", state.LetterFilter{Type: "order"}, []int{0, 2, 3, 4}},
		{"client", state.LetterFilter{Client: "b"}, []int{2}},
		{"endpoint", state.LetterFilter{Endpoint: "e1"}, []int{0, 1}},
		{"stage", state.LetterFilter{Stage: "deliver"}, []int{0, 1, 3}},
		{"reason", state.LetterFilter{Reason: state.ReasonPermanent}, []int{1, 2}},
		{"type, client and stage", state.LetterFilter{Type: "order", Client: "a", Stage: "deliver"}, []int{0, 3}},
		{"no match", state.LetterFilter{Client: "nobody"}, []int{}},
		{"since, inclusive", state.LetterFilter{Since: minute(1)}, []int{1, 2, 3, 4}},
		{"since, a nanosecond later", state.LetterFilter{Since: minute(1).Add(1)}, []int{2, 3, 4}},
		{"until, exclusive", state.LetterFilter{Until: minute(3)}, []int{0, 1, 2}},
		{"until, a nanosecond later", state.LetterFilter{Until: minute(3).Add(1)}, []int{0, 1, 2, 3}},
		{"since and until", state.LetterFilter{Since: minute(1), Until: minute(3)}, []int{1, 2}},
		{"empty range", state.LetterFilter{Since: minute(2), Until: minute(2)}, []int{}},
		{"before every letter", state.LetterFilter{Until: letterBase}, []int{}},
		{"after", state.LetterFilter{After: w[1].ID}, []int{2, 3, 4}},
		{"after the last", state.LetterFilter{After: w[4].ID}, []int{}},
		{"after, with an earlier since", state.LetterFilter{After: w[1].ID, Since: letterBase}, []int{2, 3, 4}},
		{"after, with a later since", state.LetterFilter{After: w[1].ID, Since: minute(3)}, []int{3, 4}},
		{"after and reason", state.LetterFilter{After: w[1].ID, Reason: state.ReasonPermanent}, []int{2}},
		{"limit", state.LetterFilter{Limit: 2}, []int{0, 1}},
		{"limit counts matches only", state.LetterFilter{Type: "order", Limit: 2}, []int{0, 2}},
		{"limit above the count", state.LetterFilter{Limit: 10}, []int{0, 1, 2, 3, 4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := indexes(t, w, list(t, s, c.f)); !slices.Equal(got, c.want) {
				t.Fatalf("got letters %v, want %v", got, c.want)
			}
		})
	}
}

// Listing page by page with After and Limit visits every letter once, in order.
func testDeadLetterPaging(t *testing.T) {
	s := open(t)
	w := writeLetters(t, s, fiveLetters...)
	var pages [][]int
	after := ""
	for range 10 {
		page := list(t, s, state.LetterFilter{After: after, Limit: 2})
		if len(page) == 0 {
			break
		}
		pages = append(pages, indexes(t, w, page))
		after = page[len(page)-1].ID
	}
	if want := [][]int{{0, 1}, {2, 3}, {4}}; fmt.Sprint(pages) != fmt.Sprint(want) {
		t.Fatalf("pages %v, want %v", pages, want)
	}
}

// A dead letter reads back as it was written.
func testDeadLetterRoundTrip(t *testing.T) {
	s := open(t)
	w := writeLetters(t, s, fiveLetters[3])[0]
	got, err := s.DeadLetter(w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != w.ID || got.Topic != w.Topic || got.Stage != w.Stage || got.Endpoint != w.Endpoint ||
		got.Client != w.Client || got.Type != w.Type || got.MessageID != w.MessageID || got.Reason != w.Reason ||
		got.Error != w.Error || got.Attempts != w.Attempts || !got.FirstAt.Equal(w.FirstAt) || !got.LastAt.Equal(w.LastAt) ||
		got.Code != w.Code || got.Response != w.Response || !bytes.Equal(got.Key, w.Key) || !bytes.Equal(got.Message, w.Message) {
		t.Fatalf("read %+v\nwrote %+v", got, w)
	}
	if _, err := s.DeadLetter(state.NewLetterID(letterBase)); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}
}

// IDs of letters written at the same instant are distinct and in time order across instants.
func TestNewLetterIDOrder(t *testing.T) {
	a, b := state.NewLetterID(letterBase), state.NewLetterID(letterBase)
	later := state.NewLetterID(letterBase.Add(time.Nanosecond))
	if a == b || a >= later || b >= later {
		t.Fatalf("ids %s %s then %s", a, b, later)
	}
	if p := state.NewLetterIDPrefix(letterBase); len(a) <= len(p) || a[:len(p)] != p {
		t.Fatalf("id %s does not start with its time prefix %s", a, p)
	}
}

func testDiscard(t *testing.T) {
	s := open(t)
	w := writeLetters(t, s, fiveLetters...)
	n, err := s.Discard([]string{w[0].ID, w[2].ID, state.NewLetterID(letterBase.Add(time.Hour))})
	if err != nil || n != 2 {
		t.Fatalf("Discard: %d, %v; want 2", n, err)
	}
	if got := indexes(t, w, list(t, s, state.LetterFilter{})); !slices.Equal(got, []int{1, 3, 4}) {
		t.Fatalf("after discard: %v", got)
	}
	if _, err := s.DeadLetter(w[0].ID); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("discarded letter: %v", err)
	}
	if n, err := s.Discard([]string{w[0].ID}); err != nil || n != 0 {
		t.Fatalf("second Discard: %d, %v; want 0", n, err)
	}
	if n, err := s.Discard(nil); err != nil || n != 0 {
		t.Fatalf("Discard(nil): %d, %v", n, err)
	}
}

// Discard "returns how many existed": an id listed twice existed once.
func testDiscardDuplicateID(t *testing.T) {
	s := open(t)
	w := writeLetters(t, s, fiveLetters[0])
	if n, err := s.Discard([]string{w[0].ID, w[0].ID}); err != nil || n != 1 {
		t.Fatalf("Discard([id id]): %d, %v; want 1", n, err)
	}
}

func testExpireDeadLetters(t *testing.T) {
	s := open(t)
	w := writeLetters(t, s, fiveLetters...)
	retry := state.Retry{Topic: "in", Due: letterBase, Key: []byte("k"), Value: []byte("v")}
	if err := s.Failures(state.Failures{Retries: []state.Retry{retry}}); err != nil {
		t.Fatal(err)
	}

	if err := s.ExpireDeadLetters(letterBase); err != nil {
		t.Fatal(err)
	}
	if got := indexes(t, w, list(t, s, state.LetterFilter{})); len(got) != 5 {
		t.Fatalf("expiry at the first letter's time removed some: %v left", got)
	}
	// The cutoff is exclusive: the letter written exactly at it stays.
	if err := s.ExpireDeadLetters(letterBase.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := indexes(t, w, list(t, s, state.LetterFilter{})); !slices.Equal(got, []int{2, 3, 4}) {
		t.Fatalf("after expiry: %v, want [2 3 4]", got)
	}
	if n, err := s.CountRetries(); err != nil || n != 1 {
		t.Fatalf("expiring dead letters touched the retries: %d, %v", n, err)
	}
}

// openWithLog is open, also returning the log for reading topic "in".
func openWithLog(t *testing.T) (*embedded.Log, *state.Store) {
	t.Helper()
	l := openLog(t, t.TempDir())
	t.Cleanup(func() { l.Close() })
	s, err := storeOn(t, l)
	if err != nil {
		t.Fatal(err)
	}
	return l, s
}

// consumeN reads n records of topic "in" with a fresh group, and checks that no more follow.
func consumeN(t *testing.T, l *embedded.Log, n int) []buffer.Record {
	t.Helper()
	c, err := l.Consume(context.Background(), "in", "check")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []buffer.Record
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(out) < n {
		recs, err := c.Fetch(ctx, n+1)
		if err != nil {
			t.Fatalf("fetched %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if more, _ := c.Fetch(short, 10); len(out)+len(more) != n {
		t.Fatalf("fetched %d records, want %d", len(out)+len(more), n)
	}
	return out
}

// Replay appends each letter to its topic with the message reset made, and removes the letter.
func testStoreReplay(t *testing.T) {
	l, s := openWithLog(t)
	w := writeLetters(t, s, fiveLetters[0], fiveLetters[1])
	var reset []string
	fresh := func(d *state.DeadLetter) []byte {
		reset = append(reset, d.ID)
		return append([]byte("fresh:"), d.Message...)
	}
	done, err := s.Replay(context.Background(), []string{w[1].ID, state.NewLetterID(letterBase.Add(time.Hour)), w[0].ID}, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(done, []string{w[1].ID, w[0].ID}) || !slices.Equal(reset, done) {
		t.Fatalf("replayed %v (reset %v)", done, reset)
	}
	if ls := list(t, s, state.LetterFilter{}); len(ls) != 0 {
		t.Fatalf("%d letters left after replay", len(ls))
	}
	got := map[string]string{}
	for _, r := range consumeN(t, l, 2) {
		got[string(r.Key)] = string(r.Value)
	}
	if got["key-0"] != "fresh:envelope-0" || got["key-1"] != "fresh:envelope-1" {
		t.Fatalf("replayed records %v", got)
	}
	trail, err := s.Trail("a", "msg-1")
	if err != nil || len(trail) != 1 || trail[0].Status != state.StatusReplayed || trail[0].Letter != w[1].ID {
		t.Fatalf("trail after replay: %+v, %v", trail, err)
	}
	if done, err := s.Replay(context.Background(), []string{w[0].ID}, fresh); err != nil || len(done) != 0 {
		t.Fatalf("second replay: %v, %v", done, err)
	}
}

// Replay with one id listed twice appends its message once.
func testStoreReplayDuplicateID(t *testing.T) {
	l, s := openWithLog(t)
	w := writeLetters(t, s, fiveLetters[0])
	done, err := s.Replay(context.Background(), []string{w[0].ID, w[0].ID}, func(d *state.DeadLetter) []byte { return d.Message })
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 {
		t.Errorf("replayed %v, want the id once", done)
	}
	consumeN(t, l, 1)
}

func retryAt(due time.Duration, partition int, offset uint64) state.Retry {
	return state.Retry{Topic: "in", Due: letterBase.Add(due), Key: []byte(fmt.Sprintf("key-%d-%d", partition, offset)),
		Value: []byte(fmt.Sprintf("value-%d-%d", partition, offset)), Partition: partition, Offset: offset}
}

func dueKeys(rs []state.Retry) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, string(r.Key))
	}
	return out
}

func testDueRetries(t *testing.T) {
	s := open(t)
	err := s.Failures(state.Failures{Retries: []state.Retry{
		retryAt(3*time.Second, 0, 1), retryAt(time.Second, 1, 5), retryAt(2*time.Second, 0, 2), retryAt(2*time.Second, 1, 1),
	}})
	if err != nil {
		t.Fatal(err)
	}
	sec := func(n int) time.Time { return letterBase.Add(time.Duration(n) * time.Second) }
	cases := []struct {
		now   time.Time
		limit int
		want  []string
		next  time.Time
	}{
		{letterBase, 10, []string{}, sec(1)},
		{sec(1).Add(-1), 10, []string{}, sec(1)},
		{sec(1), 10, []string{"key-1-5"}, sec(2)},
		{sec(2), 10, []string{"key-1-5", "key-0-2", "key-1-1"}, sec(3)},
		{sec(10), 10, []string{"key-1-5", "key-0-2", "key-1-1", "key-0-1"}, time.Time{}},
		{sec(10), 1, []string{"key-1-5"}, sec(2)},
		{sec(10), 3, []string{"key-1-5", "key-0-2", "key-1-1"}, sec(3)},
	}
	for _, c := range cases {
		due, next, err := s.DueRetries(c.now, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := dueKeys(due); !slices.Equal(got, c.want) || !next.Equal(c.next) {
			t.Errorf("DueRetries(t+%s, %d) = %v, next %s; want %v, next %s", c.now.Sub(letterBase), c.limit, got, next, c.want, c.next)
		}
		for _, r := range due {
			if r.Topic != "in" || string(r.Value) != "value-"+string(r.Key)[len("key-"):] {
				t.Errorf("retry read back as %+v", r)
			}
		}
	}

	// The same failed record written again for the same due time replaces its entry.
	if err := s.Failures(state.Failures{Retries: []state.Retry{retryAt(time.Second, 1, 5)}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountRetries(); err != nil || n != 4 {
		t.Fatalf("%d retries, %v; want 4", n, err)
	}
}

// Reinject appends due retries to their topic and removes them, in one batch.
func testReinject(t *testing.T) {
	l, s := openWithLog(t)
	if err := s.Failures(state.Failures{Retries: []state.Retry{retryAt(time.Second, 0, 1), retryAt(time.Minute, 0, 2)}}); err != nil {
		t.Fatal(err)
	}
	due, _, err := s.DueRetries(letterBase.Add(time.Second), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due: %v, %v", due, err)
	}
	if err := s.Reinject(context.Background(), due, nil); err != nil {
		t.Fatal(err)
	}
	recs := consumeN(t, l, 1)
	if string(recs[0].Key) != "key-0-1" || string(recs[0].Value) != "value-0-1" {
		t.Fatalf("re-injected %q=%q", recs[0].Key, recs[0].Value)
	}
	left, next, err := s.DueRetries(letterBase.Add(time.Hour), 10)
	if err != nil || !slices.Equal(dueKeys(left), []string{"key-0-2"}) || !next.IsZero() {
		t.Fatalf("left after re-injection: %v, next %s, %v", dueKeys(left), next, err)
	}
}

// Retries, dead letters and their events are in the log's database: they survive a restart.
func testRetriesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	s, err := storeOn(t, l)
	if err != nil {
		t.Fatal(err)
	}
	retries := []state.Retry{retryAt(time.Hour, 0, 1), retryAt(time.Minute, 1, 9)}
	letter := state.DeadLetter{ID: state.NewLetterID(letterBase), Topic: "in", Client: "a", Type: "order",
		MessageID: "m1", Reason: state.ReasonPermanent, Attempts: 1, FirstAt: letterBase, LastAt: letterBase,
		Key: []byte("k"), Message: []byte("envelope")}
	event := state.Event{Client: "a", ID: "m2", Type: "order", Stage: "deliver", Status: state.StatusRetrying,
		At: letterBase, Attempts: 1, NextAt: letterBase.Add(time.Minute)}
	if err := s.Failures(state.Failures{Retries: retries, Letters: []state.DeadLetter{letter}, Events: []state.Event{event}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, dir)
	t.Cleanup(func() { l.Close() })
	if s, err = storeOn(t, l); err != nil {
		t.Fatal(err)
	}
	due, next, err := s.DueRetries(letterBase.Add(24*time.Hour), 10)
	if err != nil || !next.IsZero() {
		t.Fatalf("after reopen: next %s, %v", next, err)
	}
	if len(due) != 2 || string(due[0].Key) != "key-1-9" || string(due[1].Key) != "key-0-1" ||
		!due[0].Due.Equal(letterBase.Add(time.Minute)) || !due[1].Due.Equal(letterBase.Add(time.Hour)) ||
		string(due[0].Value) != "value-1-9" || due[0].Topic != "in" {
		t.Fatalf("retries after reopen: %+v", due)
	}
	if d, err := s.DeadLetter(letter.ID); err != nil || d.MessageID != "m1" || string(d.Message) != "envelope" {
		t.Fatalf("dead letter after reopen: %+v, %v", d, err)
	}
	if tr, err := s.Trail("a", "m2"); err != nil || len(tr) != 1 || !tr[0].NextAt.Equal(event.NextAt) {
		t.Fatalf("trail after reopen: %+v, %v", tr, err)
	}
	// The reopened retries can still be re-injected (their store keys decode).
	if err := s.Reinject(context.Background(), due[:1], nil); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountRetries(); err != nil || n != 1 {
		t.Fatalf("%d retries after re-injecting one, %v", n, err)
	}
}

// A notification with no messages must not make Failures drop what it was asked to write.
func testFailuresWithEmptyNotification(t *testing.T) {
	s := open(t)
	letter := state.DeadLetter{ID: state.NewLetterID(letterBase), Topic: "in", Reason: state.ReasonPermanent}
	if err := s.Failures(state.Failures{Letters: []state.DeadLetter{letter}, Notify: &state.Notification{Topic: "in"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeadLetter(letter.ID); err != nil {
		t.Fatalf("dead letter written with an empty notification: %v", err)
	}
}

// With a notification, its messages and the dead letters are written together.
func testFailuresWithNotification(t *testing.T) {
	l, s := openWithLog(t)
	letter := state.DeadLetter{ID: state.NewLetterID(letterBase), Topic: "in", Reason: state.ReasonPermanent}
	n := &state.Notification{Topic: "in", Msgs: []buffer.Message{{Key: []byte("ops"), Value: []byte("1 dead letter")}}}
	if err := s.Failures(state.Failures{Letters: []state.DeadLetter{letter}, Notify: n}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeadLetter(letter.ID); err != nil {
		t.Fatal(err)
	}
	if recs := consumeN(t, l, 1); string(recs[0].Value) != "1 dead letter" {
		t.Fatalf("notification %q", recs[0].Value)
	}
	// An unknown notification topic fails the batch and writes none of it.
	other := state.DeadLetter{ID: state.NewLetterID(letterBase.Add(time.Second)), Topic: "in", Reason: state.ReasonPermanent}
	n.Topic = "nope"
	if err := s.Failures(state.Failures{Letters: []state.DeadLetter{other}, Notify: n}); err == nil {
		t.Fatal("notification to an unknown topic accepted")
	}
	if _, err := s.DeadLetter(other.ID); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("dead letter of a failed batch: %v", err)
	}
}
