package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/format"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/state"
)

// Route is what the process stage does with a message type: its jq steps, then where the result
// goes.
type Route struct {
	Steps     []*format.JQ
	Persist   bool
	Endpoints []string
	Workflow  bool // the type runs a workflow: on to the workflow topic
}

// Process returns the process stage's handler: it runs each message's steps and appends the
// result to the persist topic and to each endpoint's deliver topic, in one append per topic.
// A crash after the appends and before the commit processes the message again; its outputs then
// appear twice in the next topics, which the idempotent sinks and stable webhook ids absorb.
func Process(log buffer.Buffer, rec Recorder, routes map[string]*Route) func(context.Context, []buffer.Record) []error {
	return func(ctx context.Context, recs []buffer.Record) []error {
		var errs []error
		fail := func(i int, err error) {
			if errs == nil {
				errs = make([]error, len(recs))
			}
			errs[i] = err
		}
		out := map[string][]buffer.Message{}
		var events []state.Event
		for i, r := range recs {
			m, err := message.Decode(r.Value)
			if err != nil {
				fail(i, fault.Permanent(err))
				continue
			}
			route := routes[m.Type]
			if route == nil {
				fail(i, fault.Permanent(fmt.Errorf("message type %q has no pipeline", m.Type)))
				continue
			}
			if len(route.Steps) > 0 {
				if m.Payload, err = transform(ctx, route.Steps, &m); err != nil {
					fail(i, err)
					continue
				}
			}
			// The next stages start with their own schedules.
			m.Attempt, m.FailedAt, m.Released = 0, time.Time{}, false
			if route.Persist {
				out[TopicPersist] = append(out[TopicPersist], buffer.Message{Key: []byte(m.Key), Value: m.Encode()})
			}
			if route.Workflow {
				out[TopicWorkflow] = append(out[TopicWorkflow], buffer.Message{Key: []byte(m.Key), Value: m.Encode()})
			}
			for _, ep := range route.Endpoints {
				d := m
				d.Endpoint = ep
				t := DeliverTopic(ep)
				out[t] = append(out[t], buffer.Message{Key: []byte(d.Key), Value: d.Encode()})
			}
			events = append(events, event(&m, StageProcess, state.StatusProcessed))
		}
		for topic, msgs := range out {
			if err := log.Append(ctx, topic, msgs); err != nil {
				return each(len(recs), fmt.Errorf("append to %s: %w", topic, err))
			}
		}
		rec.Record(events...)
		return errs
	}
}

// transform runs the steps over the payload; a failing step is a permanent error (the same
// input fails the same way every time).
func transform(ctx context.Context, steps []*format.JQ, m *message.Message) ([]byte, error) {
	doc, err := format.Decode(m.Payload)
	if err != nil {
		return nil, fault.Permanent(err)
	}
	vars := format.Vars{ID: m.ID, Client: m.Client, Type: m.Type, Key: m.Key, ReceivedAt: m.ReceivedAt.Format(time.RFC3339Nano)}
	for i, s := range steps {
		if doc, err = s.Run(ctx, doc, vars); err != nil {
			if ctx.Err() != nil {
				// Stopped by shutdown, not by the data: handled again after the restart.
				return nil, fmt.Errorf("step %d: %w", i+1, ctx.Err())
			}
			return nil, fault.Permanent(fmt.Errorf("step %d: %w", i+1, err))
		}
	}
	b, err := format.Encode(doc)
	if err != nil {
		return nil, fault.Permanent(err)
	}
	return b, nil
}
