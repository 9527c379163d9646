// Package format holds the message-format machinery Weir runs at the edge and in the process
// stage: JSON decoding with bounded depth, JSON Schema validation that lists every violation,
// jq transforms, and key/id extraction by JSON pointer.
package format

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Violation is one reason a document is invalid, located by a JSON pointer.
type Violation struct {
	Pointer string `json:"pointer,omitempty"`
	Line    int    `json:"line,omitempty"` // XML: where the problem is
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

// Schema is a compiled JSON Schema, safe for concurrent use.
type Schema struct {
	s    *jsonschema.Schema
	fast *node // nil when the schema needs a keyword the fast predicate lacks
}

// CompileSchema compiles a JSON Schema document; name identifies it in errors. References to
// other resources are refused: a schema is self-contained.
func CompileSchema(name string, doc []byte) (*Schema, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.UseLoader(noLoader{})
	url := "weir:///" + name
	if err := c.AddResource(url, v); err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", name, err)
	}
	return &Schema{s: s, fast: compileFast(s)}, nil
}

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external schema references are not allowed: %s", url)
}

var printer = message.NewPrinter(language.English)

// Validate checks a decoded document and returns every violation (nil when valid).
func (s *Schema) Validate(v any) []Violation {
	if s.fast != nil && s.fast.valid(v, 0) {
		return nil
	}
	err := s.s.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Violation{{Pointer: "", Message: err.Error()}}
	}
	var out []Violation
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, Violation{Pointer: pointerOf(e.InstanceLocation), Message: e.ErrorKind.LocalizedString(printer)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out
}

func pointerOf(path []string) string {
	var b strings.Builder
	for _, p := range path {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(p))
	}
	return b.String()
}

// Lookup returns the value at the RFC 6901 pointer ptr in v.
func Lookup(v any, ptr string) (any, bool) {
	if ptr == "" {
		return v, true
	}
	if ptr[0] != '/' {
		return nil, false
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		if strings.Contains(tok, "~") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		}
		switch n := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = n[tok]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n) {
				return nil, false
			}
			v = n[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// LookupString returns the scalar at ptr as a string (strings as they are, numbers and booleans
// in their JSON form). Objects, arrays and null are not keys.
func LookupString(v any, ptr string) (string, bool) {
	x, ok := Lookup(v, ptr)
	if !ok {
		return "", false
	}
	switch s := x.(type) {
	case string:
		return s, s != ""
	case json.Number:
		return s.String(), true
	case bool:
		return strconv.FormatBool(s), true
	case float64:
		return strconv.FormatFloat(s, 'f', -1, 64), true
	case int:
		return strconv.Itoa(s), true
	}
	return "", false
}
