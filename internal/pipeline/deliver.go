package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/state"
)

// Deliver returns the handler of one endpoint's deliver stage: each message is POSTed, signed,
// with webhook-id = message id, so a retry or a redelivery after a crash carries the same id.
// The records of a batch (all of different keys) are sent concurrently.
// Every attempt's outcome goes to health (optional), which counts failure streaks.
func Deliver(rec Recorder, client *deliver.Client, ep *deliver.Endpoint, health *deliver.Health) func(context.Context, []buffer.Record) []error {
	return func(ctx context.Context, recs []buffer.Record) []error {
		errs := make([]error, len(recs))
		events := make([]state.Event, len(recs))
		var wg sync.WaitGroup
		for i, r := range recs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				events[i], errs[i] = deliverOne(ctx, client, ep, r)
				if health != nil && !fault.IsShutdown(ctx, errs[i]) {
					msg := ""
					if errs[i] != nil {
						msg = errs[i].Error()
					}
					health.Observe(errs[i] == nil, msg, time.Now())
				}
			}()
		}
		wg.Wait()
		var ok []state.Event
		failed := false
		for i := range recs {
			if errs[i] != nil {
				failed = true
			} else if events[i].ID != "" {
				ok = append(ok, events[i])
			}
		}
		rec.Record(ok...)
		if !failed {
			return nil
		}
		return errs
	}
}

func deliverOne(ctx context.Context, client *deliver.Client, ep *deliver.Endpoint, r buffer.Record) (state.Event, error) {
	m, err := message.Decode(r.Value)
	if err != nil {
		return state.Event{}, fault.Permanent(err)
	}
	res := client.Deliver(ctx, ep, m.ID, m.Payload)
	if res.Err != nil {
		return state.Event{}, res.Err // already names the endpoint
	}
	e := event(&m, StageDeliver, state.StatusDelivered)
	e.Code = res.Status
	e.Attempts = int(m.Attempt) + 1
	return e, nil
}
