//go:build !cgo

package libxml

// Available reports whether XML is supported in this build.
func Available() bool { return false }

// Doc is a parsed document (never produced without cgo).
type Doc struct{}

// Parse returns ErrUnavailable.
func Parse([]byte) (*Doc, error) { return nil, ErrUnavailable }

// Free does nothing.
func (d *Doc) Free() {}

// XPathString returns ErrUnavailable.
func (d *Doc) XPathString(string, uint64) (string, error) { return "", ErrUnavailable }

// Schema is a compiled XSD (never produced without cgo).
type Schema struct{}

// CompileSchema returns ErrUnavailable.
func CompileSchema(string) (*Schema, error) { return nil, ErrUnavailable }

// Validate returns ErrUnavailable.
func (s *Schema) Validate(*Doc) error { return ErrUnavailable }

// Stylesheet is a compiled stylesheet (never produced without cgo).
type Stylesheet struct{}

// CompileStylesheet returns ErrUnavailable.
func CompileStylesheet(string, Limits) (*Stylesheet, error) { return nil, ErrUnavailable }

// Transform returns ErrUnavailable.
func (st *Stylesheet) Transform(*Doc) ([]byte, error) { return nil, ErrUnavailable }

// CheckXPath returns ErrUnavailable.
func CheckXPath(string) error { return ErrUnavailable }
