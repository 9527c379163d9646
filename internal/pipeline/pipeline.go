// Package pipeline holds the handlers of Weir's three stages — process, persist and deliver —
// that the runtime runs as consumer groups on their topics:
//
//	[process] jq steps, then route → [persist] SQL upsert
//	                               → [deliver.<endpoint>] signed webhook, one topic per endpoint
//	                               → [workflow] a saga (internal/workflow)
//
// Each handler records every success in the message's status trail. Handlers never block on a
// failure: they return it, and internal/retry schedules the next attempt or dead-letters it.
package pipeline

import (
	"time"

	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/state"
)

// Topic names.
const (
	TopicProcess  = "process"
	TopicPersist  = "persist"
	TopicWorkflow = "workflow"
)

// DeliverTopic is the topic (and consumer group) of one partner endpoint, so that a slow or
// failing partner holds up nobody else.
func DeliverTopic(endpoint string) string { return "deliver." + endpoint }

// Recorder is where handlers write status events; *state.Store implements it.
type Recorder interface {
	Record(events ...state.Event) error
}

// Stage names in status trails.
const (
	StageProcess  = "process"
	StagePersist  = "persist"
	StageDeliver  = "deliver"
	StageWorkflow = "workflow"
)

// event builds a status event for m.
func event(m *message.Message, stage, status string) state.Event {
	return state.Event{Client: m.Client, ID: m.ID, Type: m.Type, Stage: stage, Endpoint: m.Endpoint, Status: status, At: time.Now().UTC()}
}

// each returns a slice of n copies of err (a whole batch failing the same way).
func each(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}
