package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestQuickstartConfigLoads(t *testing.T) {
	cfg, err := Load("../../examples/quickstart/weir.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen.Ingest != DefaultIngestAddr || cfg.Listen.Admin != DefaultAdminAddr {
		t.Errorf("listeners = %+v", cfg.Listen)
	}
	ty := cfg.Type("order")
	if ty == nil || len(ty.SchemaDoc) == 0 || !strings.Contains(ty.Pipeline.Process[0].JQ, "ascii_upcase") {
		t.Fatalf("order type not loaded: %+v", ty)
	}
	if cfg.Limits.MaxBody != DefaultMaxBody || cfg.Runtime.Partitions != 8 || cfg.Endpoints[0].Timeout.D() != 5*time.Second {
		t.Errorf("defaults not applied: %+v %+v", cfg.Limits, cfg.Runtime)
	}
}

func TestInterpolate(t *testing.T) {
	var p Problems
	got := Interpolate("a=${A} b=${B:-dflt} c=${C:-x} d=$$5 e=$x", env(map[string]string{"A": "1", "C": "3"}), &p)
	if want := "a=1 b=dflt c=3 d=$5 e=$x"; got != want || len(p.List) != 0 {
		t.Fatalf("got %q (%v), want %q", got, p.List, want)
	}
	Interpolate("${MISSING}", env(nil), &p)
	if len(p.List) != 1 || !strings.Contains(p.List[0].Message, "MISSING") {
		t.Fatalf("problems = %v", p.List)
	}
}

func TestEveryProblemIsListed(t *testing.T) {
	dir := t.TempDir()
	raw := `
listen: {ingest: "nonsense"}
limits: {max_body: 10}
clients:
  - id: a
    token_hash: plain-text-token
    types: [nope]
  - id: a
    token_hash: sha256:0000000000000000000000000000000000000000000000000000000000000000
    types: [order]
types:
  - name: order
    format: csv
    schema: missing.json
    key: customer/id
    ordering: total
    pipeline:
      sink: {dsn: "mysql://x", table: "bad table;", columns: [{name: total, pointer: /total, type: money}]}
      deliver: [ghost]
      retry: {schedule: [], max_attempts: -1}
endpoints:
  - name: p
    url: ftp://example
    retry: {schedule: [1s, -5s], jitter: 1.5}
    health: {failing_after: -1}
dead_letters: {notify: nowhere}
`
	_, err := Parse([]byte(raw), dir, env(nil))
	probs, ok := err.(*Problems)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	text := probs.Error()
	for _, want := range []string{
		"listen.ingest", "limits.max_body", "clients[0].token_hash", "clients[0].types[0]", "clients[1].id",
		"types[0].format", "types[0].schema", "types[0].key", "pipeline.sink.dsn", "pipeline.sink.table",
		"columns[0].type", "pipeline.deliver[0]", "endpoints[0].url", "endpoints[0]: needs a secret",
		"types[0].ordering", "types[0].pipeline.retry.schedule", "types[0].pipeline.retry.max_attempts",
		"endpoints[0].retry.schedule[1]", "endpoints[0].retry.jitter", "endpoints[0].health.failing_after",
		"dead_letters.notify",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("problems miss %q:\n%s", want, text)
		}
	}
}

func TestUnknownFieldIsAnError(t *testing.T) {
	_, err := Parse([]byte("listen: {ingest: 127.0.0.1:1}\nlisten_typo: 1\n"), t.TempDir(), env(nil))
	if err == nil || !strings.Contains(err.Error(), "listen_typo") {
		t.Fatalf("err = %v", err)
	}
}

func TestSizesAndDurations(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "512KiB": 512 << 10, "1MiB": 1 << 20, "2 GiB": 2 << 30, "1MB": 1e6} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := ParseSize("lots"); err == nil {
		t.Error("ParseSize(lots) succeeded")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "w.yaml"), []byte("limits: {read_timeout: soon}\n"), 0o600)
	if _, err := Load(filepath.Join(dir, "w.yaml")); err == nil || !strings.Contains(err.Error(), "not a duration") {
		t.Fatalf("err = %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("whsec_abc")
	if s.String() != "[redacted]" {
		t.Fatal(s.String())
	}
}

// A shared state store needs a shared buffer; an unknown store is named; NATS replicas are
// JetStream's.
func TestStorageConfig(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{"state: postgres://weir@db/weir\n", "state: a shared state store needs a shared buffer"},
		{"state: mysql://db\nbuffer: nats://n:4222\n", "state: is not embedded or postgres://"},
		{"state: postgres://weir@db/weir\nbuffer: kafka://k:9092\n", ""},
		{"state: postgres://weir@db/weir\nbuffer: nats://n:4222\nnats: {replicas: 7}\n", "nats.replicas: must be between 1 and 5"},
	} {
		cfg, err := Parse([]byte(c.raw), t.TempDir(), env(nil))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.raw, err)
		case c.want == "" && cfg.State != "postgres://weir@db/weir":
			t.Errorf("%q: state %q", c.raw, cfg.State)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v, want %q", c.raw, err, c.want)
		}
	}
}
