// Package libxml parses, validates (XSD) and transforms (XSLT 1.0 with EXSLT) partner XML through
// libxml2 and libxslt, hardened for hostile input: DTDs are refused, so external entities and
// entity expansion (XXE, billion laughs) cannot happen; nothing is loaded from the network or the
// file system at run time; stylesheets may not read or write files or the network; transforms
// are bounded in time, XPath work and output size; nesting is bounded by the parser.
//
// Schemas and stylesheets come only from the config (compiled once, at load); a compiled
// Schema or Stylesheet is safe for concurrent use. Errors are captured per call, never printed.
// Without cgo the package still builds and every call returns ErrUnavailable.
package libxml

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrUnavailable is returned by every call in a build without cgo.
var ErrUnavailable = errors.New("XML support is not available in this build of weir (built without cgo)")

// Problem is one error libxml2 or libxslt reported, with its position in the document when known.
type Problem struct {
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	switch {
	case p.Line > 0 && p.Column > 0:
		return fmt.Sprintf("line %d, column %d: %s", p.Line, p.Column, p.Message)
	case p.Line > 0:
		return fmt.Sprintf("line %d: %s", p.Line, p.Message)
	}
	return p.Message
}

// Error lists what went wrong in one call: a document that is not well-formed or not allowed,
// an XSD violation, a failed transform.
type Error struct {
	Op       string // "parse", "validate", "transform", "xpath", "compile"
	Problems []Problem
}

func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return "xml " + e.Op + " failed"
	}
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "xml " + e.Op + ": " + strings.Join(parts, "; ")
}

// Limits bound one transform.
type Limits struct {
	Timeout   time.Duration // wall time of the transform (default 2s)
	MaxOutput int           // bytes of serialized output (default 16 MiB)
	// MaxXPathOps bounds the XPath operations of one transform or XPath call (default 50M).
	MaxXPathOps uint64
}

func (l *Limits) defaults() {
	if l.Timeout <= 0 {
		l.Timeout = 2 * time.Second
	}
	if l.MaxOutput <= 0 {
		l.MaxOutput = 16 << 20
	}
	if l.MaxXPathOps == 0 {
		l.MaxXPathOps = 50_000_000
	}
}
