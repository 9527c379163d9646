package sqlsink

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/message"
)

func jsonEqual(t testing.TB, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("stored payload %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(g, w)
}

func TestRedelivery(t *testing.T) {
	conformance(t, func(t *testing.T, e *env) {
		name := e.tableName("orders")
		tbl := e.table(t, TableConfig{Name: name})
		var first, second []message.Message
		for i := range 10 {
			id := fmt.Sprintf("m%d", i)
			first = append(first, msg(id, `{"v":1}`))
			second = append(second, msg(id, `{"v":2}`))
		}
		for range 2 {
			if err := tbl.Write(t.Context(), first); err != nil {
				t.Fatal(err)
			}
		}
		if n := e.count(t, name); n != 10 {
			t.Fatalf("after the same batch twice: %d rows, want 10", n)
		}
		if err := tbl.Write(t.Context(), second); err != nil {
			t.Fatal(err)
		}
		got := e.payloads(t, name)
		if len(got) != 10 {
			t.Fatalf("after redelivery with new payloads: %d rows, want 10", len(got))
		}
		for id, p := range got {
			if !jsonEqual(t, p, `{"v":2}`) {
				t.Errorf("%s: payload %s, want the last one", id, p)
			}
		}
		// A second Table value on the same table (another stage instance) sees the same rows.
		again := e.table(t, TableConfig{Name: name})
		if err := again.Write(t.Context(), first[:1]); err != nil {
			t.Fatal(err)
		}
		if n := e.count(t, name); n != 10 {
			t.Fatalf("%d rows, want 10", n)
		}
	})
}

func TestDuplicatesInBatch(t *testing.T) {
	conformance(t, func(t *testing.T, e *env) {
		name := e.tableName("orders")
		tbl := e.table(t, TableConfig{Name: name})
		other := msg("a", `{"v":"other client"}`)
		other.Client = "globex"
		batch := []message.Message{
			msg("a", `{"v":1}`), msg("b", `{"v":1}`), msg("a", `{"v":2}`), other, msg("a", `{"v":3}`),
		}
		if err := tbl.Write(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
		rows := e.query(t, "SELECT client, id, CAST(payload AS TEXT) FROM "+quoteName(name)+" ORDER BY client, id")
		want := [][3]string{{"acme", "a", `{"v":3}`}, {"acme", "b", `{"v":1}`}, {"globex", "a", `{"v":"other client"}`}}
		if len(rows) != len(want) {
			t.Fatalf("%d rows, want %d", len(rows), len(want))
		}
		for i, w := range want {
			if *rows[i][0] != w[0] || *rows[i][1] != w[1] || !jsonEqual(t, *rows[i][2], w[2]) {
				t.Errorf("row %d = %s/%s %s, want %v", i, *rows[i][0], *rows[i][1], *rows[i][2], w)
			}
		}
	})
}

func TestColumns(t *testing.T) {
	conformance(t, func(t *testing.T, e *env) {
		name := e.tableName("typed")
		tbl := e.table(t, TableConfig{Name: name, Columns: []Column{
			{Name: "customer", Pointer: "/customer/id"}, // Type defaults to text
			{Name: "qty", Pointer: "/items/0/qty", Type: Integer},
			{Name: "qty_text", Pointer: "/items/1/qty", Type: Integer},
			{Name: "price", Pointer: "/items/0/price", Type: Numeric},
			{Name: "paid", Pointer: "/paid", Type: Boolean},
			{Name: "ts", Pointer: "/ts", Type: Timestamp},
			{Name: "customer_doc", Pointer: "/customer", Type: JSON},
			{Name: "slashed", Pointer: "/a~1b", Type: Text},
			{Name: "tilde", Pointer: "/m~0n", Type: Text},
			{Name: "num_as_text", Pointer: "/items/0/price", Type: Text},
			{Name: "missing", Pointer: "/nope/deeper", Type: Integer},
			{Name: "Mixed_Case1", Pointer: "/paid", Type: Text},
		}})
		full := msg("full", `{"customer":{"id":"cust-42","tier":"gold"},"items":[{"qty":2,"price":12.50},{"qty":"3"}],
			"paid":true,"ts":"2026-01-01T13:00:00.5+01:00","a/b":"slash","m~n":"tilde"}`)
		sparse := msg("sparse", `{"customer":null,"items":[],"paid":false}`)
		wrote := time.Now()
		if err := tbl.Write(t.Context(), []message.Message{full, sparse}); err != nil {
			t.Fatal(err)
		}
		rows := e.query(t, `SELECT id, client, type, msg_key, CAST(received_at AS TEXT), CAST(written_at AS TEXT),
			customer, CAST(qty AS TEXT), CAST(qty_text AS TEXT), CAST(price AS TEXT), CAST(paid AS TEXT), CAST(ts AS TEXT),
			CAST(customer_doc AS TEXT), slashed, tilde, num_as_text, CAST(missing AS TEXT), "Mixed_Case1"
			FROM `+quoteName(name)+` ORDER BY id`)
		if len(rows) != 2 {
			t.Fatalf("%d rows, want 2", len(rows))
		}
		str := func(p *string) string {
			if p == nil {
				return "NULL"
			}
			return *p
		}
		f := rows[0]
		for i, want := range []string{"full", "acme", "order", "k-full"} {
			if str(f[i]) != want {
				t.Errorf("standard column %d = %s, want %s", i, str(f[i]), want)
			}
		}
		if got := parseTime(t, str(f[4])); !got.Equal(testTime) {
			t.Errorf("received_at = %s, want %s", got, testTime)
		}
		if got := parseTime(t, str(f[5])); got.Before(wrote.Add(-time.Minute)) || got.After(time.Now().Add(time.Minute)) {
			t.Errorf("written_at = %s, want about %s", got, wrote)
		}
		if str(f[6]) != "cust-42" || str(f[7]) != "2" || str(f[8]) != "3" {
			t.Errorf("customer, qty, qty_text = %s, %s, %s", str(f[6]), str(f[7]), str(f[8]))
		}
		if p, _ := strconv.ParseFloat(str(f[9]), 64); p != 12.5 {
			t.Errorf("price = %s, want 12.5", str(f[9]))
		}
		if b := str(f[10]); b != "1" && b != "true" {
			t.Errorf("paid = %s, want true", b)
		}
		if got, want := parseTime(t, str(f[11])), time.Date(2026, 1, 1, 12, 0, 0, 5e8, time.UTC); !got.Equal(want) {
			t.Errorf("ts = %s, want %s", got, want)
		}
		if !jsonEqual(t, str(f[12]), `{"id":"cust-42","tier":"gold"}`) {
			t.Errorf("customer_doc = %s", str(f[12]))
		}
		if str(f[13]) != "slash" || str(f[14]) != "tilde" || str(f[15]) != "12.50" || str(f[16]) != "NULL" {
			t.Errorf("slashed, tilde, num_as_text, missing = %s, %s, %s, %s", str(f[13]), str(f[14]), str(f[15]), str(f[16]))
		}
		if str(f[17]) != "true" {
			t.Errorf("Mixed_Case1 = %s, want true", str(f[17]))
		}
		s := rows[1]
		for i := 6; i <= 16; i++ {
			want := "NULL"
			if i == 10 {
				continue // paid is false
			}
			if str(s[i]) != want {
				t.Errorf("sparse column %d = %s, want NULL", i, str(s[i]))
			}
		}
		if b := str(s[10]); b != "0" && b != "false" {
			t.Errorf("sparse paid = %s, want false", b)
		}
	})
}

func parseTime(t testing.TB, s string) time.Time {
	t.Helper()
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07", "2006-01-02 15:04:05.999999999Z07:00"} {
		if ts, err := time.Parse(layout, s); err == nil {
			return ts
		}
	}
	t.Fatalf("cannot parse time %q", s)
	return time.Time{}
}

func TestCustomUpsertKey(t *testing.T) {
	conformance(t, func(t *testing.T, e *env) {
		name := e.tableName("by_order")
		tbl := e.table(t, TableConfig{
			Name:      name,
			UpsertKey: []string{"order_no"},
			Columns:   []Column{{Name: "order_no", Pointer: "/n", Type: Integer}},
		})
		// Two deliveries of order 7 under different message ids, in two batches and in one.
		if err := tbl.Write(t.Context(), []message.Message{msg("x1", `{"n":7,"v":1}`)}); err != nil {
			t.Fatal(err)
		}
		if err := tbl.Write(t.Context(), []message.Message{msg("x2", `{"n":7,"v":2}`), msg("x3", `{"n":8}`), msg("x4", `{"n":"7","v":3}`)}); err != nil {
			t.Fatal(err)
		}
		rows := e.query(t, "SELECT CAST(order_no AS TEXT), id FROM "+quoteName(name)+" ORDER BY order_no")
		if len(rows) != 2 || *rows[0][0] != "7" || *rows[0][1] != "x4" || *rows[1][1] != "x3" {
			t.Fatalf("rows = %v, want order 7 from x4 and order 8 from x3", rows)
		}
		// A null upsert key would make a second row on every redelivery: refused.
		err := tbl.Write(t.Context(), []message.Message{msg("x5", `{"v":1}`)})
		var me *MessageError
		if !fault.IsPermanent(err) || !errors.As(err, &me) || me.ID != "x5" {
			t.Fatalf("null key: err = %v, want a permanent MessageError for x5", err)
		}
	})
}

// A retry, redelivery or replay of an older message never overwrites the row of a message
// accepted after it: in a later batch, in the same batch, in any order.
func TestOlderMessageNeverOverwritesNewer(t *testing.T) {
	conformance(t, func(t *testing.T, e *env) {
		name := e.tableName("latest")
		tbl := e.table(t, TableConfig{
			Name:      name,
			UpsertKey: []string{"order_no"},
			Columns:   []Column{{Name: "order_no", Pointer: "/n", Type: Integer}},
		})
		at := func(id, payload string, sec int) message.Message {
			m := msg(id, payload)
			m.ReceivedAt = testTime.Add(time.Duration(sec) * time.Second)
			return m
		}
		newer, older := at("new", `{"n":1,"v":2}`, 10), at("old", `{"n":1,"v":1}`, 5)
		if err := tbl.Write(t.Context(), []message.Message{newer}); err != nil {
			t.Fatal(err)
		}
		if err := tbl.Write(t.Context(), []message.Message{older}); err != nil { // the late retry
			t.Fatal(err)
		}
		// In one batch, the newer message wins even when it comes first.
		if err := tbl.Write(t.Context(), []message.Message{at("b-new", `{"n":2,"v":2}`, 10), at("b-old", `{"n":2,"v":1}`, 5)}); err != nil {
			t.Fatal(err)
		}
		// The same message again rewrites its own row.
		if err := tbl.Write(t.Context(), []message.Message{newer}); err != nil {
			t.Fatal(err)
		}
		rows := e.query(t, "SELECT CAST(order_no AS TEXT), id FROM "+quoteName(name)+" ORDER BY order_no")
		if len(rows) != 2 || *rows[0][1] != "new" || *rows[1][1] != "b-new" {
			got := [][2]string{}
			for _, r := range rows {
				got = append(got, [2]string{*r[0], *r[1]})
			}
			t.Fatalf("rows = %v, want order 1 from new and order 2 from b-new", got)
		}
	})
}

func TestLargeBatch(t *testing.T) {
	conformance(t, func(t *testing.T, e *env) {
		name := e.tableName("large")
		tbl := e.table(t, TableConfig{Name: name, Columns: []Column{{Name: "i", Pointer: "/i", Type: Integer}}})
		// 20000 messages over 17000 ids: more rows than one statement may bind on either
		// backend, with duplicates far apart.
		const n, ids = 20000, 17000
		batch := make([]message.Message, n)
		for i := range batch {
			batch[i] = msg(fmt.Sprintf("m%05d", i%ids), fmt.Sprintf(`{"i":%d}`, i))
		}
		if err := tbl.Write(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
		if got := e.count(t, name); got != ids {
			t.Fatalf("%d rows, want %d", got, ids)
		}
		rows := e.query(t, "SELECT CAST(i AS TEXT) FROM "+quoteName(name)+" WHERE id IN ('m00000', 'm02999', 'm03000', 'm16999') ORDER BY id")
		want := []string{"17000", "19999", "3000", "16999"}
		for i, r := range rows {
			if *r[0] != want[i] {
				t.Errorf("row %d: i = %s, want %s", i, *r[0], want[i])
			}
		}
	})
}

func TestConcurrentWriters(t *testing.T) {
	conformance(t, func(t *testing.T, e *env) {
		name := e.tableName("concurrent")
		tables := []*Table{
			e.table(t, TableConfig{Name: name}),
			e.table(t, TableConfig{Name: name}),
		}
		const writers, batches, size, ids = 8, 20, 50, 400
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for w := range writers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 1))
				for b := range batches {
					batch := make([]message.Message, size)
					for i := range batch {
						batch[i] = msg(fmt.Sprintf("m%03d", r.IntN(ids)), fmt.Sprintf(`{"w":%d,"b":%d}`, w, b))
					}
					if err := tables[w%len(tables)].Write(t.Context(), batch); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		// Every id was drawn at least once with overwhelming probability; count what was.
		if got := e.count(t, name); got < ids*9/10 || got > ids {
			t.Fatalf("%d rows, want at most %d distinct ids", got, ids)
		}
	})
}

func TestBadConfig(t *testing.T) {
	conformance(t, func(t *testing.T, e *env) {
		ok := e.tableName("fine")
		for _, cfg := range []TableConfig{
			{Name: ""},
			{Name: "orders; DROP TABLE x"},
			{Name: `or"ders`},
			{Name: "1orders"},
			{Name: "a.b.c"},
			{Name: ".orders"},
			{Name: "orders-2026"},
			{Name: "ordérs"},
			{Name: "o123456789o123456789o123456789o123456789o123456789o123456789_6464"},
			{Name: ok, Columns: []Column{{Name: "x y", Pointer: "/x"}}},
			{Name: ok, Columns: []Column{{Name: `x"`, Pointer: "/x"}}},
			{Name: ok, Columns: []Column{{Name: "ID", Pointer: "/x"}}},
			{Name: ok, Columns: []Column{{Name: "a", Pointer: "/x"}, {Name: "A", Pointer: "/y"}}},
			{Name: ok, Columns: []Column{{Name: "a", Pointer: "x"}}},
			{Name: ok, Columns: []Column{{Name: "a", Pointer: "/x~2"}}},
			{Name: ok, Columns: []Column{{Name: "a", Pointer: "/x", Type: "float"}}},
			{Name: ok, UpsertKey: []string{"nope"}},
			{Name: ok, UpsertKey: []string{"payload"}},
			{Name: ok, UpsertKey: []string{"id", "id"}},
		} {
			if _, err := e.db.Table(t.Context(), cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Table(%+v) = %v, want ErrInvalidConfig", cfg, err)
			}
		}
		// A table that must exist but does not is refused when it is opened, not at the
		// first write, and no retry fixes it.
		_, err := e.db.Table(t.Context(), TableConfig{Name: e.tableName("absent"), NoCreate: true})
		if !fault.IsPermanent(err) {
			t.Errorf("NoCreate on a missing table: err = %v, want permanent", err)
		}
	})
}

func TestMappingErrorIsPermanent(t *testing.T) {
	conformance(t, func(t *testing.T, e *env) {
		name := e.tableName("amounts")
		tbl := e.table(t, TableConfig{Name: name, Columns: []Column{{Name: "amount", Pointer: "/amount", Type: Integer}}})
		batch := []message.Message{
			msg("a", `{"amount":1}`),
			msg("b", `{"amount":"abc"}`), // text into an integer column
			msg("c", `{"amount":1.5}`),
			msg("d", `{"amount":`), // not JSON
			msg("e", `{"amount":2}`),
		}
		err := tbl.Write(t.Context(), batch)
		var me *MessageError
		if !fault.IsPermanent(err) || !errors.As(err, &me) || me.Index != 1 || me.ID != "b" {
			t.Fatalf("Write = %v, want a permanent MessageError for message 1", err)
		}
		if n := e.count(t, name); n != 0 {
			t.Fatalf("a failed Write left %d rows", n)
		}
		errs := tbl.WriteEach(t.Context(), batch)
		for i, err := range errs {
			bad := i >= 1 && i <= 3
			if bad != (err != nil) || bad && !fault.IsPermanent(err) {
				t.Errorf("WriteEach[%d] = %v, want bad=%v and permanent", i, err, bad)
			}
		}
		if n := e.count(t, name); n != 2 {
			t.Fatalf("WriteEach stored %d rows, want 2", n)
		}
	})
}

func TestConstraintIsPermanent(t *testing.T) {
	conformance(t, func(t *testing.T, e *env) {
		name := e.tableName("checked")
		e.exec(t, fmt.Sprintf(`CREATE TABLE %s (id TEXT NOT NULL, client TEXT NOT NULL, type TEXT NOT NULL,
			msg_key TEXT NOT NULL, payload %s NOT NULL, received_at %[3]s NOT NULL, written_at %[3]s NOT NULL,
			amount BIGINT CHECK (amount >= 0), PRIMARY KEY (client, id))`, quoteName(name), e.jsonType, e.tsType))
		tbl := e.table(t, TableConfig{Name: name, NoCreate: true, Columns: []Column{{Name: "amount", Pointer: "/amount", Type: Integer}}})
		var batch []message.Message
		for i := range 40 {
			batch = append(batch, msg(fmt.Sprintf("m%02d", i), fmt.Sprintf(`{"amount":%d}`, i)))
		}
		batch[13].Payload = []byte(`{"amount":-1}`)
		batch[31].Payload = []byte(`{"amount":-2}`)
		err := tbl.Write(t.Context(), batch)
		var me *MessageError
		if !fault.IsPermanent(err) || errors.As(err, &me) {
			t.Fatalf("Write = %v, want a permanent database error", err)
		}
		t.Logf("permanent: %v", err)
		if n := e.count(t, name); n != 0 {
			t.Fatalf("a failed Write left %d rows", n)
		}
		errs := tbl.WriteEach(t.Context(), batch)
		for i, err := range errs {
			bad := i == 13 || i == 31
			if bad != (err != nil) || bad && !fault.IsPermanent(err) {
				t.Errorf("WriteEach[%d] = %v, want bad=%v and permanent", i, err, bad)
			}
		}
		if n := e.count(t, name); n != 38 {
			t.Fatalf("WriteEach stored %d rows, want 38", n)
		}
	})
}

func TestLockedIsTransient(t *testing.T) {
	conformance(t, func(t *testing.T, e *env) {
		name := e.tableName("locked")
		e.table(t, TableConfig{Name: name})
		// A second DB that gives up on a lock quickly, opened before the lock is taken.
		params := "_pragma=busy_timeout(20)"
		if e.name == "postgres" {
			params = "lock_timeout=50"
		}
		tbl, err := e.open(t, params).Table(t.Context(), TableConfig{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		unlock := e.lock(t, name)
		err = tbl.Write(t.Context(), []message.Message{msg("a", `{}`)})
		if err == nil || fault.IsPermanent(err) {
			t.Fatalf("Write while another writer holds the lock = %v, want a transient error", err)
		}
		t.Logf("transient: %v", err)
		unlock()
		if err := tbl.Write(t.Context(), []message.Message{msg("a", `{}`)}); err != nil {
			t.Fatalf("Write after the lock was released: %v", err)
		}
	})
}

func TestClosed(t *testing.T) {
	conformance(t, func(t *testing.T, e *env) {
		tbl := e.table(t, TableConfig{Name: e.tableName("closing")})
		if err := e.db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := tbl.Write(t.Context(), []message.Message{msg("a", `{}`)}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Write after Close = %v, want ErrClosed", err)
		}
		if _, err := e.db.Table(t.Context(), TableConfig{Name: "x"}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Table after Close = %v, want ErrClosed", err)
		}
	})
}
