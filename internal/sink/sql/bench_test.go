package sqlsink

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/weirhq/weir/internal/message"
)

// BenchmarkWrite writes batches of 256 reference orders (testdata/order.json, 512 B, a new id
// each) with three extracted columns, one Write per batch, and reports rows/s.
func BenchmarkWrite(b *testing.B) {
	order, err := os.ReadFile("testdata/order.json")
	if err != nil {
		b.Fatal(err)
	}
	order = bytes.TrimSpace(order)
	const oldID = "ord-2026-000123"
	at := bytes.Index(order, []byte(oldID))
	if at < 0 {
		b.Fatal("order.json has no id to vary")
	}
	prefix, suffix := order[:at], order[at+len(oldID):]
	cfg := func(e *env) TableConfig {
		return TableConfig{Name: e.tableName("orders"), Columns: []Column{
			{Name: "customer_id", Pointer: "/customer/id"},
			{Name: "currency", Pointer: "/currency"},
			{Name: "ts", Pointer: "/ts", Type: Timestamp},
		}}
	}
	for _, bk := range []struct {
		name string
		env  func(testing.TB) *env
	}{{"sqlite", newSQLiteEnv}, {"postgres", newPGEnv}} {
		b.Run(bk.name, func(b *testing.B) {
			e := bk.env(b)
			tbl := e.table(b, cfg(e))
			const batch = 256
			msgs := make([]message.Message, batch)
			seq := 0
			now := time.Now()
			rows := 0
			for b.Loop() {
				for i := range msgs {
					seq++
					id := fmt.Sprintf("ord-2026-%06d", seq)
					p := make([]byte, 0, len(order))
					p = append(append(append(p, prefix...), id...), suffix...)
					msgs[i] = message.Message{ID: id, Client: "bench", Type: "order", Key: "cust-42", ReceivedAt: now, Payload: p}
				}
				if err := tbl.Write(b.Context(), msgs); err != nil {
					b.Fatal(err)
				}
				rows += batch
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			b.SetBytes(int64(len(order)) * batch)
		})
	}
}
