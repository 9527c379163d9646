package format

import (
	"context"
	"errors"
	"fmt"

	gojson "github.com/goccy/go-json"
	"github.com/itchyny/gojq"
)

// JQ is a compiled jq program, safe for concurrent use. It sees the message as `.` and its
// envelope as the variables $id, $client, $type, $key and $received_at (RFC 3339).
type JQ struct{ code *gojq.Code }

// Vars are the envelope values a jq program can read.
type Vars struct {
	ID, Client, Type, Key, ReceivedAt string
}

var jqVarNames = []string{"$id", "$client", "$type", "$key", "$received_at"}

// CompileJQ parses and compiles a jq program.
func CompileJQ(src string) (*JQ, error) {
	q, err := gojq.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("jq: %w", err)
	}
	code, err := gojq.Compile(q, gojq.WithVariables(jqVarNames))
	if err != nil {
		return nil, fmt.Errorf("jq: %w", err)
	}
	return &JQ{code: code}, nil
}

// ErrNoOutput is returned when a program yields nothing (e.g. `empty` or a failed select).
var ErrNoOutput = errors.New("jq: program produced no output")

// Run applies the program to v and returns its single output. A program that yields more than
// one value is an error: one message in, one message out.
func (j *JQ) Run(ctx context.Context, v any, vars Vars) (any, error) {
	iter := j.code.RunWithContext(ctx, v, vars.ID, vars.Client, vars.Type, vars.Key, vars.ReceivedAt)
	out, ok := iter.Next()
	if !ok {
		return nil, ErrNoOutput
	}
	if err, isErr := out.(error); isErr {
		return nil, fmt.Errorf("jq: %w", err)
	}
	if extra, more := iter.Next(); more {
		if err, isErr := extra.(error); isErr {
			return nil, fmt.Errorf("jq: %w", err)
		}
		return nil, errors.New("jq: program produced more than one output")
	}
	return out, nil
}

// Encode renders a value produced by Decode or a jq program as compact JSON, byte for byte as
// encoding/json would (sorted keys, HTML-safe escaping), about four times faster.
func Encode(v any) ([]byte, error) {
	b, err := gojson.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode JSON: %w", err)
	}
	return b, nil
}
