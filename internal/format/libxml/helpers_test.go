//go:build cgo

package libxml

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// sandbox is the hostile environment of one test: a canary file holding a random token, a
// loopback HTTP listener that counts connections and would serve the token, and a directory
// of stylesheets and schemas (testdata/xslt and testdata/xsd with their placeholders filled in).
type sandbox struct {
	root   string // canary.xml, outside.xsl, outside.xsd
	sheets string // root/sheets: the stylesheets and schemas under test, secret.xml
	canary string // root/canary.xml: <canary>token</canary>
	token  string
	url    string       // http://127.0.0.1:port
	conns  atomic.Int64 // connections the listener accepted
	out    string       // root/written/out.txt: where write attempts point
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	var b [16]byte
	rand.Read(b[:])
	s := &sandbox{root: t.TempDir(), token: "canary-" + hex.EncodeToString(b[:])}
	s.sheets = filepath.Join(s.root, "sheets")
	s.canary = filepath.Join(s.root, "canary.xml")
	s.out = filepath.Join(s.root, "written", "out.txt")
	canary := []byte("<canary>" + s.token + "</canary>\n")
	must(t, os.WriteFile(s.canary, canary, 0o600))

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(canary)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s.url = srv.URL

	for _, dir := range []string{"testdata/xslt", "testdata/xsd"} {
		must(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			dst := filepath.Join(s.sheets, rel)
			if strings.HasPrefix(rel, "outside.") {
				dst = filepath.Join(s.root, rel)
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			return os.WriteFile(dst, s.render(src), 0o644)
		}))
	}
	must(t, os.Symlink(filepath.Join(s.root, "outside.xsl"), filepath.Join(s.sheets, "inc", "link.xsl")))
	must(t, os.WriteFile(filepath.Join(s.sheets, "secret.xml"), canary, 0o600))
	return s
}

// render fills in the placeholders of a testdata file.
func (s *sandbox) render(b []byte) []byte {
	return []byte(strings.NewReplacer(
		"@CANARY@", s.canary,
		"@URL@", s.url,
		"@OUTSIDE@", filepath.Join(s.root, "outside.xsl"),
		"@OUT@", s.out,
	).Replace(string(b)))
}

// untouched fails the test if the token shows up in any of outs or the listener was contacted.
func (s *sandbox) untouched(t testing.TB, what string, outs ...string) {
	t.Helper()
	for _, o := range outs {
		if strings.Contains(o, s.token) {
			t.Errorf("%s: the canary token leaked: %.300s", what, o)
		}
	}
	if n := s.conns.Load(); n != 0 {
		t.Errorf("%s: the listener saw %d connections, want 0", what, n)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return b
}

func mustParse(t testing.TB, data []byte) *Doc {
	t.Helper()
	d, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(%.80q): %v", data, err)
	}
	return d
}

func mustStylesheet(t testing.TB, path string, l Limits) *Stylesheet {
	t.Helper()
	st, err := CompileStylesheet(path, l)
	if err != nil {
		t.Fatalf("CompileStylesheet(%s): %v", path, err)
	}
	return st
}

func mustSchema(t testing.TB, path string) *Schema {
	t.Helper()
	s, err := CompileSchema(path)
	if err != nil {
		t.Fatalf("CompileSchema(%s): %v", path, err)
	}
	return s
}

// xmlError returns err as an *Error of operation op, failing the test otherwise.
func xmlError(t testing.TB, err error, op string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want an *Error", err, err)
	}
	if e.Op != op {
		t.Errorf("Op = %q, want %q (%v)", e.Op, op, e)
	}
	return e
}

// procStatus returns a field of /proc/self/status in bytes (VmRSS, VmHWM).
func procStatus(t testing.TB, field string) int64 {
	t.Helper()
	for line := range bytes.Lines(readFile(t, "/proc/self/status")) {
		if rest, ok := bytes.CutPrefix(line, []byte(field+":")); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(rest)), "kB")), 10, 64)
			must(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// settle returns the memory the Go heap can give back and reports the resident set size.
func settle(t testing.TB) int64 {
	runtime.GC()
	debug.FreeOSMemory()
	return procStatus(t, "VmRSS")
}

// peakGrowth runs f and reports how far the process's peak resident set grew above its size
// before f. It resets the peak first (clear_refs 5) so that earlier tests do not hide a spike.
func peakGrowth(t testing.TB, f func()) int64 {
	t.Helper()
	before := settle(t)
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak RSS (%v); measuring the current RSS only", err)
		f()
		return settle(t) - before
	}
	f()
	return procStatus(t, "VmHWM") - before
}
