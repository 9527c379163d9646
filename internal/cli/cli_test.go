package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheck(t *testing.T) {
	code, out, errs := run("check", "--config", "../../examples/quickstart/weir.yaml")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("quickstart: exit %d\n%s%s", code, out, errs)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("clients:\n  - id: a\n    token_hash: nope\n    types: [ghost]\n"), 0o600)
	code, _, errs = run("check", "--config", bad)
	if code != 1 || !strings.Contains(errs, "clients[0].token_hash") || !strings.Contains(errs, "clients[0].types[0]") {
		t.Fatalf("bad config: exit %d\n%s", code, errs)
	}
	if code, _, _ := run("check"); code != 2 {
		t.Fatalf("check without --config: exit %d", code)
	}
}

func TestHashTokenAndVersion(t *testing.T) {
	code, out, _ := run("hash-token", "demo-token")
	if code != 0 || strings.TrimSpace(out) != "sha256:7c43ef5ae21d43ce2743f770c68e24def1a43ee2f416d2438410c8af7af2ff2c" {
		t.Fatalf("hash-token: %d %q", code, out)
	}
	if code, out, _ := run("version"); code != 0 || !strings.HasPrefix(out, "weir ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, _ := run("nonsense"); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
}
