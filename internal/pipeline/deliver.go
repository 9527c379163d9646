package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/state"
)

// Deliver returns the handler of one endpoint's deliver stage: each message is POSTed, signed,
// with webhook-id = WebhookID(client, type, message id), so a retry, a replay or a redelivery
// after a crash carries the same id.
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
	res := client.Deliver(ctx, ep, WebhookID(m.Client, m.Type, m.ID), m.Payload)
	if res.Err != nil {
		return state.Event{}, res.Err // already names the endpoint
	}
	e := event(&m, StageDeliver, state.StatusDelivered)
	e.Code = res.Status
	e.Attempts = int(m.Attempt) + 1
	return e, nil
}

// WebhookID returns the webhook-id of the message (client, typ, id): "msg_" and the first 32 hex
// digits of the SHA-256 of the three, NUL-separated (client ids and type names never hold a NUL,
// so no two messages share the hashed text). A message id is unique only per client and type, so
// two clients (or two types) may both send "order-1"; used alone as the webhook-id, a partner that
// deduplicates on it, as Standard Webhooks recommends, would silently drop the second. The hash
// depends on nothing but the message's identity, so every attempt, replay and redelivery of one
// message carries the same id, and it is opaque, fixed-length and header-safe whatever characters
// the client put in its id.
func WebhookID(client, typ, id string) string {
	sum := sha256.Sum256([]byte(client + "\x00" + typ + "\x00" + id))
	return "msg_" + hex.EncodeToString(sum[:16])
}
