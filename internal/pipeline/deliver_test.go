package pipeline_test

import (
	"regexp"
	"testing"

	"github.com/weirhq/weir/internal/pipeline"
)

// The webhook-id is fixed by the message's identity (partners deduplicate on it across weir
// versions, so its derivation must not change) and differs for the same id of another client or
// type.
func TestWebhookID(t *testing.T) {
	// sha256("acme\x00order\x00order-1"), first 16 bytes.
	if got, want := pipeline.WebhookID("acme", "order", "order-1"), "msg_541220e46f7a33285adab8ac6665b5c9"; got != want {
		t.Fatalf("WebhookID = %s, want %s", got, want)
	}
	shape := regexp.MustCompile(`^msg_[0-9a-f]{32}$`)
	seen := map[string][3]string{}
	for _, m := range [][3]string{
		{"acme", "order", "order-1"},
		{"globex", "order", "order-1"},
		{"acme", "invoice", "order-1"},
		{"acme", "order", "order-2"},
		{"acme", "order", ""},
		{"acme", "order", "order-1\x00"},
		{"acm", "eorder", "order-1"},
		{"weir", "weir.operations", "dl_0123"},
		{"acme", "order", "line\nbreak and ünïcode"},
	} {
		id := pipeline.WebhookID(m[0], m[1], m[2])
		if !shape.MatchString(id) {
			t.Errorf("WebhookID%q = %q, want msg_ and 32 hex digits", m, id)
		}
		if again := pipeline.WebhookID(m[0], m[1], m[2]); again != id {
			t.Errorf("WebhookID%q not stable: %s, then %s", m, id, again)
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("WebhookID%q = WebhookID%q = %s", m, prev, id)
		}
		seen[id] = m
	}
}
