package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Problem is one thing wrong with a config, at a path like "types[0].schema".
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Problems lists every problem found; it is the error Load returns when validation fails.
type Problems struct{ List []Problem }

// Add records a problem.
func (p *Problems) Add(path, format string, args ...any) {
	p.List = append(p.List, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// Err returns p as an error, or nil when there is no problem.
func (p *Problems) Err() error {
	if len(p.List) == 0 {
		return nil
	}
	return p
}

func (p *Problems) Error() string {
	lines := make([]string, len(p.List))
	for i, pr := range p.List {
		lines[i] = pr.String()
	}
	return fmt.Sprintf("config has %d problem(s):\n  %s", len(p.List), strings.Join(lines, "\n  "))
}

// Defaults for fields left empty.
const (
	DefaultIngestAddr = "127.0.0.1:8080"
	DefaultAdminAddr  = "127.0.0.1:8081"
	DefaultMaxBody    = 1 << 20
)

func (c *Config) applyDefaults() {
	setStr(&c.Listen.Ingest, DefaultIngestAddr)
	setStr(&c.Listen.Admin, DefaultAdminAddr)
	setStr(&c.DataDir, "./weir-data")
	setStr(&c.Buffer, "embedded")
	setStr(&c.State, "embedded")
	l := &c.Limits
	setSize(&l.MaxBody, DefaultMaxBody)
	setInt(&l.MaxBatchLines, 10000)
	setInt(&l.MaxInFlight, 512)
	setInt(&l.MaxInFlightPerClient, max(l.MaxInFlight/2, 1))
	setDur(&l.ReadHeaderTimeout, 5*time.Second)
	setDur(&l.ReadTimeout, 30*time.Second)
	setDur(&l.WriteTimeout, 30*time.Second)
	setDur(&l.IdleTimeout, 120*time.Second)
	setSize(&l.MaxHeaderBytes, 64<<10)
	setDur(&l.DedupRetention, 7*24*time.Hour)
	if l.MinFreeDisk == nil {
		d := Size(512 << 20)
		l.MinFreeDisk = &d
	}
	r := &c.Runtime
	setInt(&r.Partitions, 8)
	setInt(&r.Workers, 4)
	setInt(&r.DeliverWorkers, 64)
	setInt(&r.WorkflowConcurrency, 512)
	setInt(&r.Window, 4096)
	setInt(&r.BatchSize, 256)
	setInt(&r.IngestBusy, 32)
	setDur(&r.ShutdownTimeout, 10*time.Second)
	for i := range c.Types {
		t := &c.Types[i]
		setStr(&t.Format, "json")
		setStr(&t.Ordering, "key")
		for j := range t.XML {
			x := &t.XML[j]
			if x.XSLT != "" {
				setStr(&x.Output, "json")
			} else {
				setStr(&x.Output, "xml")
			}
			setDur(&x.Timeout, 2*time.Second)
		}
		if s := t.Pipeline.Sink; s != nil && len(s.UpsertKey) == 0 {
			s.UpsertKey = []string{"client", "id"}
		}
	}
	for i := range c.Endpoints {
		setDur(&c.Endpoints[i].Timeout, 10*time.Second)
		setInt(&c.Endpoints[i].Health.FailingAfter, 5)
	}
	for i := range c.Workflows {
		c.Workflows[i].defaults()
	}
	setDur(&c.DeadLetters.Retention, 30*24*time.Hour)
}

func (c *Config) checkXML(p *Problems, at string, t *Type) {
	seen := map[string]bool{} // client ids, "" for "every client"
	for j, x := range t.XML {
		xat := fmt.Sprintf("%s.xml[%d]", at, j)
		switch x.Output {
		case "json", "xml":
		default:
			p.Add(xat+".output", "%q is not json or xml", x.Output)
		}
		if x.Output == "json" && x.XSLT == "" {
			p.Add(xat+".output", "json needs an xslt that writes the JSON message (or use output: xml)")
		}
		if x.TargetSchema != "" && x.Output != "xml" {
			p.Add(xat+".target_schema", "checks the stylesheet's XML result: only with output: xml")
		}
		if x.Timeout <= 0 || x.Timeout.D() > time.Minute {
			p.Add(xat+".timeout", "must be between 1ms and 1m")
		}
		clients := x.Clients
		if len(clients) == 0 {
			clients = []string{""}
		}
		for k, id := range clients {
			if seen[id] {
				what := "every client"
				if id != "" {
					what = "client " + strconv.Quote(id)
				}
				p.Add(fmt.Sprintf("%s.clients[%d]", xat, k), "%s has two XML dialects for this type", what)
			}
			seen[id] = true
			if id == "" {
				continue
			}
			cl := c.Client(id)
			if cl == nil {
				p.Add(fmt.Sprintf("%s.clients[%d]", xat, k), "unknown client %q", id)
			} else if !slices.Contains(cl.Types, t.Name) {
				p.Add(fmt.Sprintf("%s.clients[%d]", xat, k), "client %q may not send type %q (add it to the client's types)", id, t.Name)
			}
		}
	}
}

// Client returns the client with the given id, or nil.
func (c *Config) Client(id string) *Client {
	for i := range c.Clients {
		if c.Clients[i].ID == id {
			return &c.Clients[i]
		}
	}
	return nil
}

func checkRetry(p *Problems, at string, r *Retry) {
	if r == nil {
		return
	}
	if len(r.Schedule) == 0 {
		p.Add(at+".schedule", "required: the delays between attempts (like [5s, 1m, 10m])")
	}
	for i, d := range r.Schedule {
		if d < 0 || d.D() > 366*24*time.Hour {
			p.Add(fmt.Sprintf("%s.schedule[%d]", at, i), "must be between 0s and 8784h (a year)")
		}
	}
	if r.MaxAge.D() > 10*366*24*time.Hour {
		p.Add(at+".max_age", "must be at most ten years")
	}
	if r.Jitter != nil && (*r.Jitter < 0 || *r.Jitter >= 1) {
		p.Add(at+".jitter", "must be at least 0 and below 1, got %g", *r.Jitter)
	}
	if r.MaxAttempts < 0 {
		p.Add(at+".max_attempts", "must not be negative")
	}
	if r.MaxAge < 0 {
		p.Add(at+".max_age", "must not be negative")
	}
}

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)
	hashRE  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

func (c *Config) validate(p *Problems) {
	checkAddr(p, "listen.ingest", c.Listen.Ingest)
	checkAddr(p, "listen.admin", c.Listen.Admin)
	if c.Admin.TokenHash != "" && !hashRE.MatchString(c.Admin.TokenHash) {
		p.Add("admin.token_hash", "must be sha256:<64 lowercase hex digits> (make one with: weir hash-token TOKEN)")
	}
	if c.Limits.MaxInFlight < 1 {
		p.Add("limits.max_inflight", "must be at least 1, got %d", c.Limits.MaxInFlight)
	}
	if c.Limits.MaxBody < 1024 {
		p.Add("limits.max_body", "must be at least 1KiB, got %d bytes", c.Limits.MaxBody)
	}
	if b := c.Buffer; b != "embedded" && !strings.HasPrefix(b, "nats://") && !strings.HasPrefix(b, "tls://") && !strings.HasPrefix(b, "kafka://") {
		p.Add("buffer", "%q is not embedded, nats://host:port or kafka://host:port", b)
	}
	switch st := c.State; {
	case st != "embedded" && !strings.HasPrefix(st, "postgres://") && !strings.HasPrefix(st, "postgresql://"):
		p.Add("state", "is not embedded or postgres://user@host:5432/db")
	case st != "embedded" && c.Buffer == "embedded":
		p.Add("state", "a shared state store needs a shared buffer: set buffer to nats://… or kafka://… (instances cannot share the embedded log)")
	}
	if k := c.Kafka; k.SASL.Mechanism != "" && k.SASL.Mechanism != "plain" {
		p.Add("kafka.sasl.mechanism", "%q is not supported (plain)", k.SASL.Mechanism)
	} else if k.SASL.Mechanism == "plain" && (k.SASL.Username == "" || k.SASL.Password == "") {
		p.Add("kafka.sasl", "plain needs a username and a password")
	}
	if c.Kafka.Replication < 0 {
		p.Add("kafka.replication", "must not be negative")
	}
	if r := c.NATS.Replicas; r < 0 || r > 5 {
		p.Add("nats.replicas", "must be between 1 and 5 (JetStream's limit), got %d", r)
	}
	if d := c.Embedded.MinSyncInterval; d != nil && (*d < 0 || d.D() > 100*time.Millisecond) {
		p.Add("embedded.min_sync_interval", "must be between 0s and 100ms, got %s", d.D())
	}
	if n := c.Limits.MaxInFlightPerClient; n < 1 || n > c.Limits.MaxInFlight {
		p.Add("limits.max_inflight_per_client", "must be between 1 and limits.max_inflight (%d), got %d", c.Limits.MaxInFlight, n)
	}
	if c.Limits.MaxBacklog < 0 {
		p.Add("limits.max_backlog", "must not be negative")
	}
	if d := c.Limits.MinFreeDisk; d != nil && *d < 0 {
		p.Add("limits.min_free_disk", "must not be negative")
	}
	r := c.Runtime
	checkRateLimit(p, "runtime.persist_rate_limit", r.PersistRateLimit)
	if r.Partitions < 1 || r.Partitions > 1024 {
		p.Add("runtime.partitions", "must be between 1 and 1024, got %d", r.Partitions)
	}
	for name, v := range map[string]int{"workers": r.Workers, "deliver_workers": r.DeliverWorkers, "workflow_concurrency": r.WorkflowConcurrency, "window": r.Window, "batch_size": r.BatchSize} {
		if v < 1 {
			p.Add("runtime."+name, "must be at least 1, got %d", v)
		}
	}

	types := map[string]bool{}
	for i, t := range c.Types {
		at := fmt.Sprintf("types[%d]", i)
		if !nameRE.MatchString(t.Name) {
			p.Add(at+".name", "%q is not a valid name (letters, digits, '_', '-', '.')", t.Name)
		}
		if types[t.Name] {
			p.Add(at+".name", "type %q is declared twice", t.Name)
		}
		types[t.Name] = true
		if t.Format != "json" {
			p.Add(at+".format", "format %q is not supported (json)", t.Format)
		}
		checkPointer(p, at+".key", t.Key)
		if t.Ordering != "key" && t.Ordering != "strict" {
			p.Add(at+".ordering", "%q is not key or strict", t.Ordering)
		}
		checkPointer(p, at+".id", t.ID)
		for j, s := range t.Pipeline.Process {
			sat := fmt.Sprintf("%s.pipeline.process[%d]", at, j)
			if strings.TrimSpace(s.JQ) == "" {
				p.Add(sat, "a step needs jq or jq_file")
			}
		}
		if s := t.Pipeline.Sink; s != nil {
			sat := at + ".pipeline.sink"
			if s.DSN == "" {
				p.Add(sat+".dsn", "required (sqlite:FILE or postgres://...)")
			} else if !strings.HasPrefix(s.DSN, "sqlite:") && !strings.HasPrefix(s.DSN, "postgres://") && !strings.HasPrefix(s.DSN, "postgresql://") {
				p.Add(sat+".dsn", "must start with sqlite: or postgres://")
			}
			if !identRE.MatchString(s.Table) {
				p.Add(sat+".table", "%q is not a valid table name", s.Table)
			}
			cols := map[string]bool{"id": true, "client": true, "type": true, "msg_key": true, "payload": true, "received_at": true, "written_at": true}
			for k, col := range s.Columns {
				cat := fmt.Sprintf("%s.columns[%d]", sat, k)
				if !identRE.MatchString(col.Name) || strings.Contains(col.Name, ".") {
					p.Add(cat+".name", "%q is not a valid column name", col.Name)
				} else if cols[col.Name] {
					p.Add(cat+".name", "column %q is defined twice or is a standard column", col.Name)
				}
				cols[col.Name] = true
				checkPointer(p, cat+".pointer", col.Pointer)
				if col.Pointer == "" {
					p.Add(cat+".pointer", "required")
				}
				switch col.Type {
				case "", "text", "integer", "numeric", "boolean", "timestamp", "json":
				default:
					p.Add(cat+".type", "%q is not one of text, integer, numeric, boolean, timestamp, json", col.Type)
				}
			}
			for _, k := range s.UpsertKey {
				if !cols[k] {
					p.Add(sat+".upsert_key", "column %q is not a column of the table", k)
				}
			}
		}
		for j, ep := range t.Pipeline.Deliver {
			if c.Endpoint(ep) == nil {
				p.Add(fmt.Sprintf("%s.pipeline.deliver[%d]", at, j), "unknown endpoint %q", ep)
			}
		}
		checkRetry(p, at+".pipeline.retry", t.Pipeline.Retry)
		c.checkXML(p, at, &t)
		if w := t.Pipeline.Workflow; w != "" && c.Workflow(w) == nil {
			p.Add(at+".pipeline.workflow", "unknown workflow %q", w)
		}
		if t.Pipeline.Sink == nil && len(t.Pipeline.Deliver) == 0 && t.Pipeline.Workflow == "" {
			p.Add(at+".pipeline", "has no sink, no endpoint to deliver to and no workflow: messages would go nowhere")
		}
	}

	clients := map[string]bool{}
	for i, cl := range c.Clients {
		at := fmt.Sprintf("clients[%d]", i)
		if !nameRE.MatchString(cl.ID) || strings.Contains(cl.ID, ":") {
			p.Add(at+".id", "%q is not a valid client id", cl.ID)
		}
		if clients[cl.ID] {
			p.Add(at+".id", "client %q is declared twice", cl.ID)
		}
		clients[cl.ID] = true
		if !hashRE.MatchString(cl.TokenHash) {
			p.Add(at+".token_hash", "must be sha256:<64 lowercase hex digits> (make one with: weir hash-token TOKEN)")
		}
		if len(cl.Types) == 0 {
			p.Add(at+".types", "lists no message type: the client could send nothing")
		}
		for j, ty := range cl.Types {
			if !types[ty] {
				p.Add(fmt.Sprintf("%s.types[%d]", at, j), "unknown message type %q", ty)
			}
		}
		checkRateLimit(p, at+".rate_limit", cl.RateLimit)
	}

	eps := map[string]bool{}
	for i, ep := range c.Endpoints {
		at := fmt.Sprintf("endpoints[%d]", i)
		if !nameRE.MatchString(ep.Name) {
			p.Add(at+".name", "%q is not a valid name", ep.Name)
		}
		if eps[ep.Name] {
			p.Add(at+".name", "endpoint %q is declared twice", ep.Name)
		}
		eps[ep.Name] = true
		u, err := url.Parse(ep.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.Add(at+".url", "%q is not an http(s) URL", ep.URL)
		}
		if ep.Secret == "" && ep.BearerToken == "" {
			p.Add(at, "needs a secret (Standard Webhooks signature) or a bearer_token, or both")
		}
		checkRateLimit(p, at+".rate_limit", ep.RateLimit)
		if ep.Timeout.D() <= 0 || ep.Timeout.D() > 5*time.Minute {
			p.Add(at+".timeout", "must be between 1ms and 5m")
		}
		checkRetry(p, at+".retry", ep.Retry)
		if ep.Health.FailingAfter < 1 {
			p.Add(at+".health.failing_after", "must be at least 1")
		}
		if ep.Health.PauseAfter < 0 {
			p.Add(at+".health.pause_after", "must not be negative")
		}
	}
	c.checkWorkflows(p)
	if n := c.DeadLetters.Notify; n != "" && c.Endpoint(n) == nil {
		p.Add("dead_letters.notify", "unknown endpoint %q", n)
	}
	if c.DeadLetters.Retention <= 0 {
		p.Add("dead_letters.retention", "must be positive")
	}
}

// Endpoint returns the endpoint named name, or nil.
func (c *Config) Endpoint(name string) *Endpoint {
	for i := range c.Endpoints {
		if c.Endpoints[i].Name == name {
			return &c.Endpoints[i]
		}
	}
	return nil
}

// Type returns the message type named name, or nil.
func (c *Config) Type(name string) *Type {
	for i := range c.Types {
		if c.Types[i].Name == name {
			return &c.Types[i]
		}
	}
	return nil
}

func checkAddr(p *Problems, path, addr string) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		p.Add(path, "%q is not host:port", addr)
	}
}

func checkPointer(p *Problems, path, ptr string) {
	if ptr != "" && !strings.HasPrefix(ptr, "/") {
		p.Add(path, "%q is not a JSON pointer (it must start with /)", ptr)
	}
}

func setStr(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

func setInt(i *int, v int) {
	if *i == 0 {
		*i = v
	}
}

func setDur(d *Duration, v time.Duration) {
	if *d == 0 {
		*d = Duration(v)
	}
}

func setSize(s *Size, v int64) {
	if *s == 0 {
		*s = Size(v)
	}
}

func checkRateLimit(p *Problems, at string, rl RateLimit) {
	if rl.Rate < 0 || rl.Burst < 0 {
		p.Add(at, "rate and burst must not be negative")
	}
}
