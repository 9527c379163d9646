package format

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of objects and arrays in a decoded document, so that a nesting
// bomb fails fast instead of exhausting the stack.
const MaxDepth = 512

// SyntaxError is a JSON document that does not parse, with the byte offset of the problem.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// Decode parses one JSON document in a single pass into the types encoding/json produces
// with UseNumber: map[string]any, []any, string, json.Number, bool and nil. Invalid UTF-8 in
// strings becomes U+FFFD, as encoding/json does. Data after the document is an error.
func Decode(b []byte) (any, error) {
	d := decoder{b: b}
	d.ws()
	v := d.value(0)
	if d.err == nil {
		d.ws()
		if d.i < len(d.b) {
			d.fail("data after the document")
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return v, nil
}

type decoder struct {
	b   []byte
	i   int
	err *SyntaxError
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = &SyntaxError{Offset: d.i, Msg: msg}
	}
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) any {
	if d.i >= len(d.b) {
		d.fail("unexpected end of input")
		return nil
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		return d.string()
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return d.literal("true", true)
	case c == 'f':
		return d.literal("false", false)
	case c == 'n':
		return d.literal("null", nil)
	default:
		d.fail(fmt.Sprintf("unexpected character %q", c))
		return nil
	}
}

func (d *decoder) literal(word string, v any) any {
	if len(d.b)-d.i >= len(word) && string(d.b[d.i:d.i+len(word)]) == word {
		d.i += len(word)
		return v
	}
	d.fail("invalid literal")
	return nil
}

func (d *decoder) object(depth int) any {
	if depth > MaxDepth {
		d.fail(fmt.Sprintf("nested deeper than %d levels", MaxDepth))
		return nil
	}
	d.i++ // {
	m := make(map[string]any, 8)
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m
	}
	for d.err == nil {
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			d.fail("expected a string key")
			return nil
		}
		k := d.string()
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			d.fail("expected ':' after an object key")
			return nil
		}
		d.i++
		d.ws()
		v := d.value(depth)
		if d.err != nil {
			return nil
		}
		m[k] = v
		d.ws()
		if d.i >= len(d.b) {
			d.fail("unexpected end of input in an object")
			return nil
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return m
		default:
			d.fail("expected ',' or '}' in an object")
			return nil
		}
	}
	return nil
}

func (d *decoder) array(depth int) any {
	if depth > MaxDepth {
		d.fail(fmt.Sprintf("nested deeper than %d levels", MaxDepth))
		return nil
	}
	d.i++ // [
	a := make([]any, 0, 4)
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return a
	}
	for d.err == nil {
		d.ws()
		v := d.value(depth)
		if d.err != nil {
			return nil
		}
		a = append(a, v)
		d.ws()
		if d.i >= len(d.b) {
			d.fail("unexpected end of input in an array")
			return nil
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return a
		default:
			d.fail("expected ',' or ']' in an array")
			return nil
		}
	}
	return nil
}

func (d *decoder) number() any {
	start := d.i
	b := d.b
	i := d.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		d.i = i
		d.fail("invalid number")
		return nil
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			d.i = i
			d.fail("invalid number: digits expected after '.'")
			return nil
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			d.i = i
			d.fail("invalid number: digits expected in the exponent")
			return nil
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	d.i = i
	return json.Number(b[start:i])
}

// string reads a string token; the fast path copies it at once when it has no escapes.
func (d *decoder) string() string {
	d.i++ // opening quote
	start := d.i
	ascii := true
	for i := d.i; i < len(d.b); i++ {
		c := d.b[i]
		switch {
		case c == '"':
			d.i = i + 1
			s := d.b[start:i]
			if !ascii && !utf8.Valid(s) {
				return string([]rune(string(s))) // replaces invalid bytes with U+FFFD
			}
			return string(s)
		case c == '\\':
			d.i = i
			return d.escaped(start)
		case c < 0x20:
			d.i = i
			d.fail("control character in a string")
			return ""
		case c >= 0x80:
			ascii = false
		}
	}
	d.i = len(d.b)
	d.fail("unterminated string")
	return ""
}

// escaped finishes a string that holds escapes; d.i is at the first backslash.
func (d *decoder) escaped(start int) string {
	out := make([]byte, 0, d.i-start+16)
	out = append(out, d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if !utf8.Valid(out) {
				return string([]rune(string(out)))
			}
			return string(out)
		case c < 0x20:
			d.fail("control character in a string")
			return ""
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			break
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				d.fail("invalid \\u escape")
				return ""
			}
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					if lo, ok := d.hex4(); ok && utf16.DecodeRune(r, lo) != utf8.RuneError {
						r2 = utf16.DecodeRune(r, lo)
					} else {
						d.i = save
					}
				}
				r = r2
			}
			out = utf8.AppendRune(out, r)
		default:
			d.i -= 2
			d.fail("invalid escape in a string")
			return ""
		}
	}
	d.fail("unterminated string")
	return ""
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(d.b[d.i:d.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	d.i += 4
	return rune(v), true
}
