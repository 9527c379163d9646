package format

import (
	"bytes"
	"context"
	"encoding/json"
	"math/big"
	"testing"
)

func TestEncodeMatchesStd(t *testing.T) {
	doc, _, q := benchDoc(&testing.B{})
	v, _ := Decode(doc)
	out, err := q.Run(context.Background(), v, Vars{ID: "x", ReceivedAt: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []any{out, v, map[string]any{"b": big.NewInt(0).Lsh(big.NewInt(1), 80), "n": json.Number("1.50"), "h": "<&>", "f": 1e21, "i": 3}} {
		a, _ := json.Marshal(x)
		b, err := Encode(x)
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("std %s\ngoccy %s (%v)", a, b, err)
		}
	}
}
