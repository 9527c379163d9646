// Package runtime runs one pipeline stage as a consumer group on its topic: it fetches records,
// hands them to a handler with per-key ordering and parallelism across keys, bounds the records
// in flight (backpressure), retries transient failures without blocking other keys, and commits
// each partition's offset only over the contiguous prefix of finished records, so a crash
// re-delivers and never skips.
package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/fault"
)

// Handler handles a batch of records. It returns nil when every record succeeded, or a slice
// with one error per record (nil entries for successes). A transient error makes the stage retry
// that record after a backoff; a permanent one (fault.Permanent) is passed to Config.OnPermanent
// and the record counts as finished. Handlers are called from up to Config.Workers goroutines at
// once; a batch never holds two records with the same key.
type Handler func(ctx context.Context, recs []buffer.Record) []error

// Config describes a stage.
type Config struct {
	Name  string // for logs
	Topic string
	Group string
	// Yield, when set and true, holds the stage to one handler call at a time: something with
	// priority (ingest, absorbing a burst) needs the CPU, and the records wait in the log.
	Yield func() bool
	// Rate, when set, caps the records handed to the handler per second (a backend's sustained
	// rate): the backlog waits in the log, not in memory. Its burst must be at least BatchSize.
	Rate *rate.Limiter
	// Partitions, when set, restricts the stage to these partitions of Topic (the instance's
	// share, see internal/cluster); the buffer must be a buffer.PartitionConsumer.
	Partitions []int
	Workers    int // concurrent handler calls (default 4)
	Window     int // records fetched and not yet finished (default 4096): the backpressure bound
	// Span bounds the records fetched and not yet committed (default 16 × Window). A record
	// that keeps failing holds its partition's commit point; the records behind it finish and
	// free their Window slots, so other keys keep flowing until Span is reached.
	Span      int
	BatchSize int // records per handler call (default 256)
	// Backoff bounds the delay before a transient failure is retried (doubling, with jitter).
	MinBackoff, MaxBackoff time.Duration
	// CommitEvery throttles offset commits (default 50ms).
	CommitEvery time.Duration
	// DrainTimeout bounds how long in-flight handler calls may run after shutdown starts.
	DrainTimeout time.Duration
	// Fail, when set, takes every failed record of a handler call (transient or permanent) and
	// owns what happens next — a durable retry schedule, a dead letter. The records count as
	// finished once it returns nil, so a record waiting for its retry holds up neither its key
	// nor its partition. An error stops the stage without finishing them.
	Fail func(recs []buffer.Record, errs []error) error
	// Without Fail, the stage retries transient failures itself, in memory: the record holds
	// its key and its partition's commit point until it succeeds.
	// OnPermanent is told about records that failed permanently (optional).
	OnPermanent func(rec buffer.Record, err error)
	// Hold, when set, is asked before a record runs: true means it was set aside durably to run
	// later (behind a strict-order key waiting for a retry) and now counts as finished.
	Hold func(rec buffer.Record) (bool, error)
	// Done, when set, is told about the records that succeeded, before they count as finished.
	Done func(recs []buffer.Record) error
	// Pause, when set, stops the stage while it is paused (a paused endpoint): it neither
	// fetches nor starts handler calls; records stay in the log, or in memory once fetched.
	Pause Pauser
	// Stats, when set, is kept up to date for metrics readers on other goroutines.
	Stats *Stats
	// Limiter, when set, adapts the handler calls in flight between 1 and Workers (see
	// AdaptiveLimit); without it the stage runs Workers calls at once.
	Limiter Limiter
	// OnRetry is told about transient failures before the retry is scheduled (optional).
	OnRetry func(rec buffer.Record, attempt int, err error, next time.Duration)
	Logger  *slog.Logger
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Window <= 0 {
		c.Window = 4096
	}
	if c.Span < c.Window {
		c.Span = 16 * c.Window
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 256
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = 30 * time.Second
	}
	if c.CommitEvery <= 0 {
		c.CommitEvery = 50 * time.Millisecond
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Stats are a stage's live figures.
type Stats struct {
	// InFlight counts the records fetched and not finished (at most Config.Window): handled,
	// waiting for their key, or waiting for an in-memory retry.
	InFlight atomic.Int64
}

// Pauser says whether a stage must hold off, and waits until it may go on.
type Pauser interface {
	Paused() bool
	Wait(ctx context.Context) error
}

// item is one record in flight.
type item struct {
	rec     buffer.Record
	key     string
	attempt int
	done    bool
}

// partition tracks a partition's records in fetch order, to commit the finished prefix.
type partition struct {
	queue     []*item // in offset order; the head is the oldest unfinished-or-uncommitted
	committed uint64  // next offset already committed
	next      uint64  // next offset to commit (end of the finished prefix)
}

type result struct {
	batch    []*item
	errs     []error
	took     time.Duration
	inflight int // calls in flight when it was dispatched
}

// Stage is a running consumer group. Create it with Run.
type Stage struct {
	cfg     Config
	handler Handler
	cons    buffer.Consumer

	window  *window // records fetched and not finished
	span    *window // records fetched and not committed
	fetched chan []buffer.Record
	results chan result
	retries chan *item
	work    chan work
	stopped chan struct{} // closed when the dispatcher stops taking retries

	parts   map[int]*partition
	busy    map[string][]*item // key → records waiting behind the one in flight
	ready   []*item
	running int
	stats   *Stats
}

// Run consumes cfg.Topic as cfg.Group until ctx ends, then drains: it stops fetching, lets
// in-flight handler calls finish (up to DrainTimeout), commits, and closes the consumer.
func Run(ctx context.Context, b buffer.Buffer, cfg Config, h Handler) error {
	cfg.defaults()
	var cons buffer.Consumer
	var err error
	if cfg.Partitions != nil {
		pc, ok := b.(buffer.PartitionConsumer)
		if !ok {
			return fmt.Errorf("stage %s: the buffer cannot consume some partitions only", cfg.Name)
		}
		cons, err = pc.ConsumePartitions(ctx, cfg.Topic, cfg.Group, cfg.Partitions)
	} else {
		cons, err = b.Consume(ctx, cfg.Topic, cfg.Group)
	}
	if err != nil {
		return fmt.Errorf("stage %s: %w", cfg.Name, err)
	}
	s := &Stage{
		cfg: cfg, handler: h, cons: cons,
		window:  newWindow(cfg.Window),
		span:    newWindow(cfg.Span),
		fetched: make(chan []buffer.Record, 4),
		results: make(chan result, cfg.Workers),
		retries: make(chan *item, 64),
		work:    make(chan work),
		stopped: make(chan struct{}),
		parts:   map[int]*partition{},
		busy:    map[string][]*item{},
	}
	if s.stats = cfg.Stats; s.stats == nil {
		s.stats = &Stats{} // counted either way: one atomic add per record
	}
	return s.run(ctx)
}

func (s *Stage) run(ctx context.Context) error {
	// Handlers run under their own context: shutdown first stops new work, then gives the work
	// in flight DrainTimeout before cancelling it.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	// The fetcher has its own context, so that it stops however the loop below ends.
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	var wg sync.WaitGroup
	fetchErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		fetchErr <- s.fetch(fetchCtx)
	}()
	var workers sync.WaitGroup
	for range s.cfg.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for w := range s.work {
				if l := s.cfg.Rate; l != nil {
					_ = l.WaitN(workCtx, len(w.batch)) // an error: the stop's bound passed; the call fails the same way
				}
				start := time.Now()
				errs := s.call(workCtx, w.batch)
				s.results <- result{batch: w.batch, errs: errs, took: time.Since(start), inflight: w.inflight}
			}
		}()
	}

	tick := time.NewTicker(s.cfg.CommitEvery)
	defer tick.Stop()
	var runErr error
	var pending []*item // the batch offered to the workers, taken from ready
loop:
	for {
		var workc chan work
		if pending == nil && len(s.ready) > 0 && s.running < s.limit() && !s.paused() {
			var err error
			if pending, err = s.nextBatch(); err != nil {
				runErr = err
				break loop
			}
		}
		if pending != nil {
			workc = s.work
		}
		select {
		case <-ctx.Done():
			break loop
		case err := <-fetchErr:
			if !fault.IsShutdown(ctx, err) {
				runErr = fmt.Errorf("stage %s: fetch: %w", s.cfg.Name, err)
			}
			break loop
		case recs := <-s.fetched:
			s.admit(recs)
		case it := <-s.retries:
			s.ready = append(s.ready, it)
		case r := <-s.results:
			s.running--
			if err := s.finish(r); err != nil {
				runErr = err
				break loop
			}
		case workc <- work{batch: pending, inflight: s.running + 1}:
			pending = nil
			s.running++
		case <-tick.C:
			if err := s.commit(ctx); err != nil {
				if ctx.Err() == nil { // not just the stop arriving mid-commit
					runErr = err
				}
				break loop
			}
		}
	}
	// Drain, bounded by DrainTimeout: no more fetching and no more retries. On a clean stop the
	// records already fetched keep going to the workers, so that the finished prefix (and thus
	// the commit) reaches as far as it can and fewer effects are repeated after the restart;
	// whatever is left when the bound passes stays uncommitted and is handled again next time.
	close(s.stopped)
	stopFetch()
	deadline := time.NewTimer(s.cfg.DrainTimeout)
	defer deadline.Stop()
	cancelAt := time.AfterFunc(s.cfg.DrainTimeout, cancelWork) // running calls get the same bound
	defer cancelAt.Stop()
	if runErr == nil {
	drain:
		for pending != nil || len(s.ready) > 0 || s.running > 0 {
			var workc chan work
			if s.paused() && pending == nil && s.running == 0 {
				break drain // what is left runs after the restart
			}
			if pending == nil && len(s.ready) > 0 && s.running < s.limit() && !s.paused() {
				var err error
				if pending, err = s.nextBatch(); err != nil {
					runErr = err
					break drain
				}
			}
			if pending != nil {
				workc = s.work
			}
			select {
			case workc <- work{batch: pending, inflight: s.running + 1}:
				pending = nil
				s.running++
			case r := <-s.results:
				s.running--
				if err := s.finish(r); err != nil {
					runErr = err
					break drain
				}
			case <-deadline.C:
				break drain
			}
		}
	}
	close(s.work)
	for s.running > 0 {
		r := <-s.results
		s.running--
		if err := s.finish(r); err != nil && runErr == nil {
			runErr = err
		}
	}
	workers.Wait()
	if err := s.commit(context.WithoutCancel(ctx)); err != nil && runErr == nil {
		runErr = err
	}
	s.cons.Close()
	wg.Wait()
	return runErr
}

func (s *Stage) paused() bool { return s.cfg.Pause != nil && s.cfg.Pause.Paused() }

// fetch pulls records while both the window and the span have room.
func (s *Stage) fetch(ctx context.Context) error {
	for {
		if s.cfg.Pause != nil {
			if err := s.cfg.Pause.Wait(ctx); err != nil {
				return err
			}
		}
		n, err := s.window.acquire(ctx, s.cfg.BatchSize*4)
		if err != nil {
			return err
		}
		m, err := s.span.acquire(ctx, n)
		if err != nil {
			s.window.release(n)
			return err
		}
		s.window.release(n - m)
		n = m
		recs, err := s.cons.Fetch(ctx, n)
		if err != nil {
			s.window.release(n)
			s.span.release(n)
			return err
		}
		if len(recs) < n {
			s.window.release(n - len(recs))
			s.span.release(n - len(recs))
		}
		if len(recs) == 0 {
			continue
		}
		select {
		case s.fetched <- recs:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// admit queues fetched records: each joins its partition's commit queue, and becomes ready
// unless an earlier record with the same key is still unfinished.
func (s *Stage) admit(recs []buffer.Record) {
	s.stats.InFlight.Add(int64(len(recs)))
	for _, r := range recs {
		it := &item{rec: r, key: string(r.Key)}
		p := s.parts[r.Partition]
		if p == nil {
			p = &partition{committed: r.Offset, next: r.Offset}
			s.parts[r.Partition] = p
		}
		p.queue = append(p.queue, it)
		if waiting, ok := s.busy[it.key]; ok {
			s.busy[it.key] = append(waiting, it)
			continue
		}
		s.busy[it.key] = nil
		s.ready = append(s.ready, it)
	}
}

func (s *Stage) nextBatch() ([]*item, error) {
	batch := make([]*item, 0, min(len(s.ready), s.cfg.BatchSize))
	for len(batch) < s.cfg.BatchSize && len(s.ready) > 0 {
		it := s.ready[0]
		s.ready[0] = nil
		s.ready = s.ready[1:]
		if s.cfg.Hold != nil {
			held, err := s.cfg.Hold(it.rec)
			if err != nil {
				return nil, fmt.Errorf("stage %s: %w", s.cfg.Name, err)
			}
			if held {
				s.done(it) // may make the key's next record ready
				continue
			}
		}
		batch = append(batch, it)
	}
	if len(s.ready) == 0 {
		s.ready = nil
	}
	if len(batch) == 0 {
		return nil, nil
	}
	return batch, nil
}

// call runs the handler, turning a panic into a permanent error for the whole batch.
func (s *Stage) call(ctx context.Context, batch []*item) (errs []error) {
	recs := make([]buffer.Record, len(batch))
	for i, it := range batch {
		recs[i] = it.rec
	}
	defer func() {
		if p := recover(); p != nil {
			err := fault.Permanent(fmt.Errorf("panic in stage %s: %v\n%s", s.cfg.Name, p, debug.Stack()))
			errs = make([]error, len(batch))
			for i := range errs {
				errs[i] = err
			}
		}
	}()
	errs = s.handler(ctx, recs)
	if errs != nil && len(errs) != len(batch) {
		err := fmt.Errorf("stage %s: handler returned %d results for %d records", s.cfg.Name, len(errs), len(batch))
		errs = make([]error, len(batch))
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// work is a batch handed to a worker.
type work struct {
	batch    []*item
	inflight int
}

// limit is how many handler calls may run now.
func (s *Stage) limit() int {
	if s.cfg.Yield != nil && s.cfg.Yield() {
		return 1
	}
	if s.cfg.Limiter == nil {
		return s.cfg.Workers
	}
	return clamp(s.cfg.Limiter.Limit(), 1, s.cfg.Workers)
}

func (s *Stage) finish(r result) error {
	if s.cfg.Limiter != nil {
		s.cfg.Limiter.Observe(r.took, r.inflight, overloaded(r.errs))
	}
	if s.cfg.Done != nil {
		var ok []buffer.Record
		for i, it := range r.batch {
			if r.errs == nil || r.errs[i] == nil {
				ok = append(ok, it.rec)
			}
		}
		if len(ok) > 0 {
			if err := s.cfg.Done(ok); err != nil {
				return fmt.Errorf("stage %s: %w", s.cfg.Name, err)
			}
		}
	}
	if s.cfg.Fail != nil && r.errs != nil {
		var recs []buffer.Record
		var errs []error
		for i, err := range r.errs {
			if err != nil {
				recs = append(recs, r.batch[i].rec)
				errs = append(errs, err)
			}
		}
		if len(recs) > 0 {
			if err := s.cfg.Fail(recs, errs); err != nil {
				// Not finished: the commit stays before them and they run again after a restart.
				return fmt.Errorf("stage %s: recording %d failures: %w", s.cfg.Name, len(recs), err)
			}
		}
		for _, it := range r.batch {
			s.done(it)
		}
		return nil
	}
	for i, it := range r.batch {
		var err error
		if r.errs != nil {
			err = r.errs[i]
		}
		switch {
		case err == nil:
		case fault.IsPermanent(err):
			if s.cfg.OnPermanent != nil {
				s.cfg.OnPermanent(it.rec, err)
			} else {
				s.cfg.Logger.Error("record failed permanently", "stage", s.cfg.Name, "partition", it.rec.Partition, "offset", it.rec.Offset, "err", err)
			}
		default:
			it.attempt++
			d := s.backoff(it.attempt, err)
			if s.cfg.OnRetry != nil {
				s.cfg.OnRetry(it.rec, it.attempt, err, d)
			}
			time.AfterFunc(d, func() {
				select {
				case s.retries <- it:
				case <-s.stopped:
				}
			})
			continue
		}
		s.done(it)
	}
	return nil
}

// done marks it finished, releases the next record of its key and advances the commit point.
func (s *Stage) done(it *item) {
	it.done = true
	s.stats.InFlight.Add(-1)
	s.window.release(1)
	if waiting := s.busy[it.key]; len(waiting) > 0 {
		s.ready = append(s.ready, waiting[0])
		s.busy[it.key] = waiting[1:]
	} else {
		delete(s.busy, it.key)
	}
	p := s.parts[it.rec.Partition]
	n := 0
	for n < len(p.queue) && p.queue[n].done {
		p.next = p.queue[n].rec.Offset + 1
		n++
	}
	if n > 0 {
		clear(p.queue[:n])
		p.queue = p.queue[n:]
		s.span.release(n)
	}
}

func (s *Stage) commit(ctx context.Context) error {
	for id, p := range s.parts {
		if p.next == p.committed {
			continue
		}
		if err := s.cons.Commit(ctx, id, p.next); err != nil {
			return fmt.Errorf("stage %s: commit partition %d: %w", s.cfg.Name, id, err)
		}
		p.committed = p.next
	}
	return nil
}

func (s *Stage) backoff(attempt int, err error) time.Duration {
	if d, ok := fault.RetryAfter(err); ok {
		return min(max(d, s.cfg.MinBackoff), 24*time.Hour)
	}
	d := s.cfg.MinBackoff << min(attempt-1, 30)
	if d > s.cfg.MaxBackoff || d <= 0 {
		d = s.cfg.MaxBackoff
	}
	// Full jitter on the upper half, so retries of many records spread out.
	return d/2 + rand.N(d/2+1)
}

// window is a counting semaphore whose waiters honour a context.
type window struct {
	mu    sync.Mutex
	free  int
	avail chan struct{} // closed when free grows
}

func newWindow(n int) *window { return &window{free: n, avail: make(chan struct{})} }

// acquire waits for room and takes up to max slots.
func (w *window) acquire(ctx context.Context, max int) (int, error) {
	for {
		w.mu.Lock()
		if w.free > 0 {
			n := min(w.free, max)
			w.free -= n
			w.mu.Unlock()
			return n, nil
		}
		ch := w.avail
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (w *window) release(n int) {
	if n == 0 {
		return
	}
	w.mu.Lock()
	w.free += n
	close(w.avail)
	w.avail = make(chan struct{})
	w.mu.Unlock()
}
