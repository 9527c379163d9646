package sqlsink

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// pointer is a parsed RFC 6901 JSON pointer: the unescaped reference tokens. nil is the whole
// document.
type pointer []string

func parsePointer(s string) (pointer, error) {
	if s == "" {
		return nil, nil
	}
	if s[0] != '/' {
		return nil, fmt.Errorf("json pointer %q: must be empty or start with /", s)
	}
	toks := strings.Split(s[1:], "/")
	for i, tok := range toks {
		if !strings.Contains(tok, "~") {
			continue
		}
		for j := 0; j < len(tok); j++ {
			if tok[j] == '~' && (j+1 == len(tok) || (tok[j+1] != '0' && tok[j+1] != '1')) {
				return nil, fmt.Errorf("json pointer %q: ~ must be followed by 0 or 1", s)
			}
		}
		// RFC 6901 §4: ~1 first, then ~0, so that "~01" becomes "~1".
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
	}
	return toks, nil
}

// node is one step of the pointers of a table's columns, merged into a trie so that a payload
// is scanned once for all of them.
type node struct {
	children map[string]*node
	cols     []int // columns whose pointer ends here
	under    []int // columns whose pointer ends here or below
}

// newTrie merges the pointers of cols (indexed as in cols).
func newTrie(ptrs []pointer) *node {
	root := &node{}
	for c, p := range ptrs {
		n := root
		n.under = append(n.under, c)
		for _, tok := range p {
			if n.children == nil {
				n.children = map[string]*node{}
			}
			next := n.children[tok]
			if next == nil {
				next = &node{}
				n.children[tok] = next
			}
			n = next
			n.under = append(n.under, c)
		}
		n.cols = append(n.cols, c)
	}
	return root
}

// extract finds the raw JSON of each column's value in doc, which must be valid JSON
// (json.Valid): spans[c] is nil when the pointer of column c names nothing. Values the
// pointers do not reach are skipped, not decoded. Like encoding/json, the last of duplicate
// object keys wins.
func (n *node) extract(doc []byte, spans [][]byte) {
	x := extractor{b: doc, spans: spans}
	x.value(0, n)
}

type extractor struct {
	b     []byte
	spans [][]byte
}

// value scans the value at or after i (n may be nil: nothing wanted) and returns its end.
func (x *extractor) value(i int, n *node) int {
	i = skipSpace(x.b, i)
	start := i
	if n == nil {
		return skipValue(x.b, i)
	}
	for _, c := range n.under {
		x.spans[c] = nil // a later duplicate key replaces what an earlier one held
	}
	var end int
	switch {
	case len(n.children) == 0:
		end = skipValue(x.b, i)
	case x.b[i] == '{':
		end = x.object(i, n)
	case x.b[i] == '[':
		end = x.array(i, n)
	default:
		end = skipValue(x.b, i)
	}
	for _, c := range n.cols {
		x.spans[c] = x.b[start:end]
	}
	return end
}

func (x *extractor) object(i int, n *node) int {
	i++ // {
	for {
		i = skipSpace(x.b, i)
		switch x.b[i] {
		case '}':
			return i + 1
		case ',':
			i++
			continue
		}
		end := skipString(x.b, i)
		raw := x.b[i+1 : end-1]
		var child *node
		if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
			child = n.children[string(raw)]
		} else {
			var key string
			if json.Unmarshal(x.b[i:end], &key) == nil {
				child = n.children[key]
			}
		}
		i = skipSpace(x.b, end) + 1 // :
		i = x.value(i, child)
	}
}

func (x *extractor) array(i int, n *node) int {
	i++ // [
	for idx := 0; ; idx++ {
		i = skipSpace(x.b, i)
		switch x.b[i] {
		case ']':
			return i + 1
		case ',':
			i = skipSpace(x.b, i+1)
		}
		i = x.value(i, n.children[strconv.Itoa(idx)])
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// skipValue returns the index after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	default: // number, true, false, null
		for i < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i])) {
			i++
		}
		return i
	}
}

// decodeSpan decodes the raw JSON of one value, without a decoder for the common scalars.
func decodeSpan(b []byte) (any, error) {
	switch {
	case len(b) >= 2 && b[0] == '"' && bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b):
		return string(b[1 : len(b)-1]), nil
	case b[0] == '-' || b[0] >= '0' && b[0] <= '9':
		return json.Number(b), nil
	case string(b) == "true":
		return true, nil
	case string(b) == "false":
		return false, nil
	case string(b) == "null":
		return nil, nil
	}
	return decodeJSON(b)
}

// decodeJSON decodes one JSON document, keeping numbers as json.Number so that they reach the
// database as written.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON document")
	}
	return v, nil
}

// convert turns a decoded JSON value (not nil: JSON null) into the Go value bound for typ:
// string, int64, bool or time.Time. JSON null becomes SQL NULL.
func convert(v any, typ ColumnType) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch typ {
	case Text:
		switch v := v.(type) {
		case string:
			return v, nil
		case json.Number:
			return v.String(), nil
		case bool:
			return strconv.FormatBool(v), nil
		}
		return marshalJSON(v)
	case Integer:
		switch v := v.(type) {
		case json.Number:
			return parseInteger(v.String())
		case string:
			if !isJSONNumber(v) {
				return nil, fmt.Errorf("%q is not an integer", v)
			}
			return parseInteger(v)
		}
	case Numeric:
		switch v := v.(type) {
		case json.Number:
			return v.String(), nil
		case string:
			if !isJSONNumber(v) {
				return nil, fmt.Errorf("%q is not a number", v)
			}
			return v, nil
		}
	case Boolean:
		switch v := v.(type) {
		case bool:
			return v, nil
		case string:
			switch v {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
			return nil, fmt.Errorf("%q is not a boolean", v)
		}
	case Timestamp:
		if s, ok := v.(string); ok {
			ts, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, fmt.Errorf("%q is not an RFC 3339 timestamp", s)
			}
			return ts.UTC(), nil
		}
	case JSON:
		return marshalJSON(v)
	}
	return nil, fmt.Errorf("a JSON %s does not convert to %s", jsonKind(v), typ)
}

func parseInteger(s string) (any, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	// 1e3 and 42.0 are integers too, within the range a float64 holds exactly.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return nil, fmt.Errorf("%s is not a 64-bit integer", s)
	}
	return int64(f), nil
}

// isJSONNumber reports whether s is a number in JSON syntax (no hex, NaN or Inf, which
// strconv would take).
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// marshalJSON encodes v compactly without escaping <, > and &, so the text stays as the partner
// wrote it.
func marshalJSON(v any) (string, error) {
	var b strings.Builder
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}
