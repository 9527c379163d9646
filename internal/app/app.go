// Package app is Weir's composition root: it builds every part from a checked config — the
// embedded log and state store, the ingest gateway, the process, persist and deliver stages, the
// sinks and the webhook client — and owns their lifecycle, shutting them down in order: stop
// accepting, stop reading, drain within a bound, commit, close.
package app

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/weirhq/weir/internal/admin"
	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/buffer/embedded"
	"github.com/weirhq/weir/internal/cluster"
	"github.com/weirhq/weir/internal/config"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/format"
	"github.com/weirhq/weir/internal/format/libxml"
	"github.com/weirhq/weir/internal/ingest"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/obs"
	"github.com/weirhq/weir/internal/pipeline"
	"github.com/weirhq/weir/internal/retry"
	"github.com/weirhq/weir/internal/runtime"
	"github.com/weirhq/weir/internal/sink"
	sqlsink "github.com/weirhq/weir/internal/sink/sql"
	"github.com/weirhq/weir/internal/state"
	"github.com/weirhq/weir/internal/workflow"
)

// Options are run-time choices that are not part of the config file.
type Options struct {
	Logger *slog.Logger
	// IngestAddr and AdminAddr override the config's listeners when set.
	IngestAddr, AdminAddr string
	// AllowPrivate lets every endpoint reach loopback and private addresses (tests, the demo).
	AllowPrivate bool
	// HoldStages keeps the stages from consuming until StartStages is called, so that a
	// benchmark can measure ingest alone and then the drain of the backlog.
	HoldStages bool
	// Failpoints kill the process at workflow step boundaries (crash tests only; see
	// internal/workflow).
	Failpoints string
}

// App is a running Weir.
type App struct {
	cfg     *config.Config
	opts    Options
	log     *slog.Logger
	metrics *obs.Metrics

	db     *embedded.Log // the state store's database; also the log when the buffer is embedded
	buf    buffer.Buffer // the log between the stages
	store  *state.Store
	pg     *state.Postgres // the shared state store, when the config names one
	member *cluster.Member // this instance's part in sharing the partitions (with pg)
	// instance names this process among the instances sharing a state store (leases).
	instance string
	refusing atomic.Pointer[refusal] // why ingest refuses new messages now (nil: it does not); see pushback.go
	dbs      map[string]*sqlsink.DB
	gateway  *ingest.Gateway
	stages   []stageSpec
	retries  *retry.Retries
	health   map[string]*deliver.Health // by endpoint

	ingestLn, adminLn net.Listener
	ingestSrv         *http.Server
	adminSrv          *http.Server

	finished map[string]*atomic.Int64 // records finished per stage (done or failed for good)
	release  chan struct{}            // closed by StartStages
	starting sync.Once
}

// StartStages lets the stages consume. Run calls it unless Options.HoldStages is set.
func (a *App) StartStages() { a.starting.Do(func() { close(a.release) }) }

type stageSpec struct {
	cfg     runtime.Config
	handler runtime.Handler
}

// compiled is what Check and New both derive from a config.
type compiled struct {
	types   []ingest.Type
	routes  map[string]*pipeline.Route
	clients []ingest.Client
	steps   map[string]retry.Policy       // process and persist schedule by type
	deliver map[string]retry.Policy       // by endpoint
	flows   map[string]*workflow.Workflow // by message type
}

// compile turns the config's schemas, jq programs and tokens into their runtime forms,
// reporting every problem.
func compile(cfg *config.Config) (*compiled, error) {
	var probs config.Problems
	c := &compiled{routes: map[string]*pipeline.Route{}, steps: map[string]retry.Policy{}, deliver: map[string]retry.Policy{},
		flows: map[string]*workflow.Workflow{}}
	flows := map[string]*workflow.Workflow{}
	for i := range cfg.Workflows {
		w := &cfg.Workflows[i]
		wf, err := workflow.Compile(w, fmt.Sprintf("workflows[%d]", i))
		if err != nil {
			var wp *config.Problems
			if errors.As(err, &wp) {
				probs.List = append(probs.List, wp.List...)
			} else {
				probs.Add(fmt.Sprintf("workflows[%d]", i), "%v", err)
			}
			continue
		}
		flows[w.Name] = wf
	}
	for i, t := range cfg.Types {
		at := fmt.Sprintf("types[%d]", i)
		it := ingest.Type{Name: t.Name, KeyPointer: t.Key, IDPointer: t.ID}
		if len(t.SchemaDoc) > 0 {
			s, err := format.CompileSchema(t.Name, t.SchemaDoc)
			if err != nil {
				probs.Add(at+".schema", "%v", err)
			}
			it.Schema = s
		}
		for j, x := range t.XML {
			xi, err := xmlInput(cfg, &x)
			if err != nil {
				probs.Add(fmt.Sprintf("%s.xml[%d]", at, j), "%v", err)
				continue
			}
			it.XML = append(it.XML, xi)
		}
		route := &pipeline.Route{Persist: t.Pipeline.Sink != nil, Endpoints: t.Pipeline.Deliver, Workflow: t.Pipeline.Workflow != ""}
		if wf := flows[t.Pipeline.Workflow]; wf != nil {
			c.flows[t.Name] = wf
			it.Expect = append(it.Expect, "workflow")
			it.Workflow = true
			if len(t.Pipeline.Process) == 0 && t.Pipeline.Sink == nil && len(t.Pipeline.Deliver) == 0 {
				// Nothing for the process stage to do: straight to the workflow stage.
				it.Topic = pipeline.TopicWorkflow
			}
		}
		for j, st := range t.Pipeline.Process {
			q, err := format.CompileJQ(st.JQ)
			if err != nil {
				probs.Add(fmt.Sprintf("%s.pipeline.process[%d]", at, j), "%v", err)
				continue
			}
			route.Steps = append(route.Steps, q)
		}
		if route.Persist {
			it.Expect = append(it.Expect, "persist")
		}
		for _, ep := range t.Pipeline.Deliver {
			it.Expect = append(it.Expect, "deliver:"+ep)
		}
		c.types = append(c.types, it)
		c.routes[t.Name] = route
		c.steps[t.Name] = retry.Configured(t.Pipeline.Retry, retry.StepPolicy())
	}
	for _, cl := range cfg.Clients {
		ic := ingest.Client{ID: cl.ID, Types: map[string]bool{}}
		if h, err := hex.DecodeString(strings.TrimPrefix(cl.TokenHash, "sha256:")); err == nil && len(h) == len(ic.TokenHash) {
			copy(ic.TokenHash[:], h)
		}
		for _, t := range cl.Types {
			ic.Types[t] = true
		}
		if cl.RateLimit.Rate > 0 {
			ic.Limiter = rate.NewLimiter(rate.Limit(cl.RateLimit.Rate), max(cl.RateLimit.Burst, int(cl.RateLimit.Rate), 1))
		}
		c.clients = append(c.clients, ic)
	}
	for i, e := range cfg.Endpoints {
		if _, err := endpoint(&e); err != nil {
			probs.Add(fmt.Sprintf("endpoints[%d]", i), "%v", err)
		}
		c.deliver[e.Name] = retry.Configured(e.Retry, retry.DeliverPolicy())
	}
	return c, probs.Err()
}

// xmlInput compiles an XML dialect: its schemas, stylesheet and XPaths.
func xmlInput(cfg *config.Config, x *config.XMLInput) (*ingest.XMLInput, error) {
	if !libxml.Available() {
		return nil, libxml.ErrUnavailable
	}
	xi := &ingest.XMLInput{JSONOutput: x.Output == "json", IDXPath: x.ID, KeyXPath: x.Key}
	if len(x.Clients) > 0 {
		xi.Clients = map[string]bool{}
		for _, c := range x.Clients {
			xi.Clients[c] = true
		}
	}
	var err error
	if x.Schema != "" {
		if xi.Schema, err = libxml.CompileSchema(cfg.Path(x.Schema)); err != nil {
			return nil, fmt.Errorf("schema %s: %w", x.Schema, err)
		}
	}
	if x.TargetSchema != "" {
		if xi.TargetSchema, err = libxml.CompileSchema(cfg.Path(x.TargetSchema)); err != nil {
			return nil, fmt.Errorf("target_schema %s: %w", x.TargetSchema, err)
		}
	}
	if x.XSLT != "" {
		if xi.Stylesheet, err = libxml.CompileStylesheet(cfg.Path(x.XSLT), libxml.Limits{Timeout: x.Timeout.D()}); err != nil {
			return nil, fmt.Errorf("xslt %s: %w", x.XSLT, err)
		}
	}
	for _, xp := range []string{x.ID, x.Key} {
		if xp == "" {
			continue
		}
		if err := libxml.CheckXPath(xp); err != nil {
			return nil, fmt.Errorf("XPath %q: %w", xp, err)
		}
	}
	return xi, nil
}

func endpoint(e *config.Endpoint) (*deliver.Endpoint, error) {
	ep := &deliver.Endpoint{Name: e.Name, URL: e.URL, BearerToken: string(e.BearerToken), Timeout: e.Timeout.D(),
		Headers: e.Headers, AllowPrivate: e.AllowPrivate}
	if e.Secret != "" {
		for _, s := range strings.Fields(string(e.Secret)) {
			b, err := deliver.ParseSecret(s)
			if err != nil {
				return nil, fmt.Errorf("secret: %w", err)
			}
			ep.Secrets = append(ep.Secrets, b)
		}
	}
	if err := ep.Validate(); err != nil {
		return nil, err
	}
	return ep, nil
}

// Check validates a loaded config as deeply as possible without opening anything: schemas and
// jq programs compile, secrets parse, endpoints are deliverable.
func Check(cfg *config.Config) error {
	_, err := compile(cfg)
	return err
}

// New builds Weir from cfg: it opens the data dir, the sinks and the listeners.
func New(ctx context.Context, cfg *config.Config, opts Options) (a *App, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	a = &App{cfg: cfg, opts: opts, log: opts.Logger, metrics: obs.New(), dbs: map[string]*sqlsink.DB{},
		finished: map[string]*atomic.Int64{}, release: make(chan struct{})}
	built := a // the error returns below set a to nil
	defer func() {
		if err != nil {
			built.close()
		}
	}()
	for _, cl := range cfg.Clients {
		if cl.Demo {
			a.log.Warn("client uses a published demo token: never use it outside a demo", "client", cl.ID)
		}
	}

	host, _ := os.Hostname()
	a.instance = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.Uint32()&0xffff)
	dataDir := cfg.Path(cfg.DataDir)
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := a.openStorage(ctx, dataDir); err != nil {
		return nil, err
	}

	rt := cfg.Runtime
	if a.pg != nil {
		a.member = cluster.New(cluster.Config{Leases: a.pg, ID: a.instance, Partitions: rt.Partitions, Logger: a.log})
	}
	topics := []buffer.TopicConfig{
		{Name: pipeline.TopicProcess, Partitions: rt.Partitions, Groups: []string{pipeline.TopicProcess}},
		{Name: pipeline.TopicPersist, Partitions: rt.Partitions, Groups: []string{pipeline.TopicPersist}},
	}
	for _, e := range cfg.Endpoints {
		t := pipeline.DeliverTopic(e.Name)
		topics = append(topics, buffer.TopicConfig{Name: t, Partitions: rt.Partitions, Groups: []string{t}})
	}
	if len(c.flows) > 0 {
		topics = append(topics, buffer.TopicConfig{Name: pipeline.TopicWorkflow, Partitions: rt.Partitions, Groups: []string{pipeline.TopicWorkflow}})
	}
	for _, t := range topics {
		if err := a.buf.EnsureTopic(ctx, t); err != nil {
			return nil, err
		}
	}

	// Sinks: one database handle per DSN, one table per type.
	sinks := map[string]sink.Sink{}
	for _, t := range cfg.Types {
		s := t.Pipeline.Sink
		if s == nil {
			continue
		}
		dsn := s.DSN
		if name, ok := strings.CutPrefix(dsn, "sqlite:"); ok && !filepath.IsAbs(name) && !strings.HasPrefix(name, "//") {
			dsn = "sqlite:" + filepath.Join(dataDir, name)
		}
		db := a.dbs[dsn]
		if db == nil {
			if db, err = sqlsink.Open(ctx, dsn); err != nil {
				return nil, fmt.Errorf("type %s: sink: %w", t.Name, err)
			}
			a.dbs[dsn] = db
		}
		tc := sqlsink.TableConfig{Name: s.Table, UpsertKey: s.UpsertKey}
		for _, col := range s.Columns {
			tc.Columns = append(tc.Columns, sqlsink.Column{Name: col.Name, Pointer: col.Pointer, Type: sqlsink.ColumnType(col.Type)})
		}
		tbl, err := db.Table(ctx, tc)
		if err != nil {
			return nil, fmt.Errorf("type %s: sink: %w", t.Name, err)
		}
		sinks[t.Name] = tbl
	}

	// Failure handling: durable retries, dead letters, endpoint health.
	m := a.metrics
	rc := retry.Config{Store: a.store, Logger: a.log, Notify: a.notifier(), Holder: a.instance,
		Outcome: func(topic string, retried int, dead []state.DeadLetter) {
			m.Retries.WithLabelValues(topic).Add(float64(retried))
			for _, d := range dead {
				m.Dead.WithLabelValues(topic, d.Reason).Inc()
			}
			if c := a.finished[topic]; c != nil {
				c.Add(int64(len(dead)))
			}
		}}
	if a.pg != nil {
		rc.Leases = a.pg // one scheduler among the instances
	}
	a.retries = retry.New(rc, a.hasStage)
	a.health = map[string]*deliver.Health{}
	for _, e := range cfg.Endpoints {
		if a.health[e.Name], err = a.endpointHealth(e); err != nil {
			return nil, err
		}
	}

	strictTypes := map[string]bool{}
	for _, t := range cfg.Types {
		if t.Ordering == "strict" {
			strictTypes[t.Name] = true
		}
	}
	var strict func(string) bool // nil when no type asks for strict order
	if len(strictTypes) > 0 {
		strict = func(typ string) bool { return strictTypes[typ] }
	}

	// Stages.
	var stage stageFunc = func(name, topic string, workers, batch int, h runtime.Handler, st retry.Stage, pause runtime.Pauser) {
		done := &atomic.Int64{}
		a.finished[name] = done
		st.Topic, st.Strict = topic, strict
		fh, ferr := a.retries.For(st)
		if ferr != nil {
			err = errors.Join(err, ferr)
			return
		}
		a.stages = append(a.stages, stageSpec{
			cfg: runtime.Config{Name: name, Topic: topic, Group: topic, Workers: workers, Window: rt.Window, BatchSize: batch,
				DrainTimeout: rt.ShutdownTimeout.D(), Logger: a.log, Fail: fh.Fail, Hold: fh.Hold, Done: fh.Done, Pause: pause},
			handler: instrument(m, name, done, h),
		})
	}

	steps := func(typ string) retry.Policy {
		if p, ok := c.steps[typ]; ok {
			return p
		}
		return retry.StepPolicy()
	}
	stage(pipeline.StageProcess, pipeline.TopicProcess, rt.Workers, rt.BatchSize, pipeline.Process(a.buf, a.store, c.routes),
		retry.Stage{Name: pipeline.StageProcess, Policy: steps}, nil)
	if len(sinks) > 0 {
		stage(pipeline.StagePersist, pipeline.TopicPersist, rt.Workers, rt.BatchSize, pipeline.Persist(a.store, sinks),
			retry.Stage{Name: pipeline.StagePersist, Policy: steps}, nil)
		if err == nil {
			a.stages[len(a.stages)-1].cfg.Rate = stageRate(rt.PersistRateLimit, rt.BatchSize)
		}
	}
	dc := deliver.New(deliver.Config{AllowPrivate: opts.AllowPrivate})
	for i := range cfg.Endpoints {
		ep, _ := endpoint(&cfg.Endpoints[i])
		h := a.health[ep.Name]
		p := c.deliver[ep.Name]
		// Deliveries of a batch run concurrently; workers × batch bounds the requests in flight.
		stage(pipeline.DeliverTopic(ep.Name), pipeline.DeliverTopic(ep.Name), rt.DeliverWorkers/8+1, 8, pipeline.Deliver(a.store, dc, ep, h),
			retry.Stage{Name: pipeline.StageDeliver, Endpoint: ep.Name, Policy: func(string) retry.Policy { return p },
				OnGone: func() {
					if err := h.Pause("the partner answered 410 Gone", time.Now()); err != nil {
						a.log.Error("pausing an endpoint", "endpoint", ep.Name, "err", err)
					}
					a.log.Warn("endpoint disabled: the partner answered 410 Gone; resume it with weir endpoints resume", "endpoint", ep.Name)
				}},
			h)
		if err == nil {
			a.stages[len(a.stages)-1].cfg.Rate = stageRate(cfg.Endpoints[i].RateLimit, 8)
		}
	}

	if len(c.flows) > 0 {
		a.workflowStage(c.flows, stage)
	}
	if err != nil {
		return nil, err
	}

	a.reportInFlight()
	if rt.IngestPriority {
		busy := func() bool { return a.gateway != nil && a.gateway.InFlight() > int64(rt.IngestBusy) }
		for i := range a.stages {
			a.stages[i].cfg.Yield = busy
		}
	}
	if rt.AdaptiveConcurrency {
		a.adaptConcurrency()
	}
	if lg, ok := a.buf.(buffer.Lagger); ok {
		a.metrics.Registry.MustRegister(newLagCollector(a, lg))
	}

	if a.gateway, err = ingest.New(ingest.Config{
		Topic: pipeline.TopicProcess, MaxBody: int64(cfg.Limits.MaxBody), MaxBatchLines: cfg.Limits.MaxBatchLines,
		MaxInFlight: cfg.Limits.MaxInFlight, MaxInFlightPerClient: cfg.Limits.MaxInFlightPerClient,
		Clients: c.clients, Types: c.types, Logger: a.log, Health: a.storageErr, Admit: a.admit,
		OnAccepted: func(typ string, n int) { m.Accepted.WithLabelValues(typ).Add(float64(n)) },
	}, a.store); err != nil {
		return nil, err
	}

	ingestAddr, adminAddr := cfg.Listen.Ingest, cfg.Listen.Admin
	if opts.IngestAddr != "" {
		ingestAddr = opts.IngestAddr
	}
	if opts.AdminAddr != "" {
		adminAddr = opts.AdminAddr
	}
	if a.ingestLn, err = net.Listen("tcp", ingestAddr); err != nil {
		return nil, fmt.Errorf("ingest listener: %w", err)
	}
	if a.adminLn, err = net.Listen("tcp", adminAddr); err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	l := cfg.Limits
	a.ingestSrv = &http.Server{Handler: a.gateway, ReadHeaderTimeout: l.ReadHeaderTimeout.D(), ReadTimeout: l.ReadTimeout.D(),
		WriteTimeout: l.WriteTimeout.D(), IdleTimeout: l.IdleTimeout.D(), MaxHeaderBytes: int(l.MaxHeaderBytes),
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}
	a.adminSrv = &http.Server{Handler: a.adminHandler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}
	return a, nil
}

// stageRate is the limiter of a stage's rate limit (nil without one); its burst holds a batch.
func stageRate(rl config.RateLimit, batch int) *rate.Limiter {
	if rl.Rate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(rl.Rate), max(rl.Burst, batch, 1))
}

func instrument(m *obs.Metrics, name string, done *atomic.Int64, h runtime.Handler) runtime.Handler {
	dur := m.HandleDur.WithLabelValues(name)
	ok := m.Handled.WithLabelValues(name, "ok")
	return func(ctx context.Context, recs []buffer.Record) []error {
		start := time.Now()
		errs := h(ctx, recs)
		dur.Observe(time.Since(start).Seconds())
		n := len(recs)
		for _, e := range errs {
			if e != nil {
				n--
			}
		}
		ok.Add(float64(n))
		done.Add(int64(n))
		return errs
	}
}

// hasStage reports whether a stage consumes topic.
func (a *App) hasStage(topic string) bool {
	for _, s := range a.stages {
		if s.cfg.Topic == topic {
			return true
		}
	}
	return false
}

// endpointHealth builds an endpoint's health from its stored pause, reporting to the metrics.
func (a *App) endpointHealth(e config.Endpoint) (*deliver.Health, error) {
	st, err := a.store.Endpoint(e.Name)
	if err != nil {
		return nil, err
	}
	if st.Paused {
		a.log.Warn("endpoint is paused; resume it with weir endpoints resume", "endpoint", e.Name, "reason", st.Reason, "since", st.Since)
	}
	gauge, streak := a.metrics.Endpoint.WithLabelValues(e.Name), a.metrics.Streak.WithLabelValues(e.Name)
	return deliver.NewHealth(deliver.HealthConfig{FailingAfter: e.Health.FailingAfter, PauseAfter: e.Health.PauseAfter.D()},
		deliver.Pause{Paused: st.Paused, Reason: st.Reason, Since: st.Since, At: st.At},
		func(p deliver.Pause) error {
			return a.store.SetEndpoint(e.Name, state.EndpointState{Paused: p.Paused, Reason: p.Reason, Since: p.Since, At: p.At})
		},
		func(s string, failures int) {
			gauge.Set(map[string]float64{deliver.Healthy: 0, deliver.Failing: 1, deliver.Paused: 2}[s])
			streak.Set(float64(failures))
		}), nil
}

// Operations events, delivered to dead_letters.notify.
const (
	EventExhausted    = "message.exhausted"     // the retry schedule ran out
	EventDeadLettered = "message.dead_lettered" // failed for good for another reason
	opsClient         = "weir"
	opsType           = "weir.operations"
)

// notifier turns dead letters into operations events for the configured endpoint (nil when none
// is configured). The notify endpoint's own dead letters announce nothing, so that a failing
// operations webhook cannot feed itself.
func (a *App) notifier() func([]state.DeadLetter) (string, []buffer.Message) {
	ep := a.cfg.DeadLetters.Notify
	if ep == "" {
		return nil
	}
	return func(letters []state.DeadLetter) (string, []buffer.Message) {
		var msgs []buffer.Message
		for _, d := range letters {
			if d.Endpoint == ep || d.Client == opsClient {
				continue
			}
			typ := EventDeadLettered
			if d.Reason == state.ReasonExhausted {
				typ = EventExhausted
			}
			body, err := json.Marshal(map[string]any{"type": typ, "timestamp": d.LastAt, "data": d})
			if err != nil {
				continue
			}
			m := message.Message{ID: "dl_" + d.ID, Client: opsClient, Type: opsType, Key: d.ID, Endpoint: ep,
				ReceivedAt: d.LastAt, Payload: body}
			msgs = append(msgs, buffer.Message{Key: []byte(m.Key), Value: m.Encode()})
		}
		return pipeline.DeliverTopic(ep), msgs
	}
}

// Accepted is the number of messages ingest accepted since start.
func (a *App) Accepted() int64 { return a.gateway.Accepted() }

// Finished is the number of records the named stage finished since start (done, or failed for
// good).
func (a *App) Finished(stage string) int64 {
	if c := a.finished[stage]; c != nil {
		return c.Load()
	}
	return 0
}

// FinishedPrefix sums Finished over the stages whose names start with prefix.
func (a *App) FinishedPrefix(prefix string) int64 {
	var n int64
	for name, c := range a.finished {
		if strings.HasPrefix(name, prefix) {
			n += c.Load()
		}
	}
	return n
}

// IngestAddr is the address the ingest listener is bound to.
func (a *App) IngestAddr() string { return a.ingestLn.Addr().String() }

// AdminAddr is the address the admin listener is bound to.
func (a *App) AdminAddr() string { return a.adminLn.Addr().String() }

// Run serves until ctx ends, then shuts down in order and returns. It returns early with an
// error when a listener or a stage fails.
func (a *App) Run(ctx context.Context) error {
	defer a.close()
	stageCtx, stopStages := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStages()
	failed := make(chan error, len(a.stages)+4)
	var stages sync.WaitGroup
	stages.Add(1)
	go func() {
		defer stages.Done()
		select {
		case <-a.release:
		case <-stageCtx.Done():
			return
		}
		if err := a.runStages(stageCtx, failed); err != nil {
			failed <- err
		}
	}()
	if !a.opts.HoldStages {
		a.StartStages()
	}
	stages.Add(2)
	go func() {
		defer stages.Done()
		a.expire(stageCtx)
	}()
	if a.pg != nil {
		stages.Go(func() { a.syncEndpoints(stageCtx) })
	}
	stages.Go(func() { a.watchPushback(stageCtx) })
	go func() {
		defer stages.Done()
		if err := a.retries.Run(stageCtx); err != nil {
			failed <- fmt.Errorf("retry scheduler: %w", err)
		}
	}()
	go a.watchLog(stageCtx, failed)
	serve := func(srv *http.Server, ln net.Listener) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed <- err
		}
	}
	go serve(a.ingestSrv, a.ingestLn)
	go serve(a.adminSrv, a.adminLn)
	a.log.Info("weir is running", "ingest", a.IngestAddr(), "admin", a.AdminAddr(), "data_dir", a.cfg.Path(a.cfg.DataDir))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-failed:
		a.log.Error("shutting down after a failure", "err", runErr)
	}

	// 1. Stop accepting: not ready, finish in-flight requests (bounded), close listeners.
	a.log.Info("shutting down: no new requests")
	a.gateway.SetReady(false)
	bound := a.cfg.Runtime.ShutdownTimeout.D()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bound)
	if err := a.ingestSrv.Shutdown(sctx); err != nil {
		a.ingestSrv.Close()
	}
	cancel()
	// Close does not wait for handlers; they still write to the log, which must outlive them.
	sctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), bound)
	if err := a.gateway.Wait(sctx); err != nil {
		a.log.Warn("ingest requests still running at shutdown", "err", err)
	}
	cancel()
	// 2. Stop reading; stages drain their in-flight work (each bounded) and commit.
	a.log.Info("shutting down: draining stages")
	stopStages()
	stages.Wait()
	sctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	a.adminSrv.Shutdown(sctx)
	cancel()
	a.log.Info("stopped")
	return runErr
}

// runStages runs the stages until ctx ends: over every partition, or with a shared state
// store over this instance's share of them, restarted whenever the share changes.
func (a *App) runStages(ctx context.Context, failed chan<- error) error {
	if a.member == nil {
		stop := a.startStages(ctx, nil, failed)
		<-ctx.Done()
		stop()
		return nil
	}
	stop := func() {}
	owns := prometheus.NewGauge(prometheus.GaugeOpts{Name: "weir_partitions_owned",
		Help: "Partitions this instance works on (instances sharing a state store split them)."})
	a.metrics.Registry.MustRegister(owns)
	return a.member.Run(ctx, func(owned []int) error {
		stop() // the stages drain and commit before a partition is given up
		stop = func() {}
		owns.Set(float64(len(owned)))
		if len(owned) > 0 {
			stop = a.startStages(ctx, owned, failed)
		}
		return nil
	})
}

// startStages starts every stage over partitions (nil: all) and returns the function that
// stops them, returning once they drained and committed (or when ctx ends, the same).
func (a *App) startStages(ctx context.Context, partitions []int, failed chan<- error) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, s := range a.stages {
		cfg := s.cfg
		cfg.Partitions = partitions
		wg.Go(func() {
			if err := runtime.Run(ctx, a.buf, cfg, s.handler); err != nil {
				failed <- err
			}
		})
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// every calls fn every d until ctx ends or fn returns false.
func every(ctx context.Context, d time.Duration, fn func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !fn() {
				return
			}
		}
	}
}

// watchLog reports a log that stopped accepting writes (a failed fsync, a full disk): the log
// never writes again once that happened, so Weir shuts down in order and exits non-zero, and
// its supervisor restarts it, which reopens and recovers the log. Until then ingest answers 503.
func (a *App) watchLog(ctx context.Context, failed chan<- error) {
	every(ctx, 250*time.Millisecond, func() bool {
		if err := a.storageErr(); err != nil {
			failed <- fmt.Errorf("the log refuses writes: %w", err)
			return false
		}
		return true
	})
}

// syncEndpoints takes the pauses and resumes other instances sharing the state store made, every
// two seconds.
func (a *App) syncEndpoints(ctx context.Context) {
	every(ctx, 2*time.Second, func() bool {
		for name, h := range a.health {
			st, err := a.store.Endpoint(name)
			if err != nil {
				a.log.Warn("reading an endpoint's shared state", "endpoint", name, "err", err)
				continue
			}
			h.Sync(deliver.Pause{Paused: st.Paused, Reason: st.Reason, Since: st.Since, At: st.At})
		}
		return true
	})
}

// expire forgets dedup receipts and dead letters older than their retentions, once a minute.
func (a *App) expire(ctx context.Context) {
	every(ctx, time.Minute, func() bool {
		n, err := a.store.ExpireReceipts(time.Now().Add(-a.cfg.Limits.DedupRetention.D()))
		if err != nil {
			a.log.Warn("expiring dedup receipts", "err", err)
		} else if n > 0 {
			a.log.Debug("expired dedup receipts", "count", n)
		}
		if err := a.store.ExpireDeadLetters(time.Now().Add(-a.cfg.DeadLetters.Retention.D())); err != nil {
			a.log.Warn("expiring dead letters", "err", err)
		}
		return true
	})
}

// close releases storage; Run calls it last.
func (a *App) close() {
	for _, db := range a.dbs {
		db.Close()
	}
	if a.buf != nil && a.buf != buffer.Buffer(a.db) {
		if err := a.buf.Close(); err != nil {
			a.log.Error("closing the buffer", "err", err)
		}
	}
	if a.db != nil {
		if err := a.db.Close(); err != nil {
			a.log.Error("closing the log", "err", err)
		}
	}
	if a.pg != nil {
		a.pg.Close()
	}
	if a.ingestLn != nil && a.ingestSrv == nil {
		a.ingestLn.Close()
	}
	if a.adminLn != nil && a.adminSrv == nil {
		a.adminLn.Close()
	}
}

func (a *App) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	(&admin.API{Store: a.store, Retries: a.retries, Endpoints: a.health, Logger: a.log}).Register(mux)
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	var h http.Handler = mux
	if a.cfg.Admin.TokenHash != "" {
		h = requireToken(a.cfg.Admin.TokenHash, mux)
	}
	return h
}
