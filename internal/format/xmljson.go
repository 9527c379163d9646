package format

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// XMLToJSON converts an XML document to JSON by a fixed convention, for XML types whose
// stylesheet emits XML (or that have none): an element becomes an object of its attributes
// ("@name"), its child elements (by local name; repeated names become arrays) and its text
// ("#text", or the element's value itself when it has neither attributes nor children). The
// root element is the top-level member. Namespaces are dropped, text is trimmed, and comments
// and processing instructions are ignored.
func XMLToJSON(data []byte) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	type frame struct {
		name  string
		attrs []xml.Attr
		kids  []string // member names in order of first appearance
		vals  map[string][]any
		text  strings.Builder
	}
	var stack []*frame
	var root map[string]any
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("xml to json: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= MaxDepth {
				return nil, fmt.Errorf("xml to json: nesting deeper than %d", MaxDepth)
			}
			stack = append(stack, &frame{name: t.Name.Local, attrs: t.Attr, vals: map[string][]any{}})
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			}
		case xml.EndElement:
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			var v any
			text := strings.TrimSpace(f.text.String())
			if len(f.attrs) == 0 && len(f.kids) == 0 {
				v = text
			} else {
				obj := map[string]any{}
				for _, a := range f.attrs {
					if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
						continue
					}
					obj["@"+a.Name.Local] = a.Value
				}
				for _, k := range f.kids {
					if vs := f.vals[k]; len(vs) == 1 {
						obj[k] = vs[0]
					} else {
						obj[k] = vs
					}
				}
				if text != "" {
					obj["#text"] = text
				}
				v = obj
			}
			if len(stack) == 0 {
				root = map[string]any{f.name: v}
				continue
			}
			p := stack[len(stack)-1]
			if _, seen := p.vals[f.name]; !seen {
				p.kids = append(p.kids, f.name)
			}
			p.vals[f.name] = append(p.vals[f.name], v)
		}
	}
	if root == nil {
		return nil, errors.New("xml to json: no root element")
	}
	return Encode(root)
}
