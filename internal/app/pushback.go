package app

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/weirhq/weir/internal/buffer"
)

// Early pushback: ingest refuses new messages with 429 and Retry-After, at once and before
// reading a body, while a stage's backlog is above limits.max_backlog or the data dir's disk has
// less than limits.min_free_disk free — instead of accepting what cannot be handled in time, or
// failing on a full disk. Every request reads the verdict with one atomic load; a watcher
// refreshes it.

// refusal is why ingest refuses new messages, and when to come back.
type refusal struct {
	reason     string
	retryAfter time.Duration
}

// pushbackEvery is how often the watcher looks at the backlogs and the disk.
const pushbackEvery = 200 * time.Millisecond

// admit is the ingest gateway's check: "" when it may take messages.
func (a *App) admit() (string, time.Duration) {
	if r := a.refusing.Load(); r != nil {
		return r.reason, r.retryAfter
	}
	return "", 0
}

// watchPushback keeps a.refusing up to date until ctx ends.
func (a *App) watchPushback(ctx context.Context) {
	lim := a.cfg.Limits
	lagger, _ := a.buf.(buffer.Lagger)
	if (lim.MaxBacklog <= 0 || lagger == nil) && (lim.MinFreeDisk == nil || *lim.MinFreeDisk <= 0) {
		return
	}
	dir := a.cfg.Path(a.cfg.DataDir)
	last := map[string]int64{} // each stage's finished count at the previous look
	lastAt := time.Now()
	every(ctx, pushbackEvery, func() bool {
		now := time.Now()
		var r *refusal
		if lim.MaxBacklog > 0 && lagger != nil {
			r = a.backlogRefusal(ctx, lagger, last, now.Sub(lastAt))
		}
		if r == nil && lim.MinFreeDisk != nil && *lim.MinFreeDisk > 0 {
			var st syscall.Statfs_t
			if err := syscall.Statfs(dir, &st); err == nil {
				if free := int64(st.Bavail) * int64(st.Bsize); free < int64(*lim.MinFreeDisk) {
					r = &refusal{reason: fmt.Sprintf("only %d MiB free on the data dir's disk, below limits.min_free_disk", free>>20), retryAfter: 30 * time.Second}
				}
			}
		}
		lastAt = now
		if old := a.refusing.Swap(r); (old == nil) != (r == nil) {
			if r != nil {
				a.log.Warn("ingest: refusing new messages (429)", "reason", r.reason)
			} else {
				a.log.Info("ingest: taking new messages again")
			}
		}
		return true
	})
}

// backlogRefusal looks at every stage's backlog. Once refusing, it keeps refusing until every
// backlog is under 90% of the mark, so that ingest does not flap at the mark. Retry-After is the
// time the worst stage needs, at its recent rate, to drain to that level (1 s to 1 min).
func (a *App) backlogRefusal(ctx context.Context, lagger buffer.Lagger, last map[string]int64, dt time.Duration) *refusal {
	mark := a.cfg.Limits.MaxBacklog
	if a.refusing.Load() != nil {
		mark = mark * 9 / 10
	}
	var worst *refusal
	for _, s := range a.stages {
		done := a.finished[s.cfg.Name].Load()
		drained := done - last[s.cfg.Name]
		last[s.cfg.Name] = done
		lag, err := lagger.Lag(ctx, s.cfg.Topic, s.cfg.Group)
		if err != nil {
			continue // the metrics report it; a broker hiccup is no reason to refuse
		}
		var n int64
		for _, l := range lag {
			n += l
		}
		if n <= mark {
			continue
		}
		wait := time.Second
		if drained > 0 && dt > 0 {
			wait = time.Duration(float64(n-a.cfg.Limits.MaxBacklog*9/10) / float64(drained) * float64(dt))
		}
		wait = min(max(wait, time.Second), time.Minute)
		if worst == nil || wait > worst.retryAfter {
			worst = &refusal{reason: fmt.Sprintf("stage %s has %d records waiting, above limits.max_backlog (%d)", s.cfg.Name, n, a.cfg.Limits.MaxBacklog), retryAfter: wait}
		}
	}
	return worst
}
