package pipeline

import (
	"context"
	"sync"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/state"
)

// Deliver returns the handler of one endpoint's deliver stage: each message is POSTed, signed,
// with webhook-id = message id, so a retry or a redelivery after a crash carries the same id.
// The records of a batch (all of different keys) are sent concurrently.
func Deliver(rec Recorder, client *deliver.Client, ep *deliver.Endpoint) func(context.Context, []buffer.Record) []error {
	return func(ctx context.Context, recs []buffer.Record) []error {
		errs := make([]error, len(recs))
		events := make([]state.Event, len(recs))
		var wg sync.WaitGroup
		for i, r := range recs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				events[i], errs[i] = deliverOne(ctx, client, ep, r)
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
	return e, nil
}
