package ingest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/weirhq/weir/internal/format"
	"github.com/weirhq/weir/internal/format/libxml"
)

// XMLInput is an XML dialect of a type: what some clients send instead of the type's JSON.
type XMLInput struct {
	Clients      map[string]bool // nil: every client allowed to send the type
	Schema       *libxml.Schema  // input XSD (optional)
	Stylesheet   *libxml.Stylesheet
	JSONOutput   bool           // the stylesheet writes the JSON message; else its XML is converted
	TargetSchema *libxml.Schema // checked on the stylesheet's XML result (optional)
	IDXPath      string         // message id in the input (optional)
	KeyXPath     string         // ordering key in the input (optional)
}

// xmlTypes are the Content-Types of XML messages.
var xmlTypes = []string{"application/xml", "text/xml"}

func isXML(contentType string) bool {
	ct, _, err := mime.ParseMediaType(contentType)
	return err == nil && slices.Contains(xmlTypes, ct)
}

// dialect returns the XML dialect of t for client c.
func (t *Type) dialect(c *Client) *XMLInput {
	var any *XMLInput
	for _, x := range t.XML {
		if x.Clients == nil {
			any = x
		} else if x.Clients[c.ID] {
			return x
		}
	}
	return any
}

func xmlProblem(status int, kind, title string, err error) *Problem {
	var xe *libxml.Error
	if !errors.As(err, &xe) {
		return problem(status, kind, title, err.Error())
	}
	detail := fmt.Sprintf("%d problem(s)", len(xe.Problems))
	if len(xe.Problems) > 0 {
		detail += ", the first: " + xe.Problems[0].String()
	}
	p := problem(status, kind, title, detail)
	for _, pr := range xe.Problems {
		p.Errors = append(p.Errors, format.Violation{Line: pr.Line, Column: pr.Column, Message: pr.Message})
	}
	return p
}

// prepareXML checks an XML message against its dialect, turns it into the type's JSON and
// builds its message like prepare does; id may come from the request. The receipt's hash is the
// XML's, so a byte-identical resend is a duplicate.
func (g *Gateway) prepareXML(c *Client, t *Type, x *XMLInput, body []byte, id string, now time.Time) candidate {
	if !libxml.Available() {
		return candidate{prob: problem(http.StatusUnsupportedMediaType, "xml-unavailable", "XML not available", libxml.ErrUnavailable.Error())}
	}
	doc, err := libxml.Parse(body)
	if err != nil {
		return candidate{prob: xmlProblem(http.StatusBadRequest, "invalid-xml", "Invalid XML", err)}
	}
	defer doc.Free()
	if x.Schema != nil {
		if err := x.Schema.Validate(doc); err != nil {
			p := xmlProblem(http.StatusBadRequest, "validation", "Message does not match its schema", err)
			p.Detail = fmt.Sprintf("%d violation(s) of the %s XML schema", len(p.Errors), t.Name)
			return candidate{prob: p}
		}
	}
	var key string
	if x.IDXPath != "" && id == "" {
		if id, err = doc.XPathString(x.IDXPath, 0); err != nil || id == "" {
			return candidate{prob: problem(http.StatusBadRequest, "missing-id", "Missing message id",
				fmt.Sprintf("XPath %s (the dialect's id) finds no value and there is no Idempotency-Key header%s", x.IDXPath, because(err)))}
		}
	}
	if x.KeyXPath != "" {
		if key, err = doc.XPathString(x.KeyXPath, 0); err != nil || key == "" {
			return candidate{prob: problem(http.StatusBadRequest, "missing-key", "Missing ordering key",
				fmt.Sprintf("XPath %s (the dialect's key) finds no value%s", x.KeyXPath, because(err)))}
		}
	}
	out := body
	if x.Stylesheet != nil {
		if out, err = x.Stylesheet.Transform(doc); err != nil {
			return candidate{prob: xmlProblem(http.StatusBadRequest, "transform", "The message cannot be transformed", err)}
		}
	}
	if !x.JSONOutput {
		if x.TargetSchema != nil {
			res, err := libxml.Parse(out)
			if err != nil {
				return candidate{prob: xmlProblem(http.StatusBadRequest, "transform", "The transform's result is not valid XML", err)}
			}
			err = x.TargetSchema.Validate(res)
			res.Free()
			if err != nil {
				return candidate{prob: xmlProblem(http.StatusBadRequest, "transform", "The transform's result does not match the target schema", err)}
			}
		}
		if out, err = format.XMLToJSON(out); err != nil {
			return candidate{prob: problem(http.StatusBadRequest, "transform", "The message cannot be converted to JSON", err.Error())}
		}
	}
	cand := g.prepareDoc(c, t, out, id, key, now)
	if cand.prob == nil {
		cand.hash = sha256.Sum256(body)
	} else if cand.prob.Type == problemBase+"invalid-json" {
		cand.prob = problem(http.StatusBadRequest, "transform", "The transform did not produce JSON", cand.prob.Detail)
	}
	return cand
}

func because(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}
