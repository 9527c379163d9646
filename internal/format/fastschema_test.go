package format

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

// Schemas the differential tests run, covering every keyword the fast predicate implements.
var fastSchemas = []string{
	"", // the quickstart order schema, filled in by schemasForTest
	`{"type":["object","null"],"properties":{"a":{"type":"integer","minimum":-3,"exclusiveMaximum":10.5},
	  "b":{"enum":["x",1,2.0,null,{"k":[1]}]},"c":{"const":3},"d":{"type":"string","minLength":1,"maxLength":3,"pattern":"^[a-c]+$"},
	  "e":{"type":"array","prefixItems":[{"type":"string"}],"items":{"type":"number","exclusiveMinimum":0},"minItems":1,"maxItems":3}},
	  "patternProperties":{"^x-":{"type":"boolean"}},"additionalProperties":false,"minProperties":1,"maxProperties":4}`,
	`{"$defs":{"pos":{"type":"number","minimum":0}},"allOf":[{"$ref":"#/$defs/pos"}],"anyOf":[{"maximum":5},{"minimum":100}],
	  "oneOf":[{"type":"integer"},{"exclusiveMaximum":1}],"not":{"const":7},"if":{"minimum":50},"then":{"maximum":200},"else":{"maximum":60}}`,
	`{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"s":{"type":"string"}},
	  "properties":{"r":{"$ref":"#/definitions/s","maxLength":2},"i":{"items":{"type":"integer"}},"f":{"format":"date-time"},"m":{"format":"email"}},
	  "additionalProperties":{"type":"number"}}`,
	`{"type":"object","properties":{"n":{"$ref":"#"}},"required":["v"],"properties2":1}`,
	`true`, `false`, `{"type":"integer"}`, `{"minimum":1e400}`,
}

func schemasForTest(t testing.TB) []*Schema {
	var out []*Schema
	for i, src := range fastSchemas {
		if src == "" {
			b, err := os.ReadFile("../../examples/quickstart/order.schema.json")
			if err != nil {
				t.Fatal(err)
			}
			src = string(b)
		}
		s, err := CompileSchema(fmt.Sprint("s", i), []byte(src))
		if err != nil {
			t.Fatalf("schema %d: %v", i, err)
		}
		if s.fast == nil {
			t.Fatalf("schema %d is not handled by the fast predicate", i)
		}
		out = append(out, s)
	}
	return out
}

// checkFast fails when the fast predicate calls valid what the library rejects, and counts
// the cases where it is unsure but the library accepts (allowed, only slower).
func checkFast(t testing.TB, schemas []*Schema, v any) {
	for i, s := range schemas {
		fast := s.fast.valid(v, 0)
		lib := s.s.Validate(v) == nil
		if fast && !lib {
			b, _ := json.Marshal(v)
			t.Fatalf("schema %d: fast predicate accepts %s, library rejects: %v", i, b, s.s.Validate(v))
		}
	}
}

func randValue(r *rand.Rand, depth int) any {
	keys := []string{"a", "b", "c", "d", "e", "f", "i", "m", "n", "r", "v", "x-1", "id", "qty", "price", "items", "customer", "email"}
	nums := []string{"0", "1", "2", "2.0", "3", "7", "-3", "-4", "10.5", "10.49", "5", "50", "60", "99.9", "100", "200", "201", "1e2", "1.5e1", "0.0000001", "1e400", "-0"}
	strs := []string{"", "a", "abc", "abcd", "d", "x", "2026-01-01T00:00:00Z", "not-a-date", "a@b.example", "nope", "ord-1", "eur", "US", "é"}
	switch k := r.IntN(10); {
	case depth > 3 || k < 2:
		return json.Number(nums[r.IntN(len(nums))])
	case k < 4:
		return strs[r.IntN(len(strs))]
	case k == 4:
		return []any{nil, true, false}[r.IntN(3)]
	case k < 7:
		a := make([]any, r.IntN(5))
		for i := range a {
			a[i] = randValue(r, depth+1)
		}
		return a
	default:
		m := map[string]any{}
		for range r.IntN(6) {
			m[keys[r.IntN(len(keys))]] = randValue(r, depth+1)
		}
		return m
	}
}

func TestFastSchemaAgreesWithLibrary(t *testing.T) {
	schemas := schemasForTest(t)
	r := rand.New(rand.NewPCG(1, 2))
	fastValid := make([]int, len(schemas))
	for range 30000 {
		v := randValue(r, 0)
		checkFast(t, schemas, v)
		for i, s := range schemas {
			if s.fast.valid(v, 0) {
				fastValid[i]++
			}
		}
	}
	// Every schema but the first (no random value is an order) and `false` accepted some values,
	// so the comparison covered both outcomes.
	for i, n := range fastValid {
		if i != 0 && fastSchemas[i] != "false" && n == 0 {
			t.Errorf("schema %d: the fast predicate accepted none of the random values", i)
		}
	}
	order, _ := os.ReadFile("../../examples/quickstart/order.json")
	v, err := Decode(order)
	if err != nil {
		t.Fatal(err)
	}
	if !schemas[0].fast.valid(v, 0) {
		t.Fatal("the fast predicate does not accept the sample order")
	}
}

func TestFastSchemaFallsBack(t *testing.T) {
	for _, src := range []string{`{"uniqueItems":true}`, `{"multipleOf":2}`, `{"unevaluatedProperties":false}`, `{"contains":{}}`,
		`{"properties":{"a":{"dependentRequired":{"x":["y"]}}}}`} {
		s, err := CompileSchema("x", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if s.fast != nil {
			t.Errorf("%s: fast predicate claims support", src)
		}
	}
}

func FuzzFastSchema(f *testing.F) {
	order, _ := os.ReadFile("../../examples/quickstart/order.json")
	f.Add(order)
	for _, s := range []string{`{"a":1,"b":"x","d":"ab","e":["s",1]}`, `{"r":"ab","i":[1,2],"f":"2026-01-01T00:00:00Z"}`, `55`, `{"n":{"v":1},"v":2}`} {
		f.Add([]byte(s))
	}
	schemas := schemasForTest(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if err != nil {
			return
		}
		checkFast(t, schemas, v)
	})
}
