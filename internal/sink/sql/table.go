package sqlsink

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/message"
)

// ColumnType is the SQL type of a column extracted from the payload.
type ColumnType string

// The column types. Values are converted in Go before they reach the database, the same way for
// both backends; a value that does not convert makes the message fail permanently.
const (
	Text      ColumnType = "text"      // strings as they are; numbers and booleans as their JSON text; objects and arrays as JSON
	Integer   ColumnType = "integer"   // 64-bit; JSON numbers or numeric strings with an integral value
	Numeric   ColumnType = "numeric"   // JSON numbers or numeric strings, kept as written (PG numeric, SQLite NUMERIC affinity)
	Boolean   ColumnType = "boolean"   // JSON true/false or the strings "true"/"false" (SQLite: 1/0)
	Timestamp ColumnType = "timestamp" // RFC 3339 strings (PG timestamptz; SQLite text 2006-01-02T15:04:05.000000Z in UTC)
	JSON      ColumnType = "json"      // any JSON value (PG jsonb; SQLite text)
)

// Column is a table column filled from the payload.
type Column struct {
	Name    string     // SQL identifier: letters, digits, underscore; not a letter-case variant of a standard column
	Pointer string     // RFC 6901 JSON pointer into the payload; "" is the whole document. Missing → NULL
	Type    ColumnType // default Text
}

// TableConfig describes a table that receives messages.
type TableConfig struct {
	// Name is the table, optionally qualified by a schema (schema.table). Identifiers are
	// letters, digits and underscores, at most 63 bytes, and are always quoted.
	Name string
	// UpsertKey lists the columns that identify a row: standard columns (id, client, type,
	// msg_key) or configured ones. Default ["client", "id"]. Rows are written with
	// INSERT ... ON CONFLICT (UpsertKey) DO UPDATE, so the table needs a primary key or unique
	// index on exactly these columns; a created table gets it as its primary key.
	UpsertKey []string
	// Columns are extracted from the payload, in addition to the standard columns. An existing
	// table is never altered: a column added here later needs an ALTER TABLE first (until then
	// DB.Table reports it missing, as a permanent error).
	Columns []Column
	// NoCreate skips CREATE TABLE IF NOT EXISTS: the table must exist already (with the standard
	// columns, the configured ones and a unique index on the upsert key). The zero value
	// creates the table, which is what most configurations want.
	NoCreate bool
}

// Standard columns, present in every table, in the order the backends bind them.
const (
	colID = iota
	colClient
	colType
	colKey
	colPayload
	colReceivedAt
	colWrittenAt
	numStandard
)

var standardNames = [numStandard]string{"id", "client", "type", "msg_key", "payload", "received_at", "written_at"}

// maxIdentLen is PostgreSQL's limit (NAMEDATALEN-1); longer names would be silently truncated.
const maxIdentLen = 63

// Table writes messages as rows of one table. It is safe for concurrent use.
type Table struct {
	db     *DB
	name   string   // quoted and qualified, ready for SQL
	schema string   // unquoted schema, or ""
	cols   []column // extracted columns
	trie   *node    // the columns' pointers, merged
	// key lists the upsert key as positions in the combined column list: standard columns
	// first (colID...colKey), then cols at numStandard+i.
	key      []int
	noCreate bool
	w        writer
}

type column struct {
	Column
	ptr pointer
}

// row is one message mapped to the values a backend binds.
type row struct {
	msg  *message.Message
	vals []any // one per extracted column: nil, string, int64, bool or time.Time
	key  string
	idx  int // position in the caller's slice
}

func newTable(db *DB, cfg TableConfig) (*Table, error) {
	t := &Table{db: db, noCreate: cfg.NoCreate}
	parts := strings.Split(cfg.Name, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("%w: table name %q: at most one dot (schema.table)", ErrInvalidConfig, cfg.Name)
	}
	for _, p := range parts {
		if err := checkIdent(p); err != nil {
			return nil, fmt.Errorf("%w: table name %q: %w", ErrInvalidConfig, cfg.Name, err)
		}
	}
	if len(parts) == 2 {
		t.schema = parts[0]
		t.name = quote(parts[0]) + "." + quote(parts[1])
	} else {
		t.name = quote(parts[0])
	}

	seen := map[string]bool{}
	for _, s := range standardNames {
		seen[s] = true
	}
	for _, c := range cfg.Columns {
		if err := checkIdent(c.Name); err != nil {
			return nil, fmt.Errorf("%w: column %q: %w", ErrInvalidConfig, c.Name, err)
		}
		if seen[strings.ToLower(c.Name)] {
			return nil, fmt.Errorf("%w: column %q: duplicate or standard column name", ErrInvalidConfig, c.Name)
		}
		seen[strings.ToLower(c.Name)] = true
		if c.Type == "" {
			c.Type = Text
		}
		switch c.Type {
		case Text, Integer, Numeric, Boolean, Timestamp, JSON:
		default:
			return nil, fmt.Errorf("%w: column %q: unknown type %q", ErrInvalidConfig, c.Name, c.Type)
		}
		ptr, err := parsePointer(c.Pointer)
		if err != nil {
			return nil, fmt.Errorf("%w: column %q: %w", ErrInvalidConfig, c.Name, err)
		}
		t.cols = append(t.cols, column{Column: c, ptr: ptr})
	}
	ptrs := make([]pointer, len(t.cols))
	for i, c := range t.cols {
		ptrs[i] = c.ptr
	}
	t.trie = newTrie(ptrs)

	key := cfg.UpsertKey
	if len(key) == 0 {
		key = []string{"client", "id"}
	}
	for _, k := range key {
		i := t.columnIndex(k)
		if i < 0 || i == colPayload || i == colReceivedAt || i == colWrittenAt {
			return nil, fmt.Errorf("%w: upsert key %q: not id, client, type, msg_key or a configured column", ErrInvalidConfig, k)
		}
		if slices.Contains(t.key, i) {
			return nil, fmt.Errorf("%w: upsert key %q: listed twice", ErrInvalidConfig, k)
		}
		t.key = append(t.key, i)
	}
	return t, nil
}

// columnIndex finds name among the combined columns, or returns -1.
func (t *Table) columnIndex(name string) int {
	for i, s := range standardNames {
		if s == name {
			return i
		}
	}
	for i, c := range t.cols {
		if c.Name == name {
			return numStandard + i
		}
	}
	return -1
}

// columnName returns the name of the combined column i.
func (t *Table) columnName(i int) string {
	if i < numStandard {
		return standardNames[i]
	}
	return t.cols[i-numStandard].Name
}

// columnList is every column, quoted, in bind order.
func (t *Table) columnList() string {
	names := make([]string, 0, numStandard+len(t.cols))
	for i := range numStandard + len(t.cols) {
		names = append(names, quote(t.columnName(i)))
	}
	return strings.Join(names, ", ")
}

// keyList is the upsert key, quoted.
func (t *Table) keyList() string {
	names := make([]string, len(t.key))
	for i, k := range t.key {
		names[i] = quote(t.columnName(k))
	}
	return strings.Join(names, ", ")
}

// rowAlias names the target table in the upsert, for the ON CONFLICT guard.
const rowAlias = "weir_row"

// onConflict is the upsert clause: every column outside the key takes the new value, unless the
// stored row comes from a message accepted later. So a retry, a redelivery or a replay of an
// older message never overwrites a newer one with the same upsert key, whatever order they
// arrive in, and a message written twice writes the same row. Both backends spell it the same
// way.
func (t *Table) onConflict() string {
	var s strings.Builder
	fmt.Fprintf(&s, " ON CONFLICT (%s) DO UPDATE SET ", t.keyList())
	first := true
	for i := range numStandard + len(t.cols) {
		if t.isKey(i) {
			continue
		}
		if !first {
			s.WriteString(", ")
		}
		first = false
		q := quote(t.columnName(i))
		fmt.Fprintf(&s, "%s = excluded.%s", q, q)
	}
	ra := quote(standardNames[colReceivedAt])
	fmt.Fprintf(&s, " WHERE excluded.%s >= %s.%s", ra, rowAlias, ra)
	return s.String()
}

// isKey reports whether the combined column i is part of the upsert key.
func (t *Table) isKey(i int) bool { return slices.Contains(t.key, i) }

// Write stores msgs in one transaction: multi-row upserts on the upsert key, chunked under the
// database's parameter limit. Messages with the same upsert key in one batch collapse to the
// last one. When it returns nil, every row is committed durably (SQLite: fsync'd WAL;
// PostgreSQL: as durable as the server's synchronous_commit, on by default).
//
// A message that cannot be mapped to a row fails the whole batch before the database is
// touched, with a permanent *MessageError that names it. A permanent error from the database
// (constraint, type, schema) does not say which row caused it: call WriteEach to store the
// others and find the bad ones. Other errors are transient: retry the same batch.
func (t *Table) Write(ctx context.Context, msgs []message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	rows := make([]row, len(msgs))
	for i := range msgs {
		if err := t.mapRow(&msgs[i], i, &rows[i]); err != nil {
			return err
		}
	}
	return t.write(ctx, rows)
}

// WriteEach stores every message it can and returns one error per message (nil when stored).
// It maps all messages first, writes the good ones as one batch and, when the database refuses
// that batch permanently, bisects it so that a few bad rows cost a few extra transactions, not
// one per message. Messages sharing an upsert key are still written in their order, so the
// last stored one wins. On a transient error the messages not yet stored all carry that error:
// retry those.
func (t *Table) WriteEach(ctx context.Context, msgs []message.Message) []error {
	errs := make([]error, len(msgs))
	rows := make([]row, 0, len(msgs))
	for i := range msgs {
		var r row
		if err := t.mapRow(&msgs[i], i, &r); err != nil {
			errs[i] = err
			continue
		}
		rows = append(rows, r)
	}
	t.isolate(ctx, rows, errs)
	return errs
}

func (t *Table) isolate(ctx context.Context, rows []row, errs []error) {
	if len(rows) == 0 {
		return
	}
	// write sorts its argument in place; keep rows in caller order for the halves below.
	err := t.write(ctx, slices.Clone(rows))
	if err == nil || !fault.IsPermanent(err) || len(rows) == 1 {
		for _, r := range rows {
			errs[r.idx] = err
		}
		return
	}
	// Halves keep caller order, so among duplicates the later message is still written last.
	mid := len(rows) / 2
	t.isolate(ctx, rows[:mid], errs)
	t.isolate(ctx, rows[mid:], errs)
}

// write deduplicates rows by upsert key (the last wins), sorts them by it and hands them to the
// backend. rows is reordered in place.
func (t *Table) write(ctx context.Context, rows []row) error {
	if t.db.closed.Load() {
		return ErrClosed
	}
	if len(rows) > 1 {
		// Among rows with one key, the message accepted last wins (as the upsert's guard does
		// against stored rows); stable sorting keeps caller order among equal times, and the
		// last of those wins.
		slices.SortStableFunc(rows, func(a, b row) int {
			if c := cmp.Compare(a.key, b.key); c != 0 {
				return c
			}
			return a.msg.ReceivedAt.Compare(b.msg.ReceivedAt)
		})
		out := rows[:0]
		for i := range rows {
			if i+1 < len(rows) && rows[i+1].key == rows[i].key {
				continue
			}
			out = append(out, rows[i])
		}
		rows = out
	}
	if err := t.w.write(ctx, rows); err != nil {
		return fmt.Errorf("sqlsink: write %d rows to %s: %w", len(rows), t.name, err)
	}
	return nil
}

// mapRow fills r from m: extracted values and the upsert key.
func (t *Table) mapRow(m *message.Message, idx int, r *row) error {
	*r = row{msg: m, idx: idx}
	fail := func(err error) error {
		return fault.Permanent(&MessageError{Index: idx, ID: m.ID, Err: err})
	}
	// Both backends store the payload as JSON; refuse what PostgreSQL would refuse.
	if !json.Valid(m.Payload) {
		return fail(errors.New("payload is not valid JSON"))
	}
	if len(t.cols) > 0 {
		spans := make([][]byte, len(t.cols))
		t.trie.extract(m.Payload, spans)
		r.vals = make([]any, len(t.cols))
		for i, c := range t.cols {
			if spans[i] == nil {
				continue // missing: NULL
			}
			v, err := decodeSpan(spans[i])
			if err == nil {
				v, err = convert(v, c.Type)
			}
			if err != nil {
				return fail(fmt.Errorf("column %q (%s at %q): %w", c.Name, c.Type, c.Pointer, err))
			}
			r.vals[i] = v
		}
	}
	var kb strings.Builder
	for _, k := range t.key {
		var v any
		switch k {
		case colID:
			v = m.ID
		case colClient:
			v = m.Client
		case colType:
			v = m.Type
		case colKey:
			v = m.Key
		default:
			v = r.vals[k-numStandard]
		}
		if v == nil {
			return fail(fmt.Errorf("upsert key column %q is null", t.columnName(k)))
		}
		s := keyText(v)
		// Length-prefixed parts, so that ("a:b","c") and ("a","b:c") differ.
		kb.WriteString(strconv.Itoa(len(s)))
		kb.WriteByte(':')
		kb.WriteString(s)
	}
	r.key = kb.String()
	return nil
}

func keyText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case bool:
		return strconv.FormatBool(v)
	default:
		return fmt.Sprint(v)
	}
}

// checkIdent accepts letters, digits and underscores, not starting with a digit.
func checkIdent(s string) error {
	if s == "" {
		return errors.New("empty identifier")
	}
	if len(s) > maxIdentLen {
		return fmt.Errorf("identifier longer than %d bytes", maxIdentLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return fmt.Errorf("identifier %q: only letters, digits and underscores, not starting with a digit", s)
		}
	}
	return nil
}

// quote quotes an identifier that checkIdent accepted.
func quote(ident string) string { return `"` + ident + `"` }
