// Package pipeline holds the handlers of Weir's three stages — process, persist and deliver —
// that the runtime runs as consumer groups on their topics:
//
//	[process] jq steps, then route → [persist] SQL upsert
//	                               → [deliver.<endpoint>] signed webhook, one topic per endpoint
//
// Each handler records the outcome of every message in its status trail. Handlers never block on
// a failure: they return it and the runtime schedules the retry.
package pipeline

import (
	"errors"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/state"
)

// Topic names.
const (
	TopicProcess = "process"
	TopicPersist = "persist"
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
	StageProcess = "process"
	StagePersist = "persist"
	StageDeliver = "deliver"
)

// event builds a status event for m.
func event(m *message.Message, stage, status string) state.Event {
	return state.Event{Client: m.Client, ID: m.ID, Type: m.Type, Stage: stage, Endpoint: m.Endpoint, Status: status, At: time.Now().UTC()}
}

// Failed returns an OnPermanent hook that records a permanent failure in the trail.
func Failed(rec Recorder, stage string) func(buffer.Record, error) {
	return func(r buffer.Record, err error) {
		m, derr := message.Decode(r.Value)
		if derr != nil {
			return
		}
		e := event(&m, stage, state.StatusFailed)
		e.Error = bounded(err.Error())
		if se := statusOf(err); se != 0 {
			e.Code = se
		}
		rec.Record(e)
	}
}

// Retrying returns an OnRetry hook that records the attempt and the next one in the trail.
func Retrying(rec Recorder, stage string) func(buffer.Record, int, error, time.Duration) {
	return func(r buffer.Record, attempt int, err error, next time.Duration) {
		m, derr := message.Decode(r.Value)
		if derr != nil {
			return
		}
		e := event(&m, stage, state.StatusRetrying)
		e.Attempts = attempt
		e.Error = bounded(err.Error())
		e.Code = statusOf(err)
		e.NextAt = e.At.Add(next)
		rec.Record(e)
	}
}

func statusOf(err error) int {
	var se *fault.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func bounded(s string) string {
	const max = 512
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// each returns a slice of n copies of err (a whole batch failing the same way).
func each(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}
