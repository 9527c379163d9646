package pipeline

import (
	"context"
	"fmt"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/fault"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/sink"
	"github.com/weirhq/weir/internal/state"
)

// Persist returns the persist stage's handler: it writes a batch to each type's sink in one
// call (an idempotent upsert), and when a batch fails permanently, isolates the bad messages so
// the good ones are still written.
func Persist(rec Recorder, sinks map[string]sink.Sink) func(context.Context, []buffer.Record) []error {
	return func(ctx context.Context, recs []buffer.Record) []error {
		errs := make([]error, len(recs))
		failed := false
		byType := map[string][]int{}
		msgs := make([]message.Message, len(recs))
		for i, r := range recs {
			m, err := message.Decode(r.Value)
			if err != nil {
				errs[i], failed = fault.Permanent(err), true
				continue
			}
			msgs[i] = m
			byType[m.Type] = append(byType[m.Type], i)
		}
		var events []state.Event
		for typ, idx := range byType {
			s := sinks[typ]
			if s == nil {
				for _, i := range idx {
					errs[i], failed = fault.Permanent(fmt.Errorf("message type %q has no sink", typ)), true
				}
				continue
			}
			batch := make([]message.Message, len(idx))
			for j, i := range idx {
				batch[j] = msgs[i]
			}
			err := s.Write(ctx, batch)
			var each []error
			if err != nil && fault.IsPermanent(err) {
				if iso, ok := s.(sink.Isolator); ok {
					each = iso.WriteEach(ctx, batch)
				}
			}
			for j, i := range idx {
				e := err
				if each != nil {
					e = each[j]
				}
				if e != nil {
					errs[i], failed = e, true
					continue
				}
				events = append(events, event(&msgs[i], StagePersist, state.StatusPersisted))
			}
		}
		rec.Record(events...)
		if !failed {
			return nil
		}
		return errs
	}
}
