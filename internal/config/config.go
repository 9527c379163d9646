// Package config reads Weir's YAML configuration: it interpolates ${ENV} references, applies
// defaults, loads the files the config names (schemas, jq programs) and validates everything,
// reporting every problem at once. It is the only package that reads files or the environment;
// the rest of Weir receives a checked *Config.
package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is a whole Weir configuration.
type Config struct {
	Listen  Listen `yaml:"listen"`
	DataDir string `yaml:"data_dir"`
	// Buffer is the log between the stages: "embedded" (default: Pebble in data_dir),
	// "nats://host:4222[,nats://…]" (NATS JetStream) or "kafka://broker:9092[,broker:9092]".
	Buffer string `yaml:"buffer"`
	// State is where Weir keeps what it remembers besides the log (receipts, retries, dead
	// letters, workflow runs…): "embedded" (default: Pebble in data_dir) or
	// "postgres://user@host:5432/db", shared by every instance pointed at it. Never logged.
	State     string     `yaml:"state"`
	Embedded  Embedded   `yaml:"embedded"`
	Kafka     Kafka      `yaml:"kafka"`
	NATS      NATS       `yaml:"nats"`
	Admin     Admin      `yaml:"admin"`
	Limits    Limits     `yaml:"limits"`
	Runtime   Runtime    `yaml:"runtime"`
	Clients   []Client   `yaml:"clients"`
	Types     []Type     `yaml:"types"`
	Endpoints []Endpoint `yaml:"endpoints"`
	// Workflows are sagas a message type can run (types[].pipeline.workflow).
	Workflows []Workflow `yaml:"workflows"`
	// DeadLetters configures the dead-letter store.
	DeadLetters DeadLetters `yaml:"dead_letters"`

	// Dir is the directory relative paths are resolved against (the config file's directory).
	Dir string `yaml:"-"`
}

// Listen holds the listener addresses.
type Listen struct {
	Ingest string `yaml:"ingest"`
	Admin  string `yaml:"admin"`
}

// Embedded tunes the embedded log (and state store) in the data dir.
type Embedded struct {
	// MinSyncInterval is the least time between two fsyncs of the log (default 500us; 0s: none):
	// the commits that wait for durability meanwhile share the next one. Nothing is acknowledged
	// before its fsync either way; this trades up to the interval of latency for far fewer fsyncs
	// under concurrency.
	MinSyncInterval *Duration `yaml:"min_sync_interval"`
}

// Kafka configures the connection of a kafka:// buffer (Azure Event Hubs: tls, and SASL PLAIN
// with the user "$ConnectionString" and the namespace's connection string as password).
type Kafka struct {
	TLS  bool `yaml:"tls"`
	SASL struct {
		Mechanism string `yaml:"mechanism"` // plain (the only one for now)
		Username  string `yaml:"username"`
		Password  Secret `yaml:"password"`
	} `yaml:"sasl"`
	// Replication is the replication factor of the topics Weir creates (default: 3 when the
	// cluster has three brokers or more, else 1).
	Replication int `yaml:"replication"`
}

// NATS configures a nats:// buffer.
type NATS struct {
	// Replicas is the number of copies of each stream Weir creates (default: 3 when the cluster
	// has three servers or more, else 1).
	Replicas int `yaml:"replicas"`
}

// Admin configures the admin listener.
type Admin struct {
	// TokenHash is "sha256:<hex>" of the admin bearer token; empty leaves the admin API open
	// (only sensible when it listens on loopback).
	TokenHash string `yaml:"token_hash"`
}

// Limits bounds what ingest accepts.
type Limits struct {
	MaxBody     Size `yaml:"max_body"`
	MaxInFlight int  `yaml:"max_inflight"`
	// MaxInFlightPerClient bounds one client's share of MaxInFlight (default half of it), so
	// that a noisy client cannot take every slot.
	MaxInFlightPerClient int      `yaml:"max_inflight_per_client"`
	MaxBatchLines        int      `yaml:"max_batch_lines"`
	ReadHeaderTimeout    Duration `yaml:"read_header_timeout"`
	ReadTimeout          Duration `yaml:"read_timeout"`
	WriteTimeout         Duration `yaml:"write_timeout"`
	IdleTimeout          Duration `yaml:"idle_timeout"`
	MaxHeaderBytes       Size     `yaml:"max_header_bytes"`
	DedupRetention       Duration `yaml:"dedup_retention"`
	// MaxBacklog is the high-water mark of a topic's backlog (records appended and not yet
	// handled by its stage): above it ingest answers 429 with Retry-After at once (0: none).
	MaxBacklog int64 `yaml:"max_backlog"`
	// MinFreeDisk: below this much free space on the data dir's disk ingest answers 429 (default
	// 512MiB; 0: no check).
	MinFreeDisk *Size `yaml:"min_free_disk"`
}

// Runtime tunes the stage runtime.
type Runtime struct {
	Partitions     int `yaml:"partitions"`
	Workers        int `yaml:"workers"`
	DeliverWorkers int `yaml:"deliver_workers"`
	// WorkflowConcurrency bounds the workflow runs in flight at once (default 512).
	WorkflowConcurrency int `yaml:"workflow_concurrency"`
	// AdaptiveConcurrency lets each deliver and workflow stage find its own concurrency, up to
	// its configured bound: more while latency holds, less on transient failures or growing
	// latency (default false: always the bound).
	AdaptiveConcurrency bool `yaml:"adaptive_concurrency"`
	// IngestPriority holds every stage to one handler call at a time while more than
	// IngestBusy ingest requests are in flight (a burst queueing up): on a small machine the
	// stages then leave the CPU to ingest, and the burst waits in the log (default false).
	IngestPriority  bool     `yaml:"ingest_priority"`
	IngestBusy      int      `yaml:"ingest_busy"`
	Window          int      `yaml:"window"`
	BatchSize       int      `yaml:"batch_size"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// PersistRateLimit caps the records the persist stage writes per second, all sinks
	// together (none by default): a backend that sustains less than the arrival rate is fed at
	// its rate while the backlog waits in the log.
	PersistRateLimit RateLimit `yaml:"persist_rate_limit"`
}

// Client is a partner allowed to send messages.
type Client struct {
	ID        string    `yaml:"id"`
	TokenHash string    `yaml:"token_hash"`
	Types     []string  `yaml:"types"`
	RateLimit RateLimit `yaml:"rate_limit"`
	// Demo marks a client whose token is published (quickstart only); Weir logs a warning.
	Demo bool `yaml:"demo"`
}

// RateLimit is a token bucket: Rate messages per second with bursts of Burst.
type RateLimit struct {
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

// Type is a message type and its pipeline.
type Type struct {
	Name   string `yaml:"name"`
	Format string `yaml:"format"`
	Schema string `yaml:"schema"`
	Key    string `yaml:"key"`
	ID     string `yaml:"id"`
	// Ordering is "key" (default): messages of a key run in order, but one waiting for a retry
	// lets the later ones pass; or "strict": the later messages of its key wait behind it.
	Ordering string `yaml:"ordering"`
	// XML lists the XML dialects the type accepts, each from some clients: validated with an
	// XSD and turned into the type's JSON by XSLT (see XMLInput).
	XML      []XMLInput `yaml:"xml"`
	Pipeline Pipeline   `yaml:"pipeline"`

	// SchemaDoc is the schema file's content, loaded by Load.
	SchemaDoc []byte `yaml:"-"`
}

// XMLInput is an XML dialect of a message type: which clients send it, how it is checked and how
// it becomes the type's JSON message.
type XMLInput struct {
	Clients []string `yaml:"clients"` // empty: every client allowed to send the type
	Schema  string   `yaml:"schema"`  // XSD the input must match (optional)
	XSLT    string   `yaml:"xslt"`    // XSLT 1.0 stylesheet (EXSLT available) applied to the input
	// Output is "json" (default with xslt): the stylesheet writes the JSON message; or "xml":
	// the stylesheet's XML result (the input itself without xslt) is converted to JSON.
	Output string `yaml:"output"`
	// TargetSchema is an XSD the stylesheet's XML result must match (output: xml).
	TargetSchema string   `yaml:"target_schema"`
	ID           string   `yaml:"id"`      // XPath to the message id in the input (else the type's id pointer)
	Key          string   `yaml:"key"`     // XPath to the ordering key in the input (else the type's key pointer)
	Timeout      Duration `yaml:"timeout"` // bound on one transform (default 2s)
}

// Pipeline is what happens to an accepted message of a type.
type Pipeline struct {
	Process []Step   `yaml:"process"`
	Sink    *Sink    `yaml:"sink"`
	Deliver []string `yaml:"deliver"`
	// Workflow names the workflow each message of the type runs (after the process steps).
	Workflow string `yaml:"workflow"`
	// Retry is the schedule of the process and persist steps for this type (default: 1s, 5s,
	// 30s, 2m, 10m, 30m, 1h, 2h, 5h, 10h).
	Retry *Retry `yaml:"retry"`
}

// Retry is a retry schedule: the first attempt runs at once, then one more after each delay.
type Retry struct {
	Schedule    []Duration `yaml:"schedule"`
	Jitter      *float64   `yaml:"jitter"`       // ± fraction of each delay (default 0.1)
	MaxAttempts int        `yaml:"max_attempts"` // attempts in all (default len(schedule)+1)
	MaxAge      Duration   `yaml:"max_age"`      // give up this long after the first failure (0: no limit)
}

// DeadLetters configures the dead-letter store.
type DeadLetters struct {
	Retention Duration `yaml:"retention"` // how long dead letters are kept (default 720h = 30 days)
	// Notify names an endpoint that receives a "message.dead_lettered" event for each dead letter.
	Notify string `yaml:"notify"`
}

// Health says when an endpoint counts as failing and when its deliveries pause.
type Health struct {
	FailingAfter int      `yaml:"failing_after"` // consecutive failed attempts (default 5)
	PauseAfter   Duration `yaml:"pause_after"`   // pause when failing this long (default: never)
}

// Step is one process step. Exactly one kind is set.
type Step struct {
	// JQ is an inline jq program; JQFile names a file holding one.
	JQ     string `yaml:"jq"`
	JQFile string `yaml:"jq_file"`
}

// Sink is an SQL table the pipeline writes each message to.
type Sink struct {
	DSN       string   `yaml:"dsn"`
	Table     string   `yaml:"table"`
	UpsertKey []string `yaml:"upsert_key"`
	Columns   []Column `yaml:"columns"`
}

// Column maps a JSON pointer in the transformed message to a table column.
type Column struct {
	Name    string `yaml:"name"`
	Pointer string `yaml:"pointer"`
	Type    string `yaml:"type"`
}

// Endpoint is a partner endpoint that receives signed webhooks.
type Endpoint struct {
	Name         string            `yaml:"name"`
	URL          string            `yaml:"url"`
	Secret       Secret            `yaml:"secret"`
	BearerToken  Secret            `yaml:"bearer_token"`
	Timeout      Duration          `yaml:"timeout"`
	Headers      map[string]string `yaml:"headers"`
	AllowPrivate bool              `yaml:"allow_private"`
	// Retry is the delivery schedule (default: at once, then 5s, 5m, 30m, 2h, 5h, 10h, 10h).
	Retry  *Retry `yaml:"retry"`
	Health Health `yaml:"health"`
	// RateLimit caps the delivery attempts per second to this endpoint (none by default).
	RateLimit RateLimit `yaml:"rate_limit"`
}

// Secret is a credential. It should come from ${ENV}; it never prints.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Duration is a time.Duration written as "10s", "5m", "1h30m".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 10s, 5m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Size is a byte count written as 1048576, "512KiB", "1MiB" or "2GiB".
type Size int64

// UnmarshalYAML parses a size.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = Size(v)
	return nil
}

// ParseSize parses a byte count with an optional KiB/MiB/GiB (or KB/MB/GB) suffix.
func ParseSize(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}, {"B", 1}}
	s := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (like 1048576, 512KiB, 1MiB)", v)
	}
	return n * mult, nil
}

// Load reads, interpolates, defaults and validates the config file at path. On validation
// failure it returns a *Problems listing every problem.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(raw, dir, os.LookupEnv)
}

// Parse is Load for config bytes; dir resolves relative paths and lookup resolves ${ENV}.
func Parse(raw []byte, dir string, lookup func(string) (string, bool)) (*Config, error) {
	var probs Problems
	text := Interpolate(string(raw), lookup, &probs)
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte(text)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && err.Error() != "EOF" {
		probs.Add("", "%v", err)
		return nil, &probs
	}
	c.Dir = dir
	c.applyDefaults()
	c.load(&probs)
	c.validate(&probs)
	if len(probs.List) > 0 {
		return nil, &probs
	}
	return &c, nil
}

// Path resolves p against the config's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// Interpolate replaces ${NAME} and ${NAME:-default} with values from lookup. A reference to an
// unset variable without a default is a problem. $$ escapes a dollar sign.
func Interpolate(s string, lookup func(string) (string, bool), probs *Problems) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		if s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if s[i+1] != '{' {
			b.WriteByte('$')
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			probs.Add("", "unterminated ${ at byte %d", i)
			b.WriteString(s[i:])
			break
		}
		ref := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(ref, ":-")
		if v, ok := lookup(name); ok && (v != "" || !hasDef) {
			b.WriteString(v)
		} else if hasDef {
			b.WriteString(def)
		} else {
			probs.Add("", "environment variable %s is not set (referenced as ${%s})", name, ref)
		}
		i += end
	}
	return b.String()
}

func (c *Config) load(probs *Problems) {
	for i := range c.Types {
		t := &c.Types[i]
		at := fmt.Sprintf("types[%d]", i)
		if t.Schema != "" {
			doc, err := os.ReadFile(c.Path(t.Schema))
			if err != nil {
				probs.Add(at+".schema", "cannot read schema: %v", err)
			}
			t.SchemaDoc = doc
		}
		for j := range t.Pipeline.Process {
			s := &t.Pipeline.Process[j]
			if s.JQFile != "" {
				src, err := os.ReadFile(c.Path(s.JQFile))
				if err != nil {
					probs.Add(fmt.Sprintf("%s.pipeline.process[%d].jq_file", at, j), "cannot read jq program: %v", err)
				}
				s.JQ = string(src)
			}
		}
	}
}
