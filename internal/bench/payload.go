package bench

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// referenceOrder is a copy of bench/order.json: the 512-byte order every throughput figure uses,
// so that Weir's figures compare run for run with other tools measured on the same machines.
//
//go:embed testdata/order.json
var referenceOrder []byte

// DefaultPayload returns a copy of the 512-byte reference order that Run sends when
// Config.Payload is empty.
func DefaultPayload() []byte { return bytes.Clone(referenceOrder) }

// Paths of the template values the generator rewrites for every message.
const (
	idPath  = "id"
	keyPath = "customer.id"
)

// PoisonMember is the member the generator puts first in a poison message (Config.Poison). It
// survives weir's pipeline (the quickstart transform keeps every member), so a receiver can
// recognise the message in its delivery: see IsPoison.
const PoisonMember = `"weir_bench":"poison"`

// IsPoison reports whether a message or a delivery of it is one the generator marked as poison.
// Whitespace after the colon is allowed, in case a re-encoder adds it.
func IsPoison(body []byte) bool {
	const key, val = `"weir_bench":`, `"poison"`
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(key))
		if j < 0 {
			return false
		}
		rest := bytes.TrimLeft(body[i+j+len(key):], " \t\r\n")
		if bytes.HasPrefix(rest, []byte(val)) {
			return true
		}
		i += j + len(key)
	}
}

// slot says what the generator writes after a literal part of the template.
type slot uint8

const (
	slotNone slot = iota // end of the template
	slotID               // the message id: a JSON string "b-<seed>-<n>" (XML: bare B-<seed>-<n>)
	slotKey              // the key (customer.id): "cust-<k>", or a bare number if the template had one
)

// part is a literal run of template bytes followed by a slot.
type part struct {
	lit  []byte
	slot slot
}

// generator builds messages from a template by splicing bytes: the template is parsed once, and
// each message is literal runs with the id and key appended in between. Re-encoding JSON per
// message would cost more than the request itself at the rates we measure.
type generator struct {
	parts     []part
	seed      int64
	keys      uint64
	keyQuoted bool   // the template's key was a string, so the generated key is one too
	size      int    // template length, to size buffers
	poison    uint64 // message n is poison when poisonHash(n) < poison (0: none)
	allPoison bool   // every message is poison (a fraction of 1)
	xml       bool   // an XML template: ids and keys are written bare, nothing is poison
}

// XML template markers: where an XML template takes the message id and the key.
const (
	xmlIDMarker  = "{{id}}"
	xmlKeyMarker = "{{key}}"
)

// newXMLGenerator splits an XML template at its {{id}} (required, once) and {{key}} markers.
func newXMLGenerator(doc []byte, seed int64, keys int) (*generator, error) {
	if bytes.Count(doc, []byte(xmlIDMarker)) != 1 {
		return nil, fmt.Errorf("an XML payload needs %s exactly once (and %s at most once)", xmlIDMarker, xmlKeyMarker)
	}
	if bytes.Count(doc, []byte(xmlKeyMarker)) > 1 {
		return nil, fmt.Errorf("an XML payload has %s at most once", xmlKeyMarker)
	}
	g := &generator{seed: seed, keys: uint64(max(keys, 1)), size: len(doc), xml: true, keyQuoted: true}
	rest := doc
	for len(rest) > 0 {
		i, j := bytes.Index(rest, []byte(xmlIDMarker)), bytes.Index(rest, []byte(xmlKeyMarker))
		switch {
		case i < 0 && j < 0:
			g.parts = append(g.parts, part{lit: rest})
			rest = nil
		case j < 0 || (i >= 0 && i < j):
			g.parts = append(g.parts, part{lit: rest[:i], slot: slotID})
			rest = rest[i+len(xmlIDMarker):]
		default:
			g.parts = append(g.parts, part{lit: rest[:j], slot: slotKey})
			rest = rest[j+len(xmlKeyMarker):]
		}
	}
	if g.parts[len(g.parts)-1].slot != slotNone {
		g.parts = append(g.parts, part{})
	}
	return g, nil
}

// setPoison makes a fraction (0..1) of the messages poison: PoisonMember is added first to each,
// chosen by a hash of (seed, n), so that which messages are poison is reproducible from the seed.
func (g *generator) setPoison(fraction float64) {
	switch {
	case fraction <= 0:
		g.poison, g.allPoison = 0, false
	case fraction >= 1:
		g.poison, g.allPoison = 0, true
	default:
		g.poison, g.allPoison = uint64(fraction*(1<<64)), false
	}
}

// isPoison reports whether message number n is poison.
func (g *generator) isPoison(n uint64) bool {
	if g.allPoison {
		return true
	}
	return g.poison != 0 && splitmix64(uint64(g.seed)*0xd1b54a32d192ed03^n*0x2545f4914f6cdd1d^0x706f69736f6e) < g.poison
}

// newGenerator parses template (a JSON object) and finds the top-level "id" and "customer.id"
// values. A template without an id gets one inserted; one without customer.id sends no key
// variation. seed goes into every id; keys is how many distinct keys to draw from.
func newGenerator(template []byte, seed int64, keys int) (*generator, error) {
	if t := bytes.TrimSpace(template); len(t) > 0 && t[0] == '<' {
		return newXMLGenerator(t, seed, keys)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, template); err != nil {
		return nil, fmt.Errorf("payload is not valid JSON: %w", err)
	}
	doc := buf.Bytes() // compact: no newlines, so every message is one NDJSON line
	if len(doc) == 0 || doc[0] != '{' {
		return nil, errors.New("payload must be a JSON object")
	}
	kp := keyPath
	var top struct{ Customer any }
	if json.Unmarshal(doc, &top) == nil {
		if _, ok := top.Customer.(string); ok {
			kp = "customer" // a customer id in place of a customer object (the drone delivery request)
		}
	}
	spans, err := findScalars(doc, idPath, kp)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if !spans[0].found {
		ins := []byte(`{"id":""`)
		if !bytes.Equal(doc, []byte("{}")) {
			ins = append(ins, ',')
		}
		doc = append(ins, doc[1:]...)
		if spans, err = findScalars(doc, idPath, kp); err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
	}
	g := &generator{seed: seed, keys: uint64(max(keys, 1)), size: len(doc)}
	type hole struct {
		span
		slot slot
	}
	holes := []hole{{spans[0], slotID}}
	if spans[1].found {
		holes = append(holes, hole{spans[1], slotKey})
		g.keyQuoted = spans[1].str
	}
	slices.SortFunc(holes, func(a, b hole) int { return a.start - b.start })
	at := 0
	for _, h := range holes {
		g.parts = append(g.parts, part{lit: doc[at:h.start], slot: h.slot})
		at = h.end
	}
	g.parts = append(g.parts, part{lit: doc[at:]})
	return g, nil
}

// appendMessage appends message number n to dst. It is safe for concurrent use: the generator is
// read-only after newGenerator.
func (g *generator) appendMessage(dst []byte, n uint64) []byte {
	poison := g.isPoison(n) && !g.xml
	quote := byte('"')
	if g.xml {
		quote = 0
	}
	for i, p := range g.parts {
		lit := p.lit
		if i == 0 && poison {
			// The template is an object with at least an id, so a member follows the '{'.
			dst = append(dst, '{')
			dst = append(dst, PoisonMember...)
			dst = append(dst, ',')
			lit = lit[1:]
		}
		dst = append(dst, lit...)
		switch p.slot {
		case slotID:
			dst = appendQuote(dst, quote)
			if g.xml {
				dst = append(dst, `B-`...) // upper case: XSDs often restrict ids to [A-Z0-9-]
			} else {
				dst = append(dst, `b-`...)
			}
			dst = strconv.AppendInt(dst, g.seed, 10)
			dst = append(dst, '-')
			dst = strconv.AppendUint(dst, n, 10)
			dst = appendQuote(dst, quote)
		case slotKey:
			k := g.key(n)
			if g.keyQuoted {
				dst = appendQuote(dst, quote)
				dst = append(dst, `cust-`...)
				dst = strconv.AppendUint(dst, k, 10)
				dst = appendQuote(dst, quote)
			} else {
				dst = strconv.AppendUint(dst, k, 10)
			}
		}
	}
	return dst
}

func appendQuote(dst []byte, q byte) []byte {
	if q == 0 {
		return dst
	}
	return append(dst, q)
}

// key picks message n's key: a hash of (seed, n), so a run is reproducible from its seed and
// keys spread evenly without a shared random source between connections.
func (g *generator) key(n uint64) uint64 {
	return splitmix64(uint64(g.seed)*0x9e3779b97f4a7c15+n) % g.keys
}

// splitmix64 is the finaliser of the SplitMix64 generator: a cheap, well-mixed hash of x.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// span is the byte range of a scalar value in a JSON document.
type span struct {
	start, end int
	str        bool // the value is a JSON string
	found      bool
}

// findScalars walks a compact JSON document once and returns, for each dotted object path
// (array elements never match), the span of the scalar value found there. A path that names an
// object or array, or appears twice, is an error: the generator can only splice one scalar.
func findScalars(doc []byte, paths ...string) ([]span, error) {
	out := make([]span, len(paths))
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	type frame struct {
		obj     bool
		wantKey bool
		key     string
	}
	var stack []frame
	// valueDone is called after each complete value: an enclosing object now expects a key.
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].wantKey = true
		}
	}
	// path is the dotted path of the value about to be read, or "" inside an array.
	path := func() string {
		keys := make([]string, 0, len(stack))
		for _, f := range stack {
			if !f.obj {
				return ""
			}
			keys = append(keys, f.key)
		}
		return strings.Join(keys, ".")
	}
	for {
		before := int(dec.InputOffset())
		tok, err := dec.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
			if key, ok := tok.(string); ok {
				stack[n-1].key, stack[n-1].wantKey = key, false
				continue
			}
			// The only other token where a key is expected is the closing '}'.
			stack = stack[:n-1]
			valueDone()
			continue
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if i := slices.Index(paths, path()); i >= 0 {
					return nil, fmt.Errorf("%s is an object or array, want a string or number", paths[i])
				}
				stack = append(stack, frame{obj: d == '{', wantKey: d == '{'})
			case ']':
				stack = stack[:len(stack)-1]
				valueDone()
			}
			continue
		}
		if i := slices.Index(paths, path()); i >= 0 {
			if out[i].found {
				// Decoders disagree on which duplicate wins; splice one and the other may be read.
				return nil, fmt.Errorf("%s appears twice", paths[i])
			}
			start := before
			for start < len(doc) && strings.IndexByte(" \t\r\n:,", doc[start]) >= 0 {
				start++
			}
			_, isStr := tok.(string)
			out[i] = span{start: start, end: int(dec.InputOffset()), str: isStr, found: true}
		}
		valueDone()
	}
}
