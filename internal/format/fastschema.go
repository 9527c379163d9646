package format

import (
	"encoding/json"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// A fast validity check for the JSON Schema keywords partner schemas use most. jsonschema/v6
// builds error trees, tracks evaluated properties and compares every number as a big.Rat, which
// costs ~25 µs per 512 B order; this predicate answers "valid?" for the same compiled schema in
// a few µs. It only ever short-cuts the valid case: when it says invalid, or when the schema
// uses a keyword it does not implement, the library validates and produces the violations, so
// error reports are always the library's. FuzzFastSchema checks that it never calls valid what
// the library rejects.

// node mirrors a compiled *jsonschema.Schema with what the predicate needs.
type node struct {
	s          *jsonschema.Schema
	boolean    *bool
	types      uint8
	ref        *node
	refOnly    bool // drafts before 2019: $ref ends validation after type/const/enum/format
	allOf      []*node
	anyOf      []*node
	oneOf      []*node
	not        *node
	ifN        *node
	then, els  *node
	props      map[string]*node
	patterns   []patternNode
	additional *node // additionalProperties as a schema
	noExtra    bool  // additionalProperties: false
	items      *node
	prefix     []*node
	// numeric bounds, with their nearest float64 for the fast comparison
	min, max, exMin, exMax     *big.Rat
	fmin, fmax, fexMin, fexMax float64
}

type patternNode struct {
	re jsonschema.Regexp
	n  *node
}

const (
	tNull uint8 = 1 << iota
	tBool
	tNumber
	tInteger
	tString
	tArray
	tObject
)

// compileFast returns the predicate's tree for s, or nil when s (or a schema it reaches) uses a
// keyword the predicate does not implement.
func compileFast(s *jsonschema.Schema) *node {
	c := fastCompiler{nodes: map[*jsonschema.Schema]*node{}}
	n := c.node(s)
	if c.unsupported {
		return nil
	}
	return n
}

type fastCompiler struct {
	nodes       map[*jsonschema.Schema]*node
	unsupported bool
}

func (c *fastCompiler) node(s *jsonschema.Schema) *node {
	if s == nil {
		return nil
	}
	if n, ok := c.nodes[s]; ok {
		return n
	}
	n := &node{s: s, boolean: s.Bool}
	c.nodes[s] = n
	if s.RecursiveRef != nil || s.DynamicRef != nil || len(s.Dependencies) > 0 || len(s.DependentSchemas) > 0 ||
		len(s.DependentRequired) > 0 || s.PropertyNames != nil || s.UnevaluatedProperties != nil || s.UnevaluatedItems != nil ||
		s.UniqueItems || s.Contains != nil || s.AdditionalItems != nil || s.ContentEncoding != nil || s.ContentMediaType != nil ||
		s.ContentSchema != nil || s.MultipleOf != nil || len(s.Extensions) > 0 || (s.Format != nil && s.Format.Name == "regex") {
		c.unsupported = true
		return n
	}
	if s.Types != nil {
		for _, t := range s.Types.ToStrings() {
			n.types |= map[string]uint8{"null": tNull, "boolean": tBool, "number": tNumber, "integer": tInteger,
				"string": tString, "array": tArray, "object": tObject}[t]
		}
	}
	n.ref = c.node(s.Ref)
	n.refOnly = s.Ref != nil && s.DraftVersion < 2019
	n.allOf, n.anyOf, n.oneOf = c.nodes_(s.AllOf), c.nodes_(s.AnyOf), c.nodes_(s.OneOf)
	n.not, n.ifN, n.then, n.els = c.node(s.Not), c.node(s.If), c.node(s.Then), c.node(s.Else)
	if len(s.Properties) > 0 {
		n.props = make(map[string]*node, len(s.Properties))
		for k, p := range s.Properties {
			n.props[k] = c.node(p)
		}
	}
	for re, p := range s.PatternProperties {
		n.patterns = append(n.patterns, patternNode{re: re, n: c.node(p)})
	}
	switch a := s.AdditionalProperties.(type) {
	case bool:
		n.noExtra = !a
	case *jsonschema.Schema:
		n.additional = c.node(a)
	}
	switch it := s.Items.(type) {
	case *jsonschema.Schema:
		n.items = c.node(it)
	case []*jsonschema.Schema:
		c.unsupported = true
	}
	if s.Items2020 != nil {
		n.items = c.node(s.Items2020)
	}
	n.prefix = c.nodes_(s.PrefixItems)
	n.min, n.fmin = s.Minimum, ratFloat(s.Minimum)
	n.max, n.fmax = s.Maximum, ratFloat(s.Maximum)
	n.exMin, n.fexMin = s.ExclusiveMinimum, ratFloat(s.ExclusiveMinimum)
	n.exMax, n.fexMax = s.ExclusiveMaximum, ratFloat(s.ExclusiveMaximum)
	return n
}

func (c *fastCompiler) nodes_(ss []*jsonschema.Schema) []*node {
	var out []*node
	for _, s := range ss {
		out = append(out, c.node(s))
	}
	return out
}

func ratFloat(r *big.Rat) float64 {
	if r == nil {
		return 0
	}
	f, _ := r.Float64()
	return f
}

// maxFastDepth bounds the predicate's recursion ($ref cycles that do not descend); past it the
// predicate gives up and the library decides.
const maxFastDepth = 256

// valid reports whether v is valid against n. false means "invalid or not sure".
func (n *node) valid(v any, depth int) bool {
	if depth > maxFastDepth {
		return false
	}
	if n.boolean != nil {
		return *n.boolean
	}
	s := n.s
	if n.types != 0 {
		t := typeBit(v)
		if n.types&t == 0 && !(n.types&tInteger != 0 && t == tNumber && isInt(v)) {
			return false
		}
	}
	if s.Const != nil && !equalJSON(v, *s.Const) {
		return false
	}
	if s.Enum != nil {
		ok := false
		for _, e := range s.Enum.Values {
			if equalJSON(v, e) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if s.Format != nil && s.Format.Validate(v) != nil {
		return false
	}
	if n.ref != nil {
		if !n.ref.valid(v, depth+1) {
			return false
		}
		if n.refOnly {
			return true
		}
	}
	switch x := v.(type) {
	case map[string]any:
		if !n.object(x, depth) {
			return false
		}
	case []any:
		if !n.array(x, depth) {
			return false
		}
	case string:
		if s.MinLength != nil || s.MaxLength != nil {
			l := utf8.RuneCountInString(x)
			if (s.MinLength != nil && l < *s.MinLength) || (s.MaxLength != nil && l > *s.MaxLength) {
				return false
			}
		}
		if s.Pattern != nil && !s.Pattern.MatchString(x) {
			return false
		}
	case json.Number:
		if !n.number(x) {
			return false
		}
	}
	for _, a := range n.allOf {
		if !a.valid(v, depth+1) {
			return false
		}
	}
	if len(n.anyOf) > 0 {
		ok := false
		for _, a := range n.anyOf {
			if a.valid(v, depth+1) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(n.oneOf) > 0 {
		count := 0
		for _, a := range n.oneOf {
			if a.valid(v, depth+1) {
				count++
			}
		}
		if count != 1 {
			return false // zero, or "not sure" about one of them: let the library decide
		}
	}
	if n.not != nil && n.not.valid(v, depth+1) {
		return false
	}
	if n.ifN != nil {
		if n.ifN.valid(v, depth+1) {
			if n.then != nil && !n.then.valid(v, depth+1) {
				return false
			}
		} else if n.els != nil && !n.els.valid(v, depth+1) {
			return false
		}
	}
	return true
}

func (n *node) object(obj map[string]any, depth int) bool {
	s := n.s
	if (s.MinProperties != nil && len(obj) < *s.MinProperties) || (s.MaxProperties != nil && len(obj) > *s.MaxProperties) {
		return false
	}
	for _, r := range s.Required {
		if _, ok := obj[r]; !ok {
			return false
		}
	}
	for k, pv := range obj {
		evaluated := false
		if p, ok := n.props[k]; ok {
			evaluated = true
			if !p.valid(pv, depth+1) {
				return false
			}
		}
		for _, pp := range n.patterns {
			if pp.re.MatchString(k) {
				evaluated = true
				if !pp.n.valid(pv, depth+1) {
					return false
				}
			}
		}
		if !evaluated {
			if n.noExtra {
				return false
			}
			if n.additional != nil && !n.additional.valid(pv, depth+1) {
				return false
			}
		}
	}
	return true
}

func (n *node) array(arr []any, depth int) bool {
	s := n.s
	if (s.MinItems != nil && len(arr) < *s.MinItems) || (s.MaxItems != nil && len(arr) > *s.MaxItems) {
		return false
	}
	i := 0
	for ; i < len(arr) && i < len(n.prefix); i++ {
		if !n.prefix[i].valid(arr[i], depth+1) {
			return false
		}
	}
	if n.items != nil {
		for ; i < len(arr); i++ {
			if !n.items.valid(arr[i], depth+1) {
				return false
			}
		}
	}
	return true
}

func (n *node) number(x json.Number) bool {
	if n.min == nil && n.max == nil && n.exMin == nil && n.exMax == nil {
		return true
	}
	f, err := strconv.ParseFloat(string(x), 64)
	var exact *big.Rat
	// cmp compares x with bound: rounding to float64 is monotonic, so unequal floats order the
	// exact values the same way; equal floats need the exact comparison.
	cmp := func(bound *big.Rat, fb float64) int {
		if err == nil {
			switch {
			case f < fb:
				return -1
			case f > fb:
				return 1
			}
		}
		if exact == nil {
			exact, _ = new(big.Rat).SetString(string(x))
			if exact == nil {
				return 2 // not comparable: let the library decide
			}
		}
		return exact.Cmp(bound)
	}
	if n.min != nil {
		if c := cmp(n.min, n.fmin); c < 0 || c == 2 {
			return false
		}
	}
	if n.max != nil {
		if c := cmp(n.max, n.fmax); c > 0 {
			return false
		}
	}
	if n.exMin != nil {
		if c := cmp(n.exMin, n.fexMin); c <= 0 || c == 2 {
			return false
		}
	}
	if n.exMax != nil {
		if c := cmp(n.exMax, n.fexMax); c >= 0 {
			return false
		}
	}
	return true
}

func typeBit(v any) uint8 {
	switch v.(type) {
	case nil:
		return tNull
	case bool:
		return tBool
	case json.Number:
		return tNumber
	case string:
		return tString
	case []any:
		return tArray
	case map[string]any:
		return tObject
	}
	return 0
}

func isInt(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	if !strings.ContainsAny(string(n), ".eE") {
		return true
	}
	r, ok := new(big.Rat).SetString(string(n))
	return ok && r.IsInt()
}

// equalJSON is JSON equality, numbers compared by value.
func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equalJSON(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		rx, ok1 := new(big.Rat).SetString(string(x))
		ry, ok2 := new(big.Rat).SetString(string(y))
		return ok1 && ok2 && rx.Cmp(ry) == 0
	default:
		return a == b
	}
}
