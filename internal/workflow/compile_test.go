package workflow

import (
	"strings"
	"testing"
)

// check runs a workflow through the config's checks and Compile, as `weir check` does, and
// returns every problem as text.
func check(t *testing.T, yml string) string {
	t.Helper()
	w, err := parse(t, yml)
	if err != nil {
		return err.Error()
	}
	if _, err := Compile(w, "workflows[0]"); err != nil {
		return err.Error()
	}
	return ""
}

func TestCheckFindsEveryProblem(t *testing.T) {
	cases := []struct {
		name, yml string
		want      []string
	}{
		{"unknown and forward references", `
steps:
  - {name: a, url: "http://svc/a/{{ .steps.nope.body.id }}"}
  - {name: b, url: "http://svc/b", when: '.steps.c.status == 200'}
  - {name: c, url: "http://svc/c", body: '.steps["b"].body'}
`, []string{`.steps.nope, which is not a step`, `.steps.c, which does not finish before step "b"`}},
		{"a step reading itself or a sibling in its group", `
steps:
  - parallel:
      - {name: a, url: "http://svc/a", body: '.steps.b.body'}
      - {name: b, url: "http://svc/b/{{ .steps.b.status }}"}
`, []string{`.steps.b, which does not finish before step "a"`, `.steps.b, which does not finish before step "b"`}},
		{"a compensation may read its own step", `
steps:
  - {name: a, method: PUT, url: "http://svc/a", body: '{}', compensate: {method: DELETE, url: "http://svc/a/{{ .steps.a.body.id }}"}}
  - {name: b, url: "http://svc/b"}
`, nil},
		{"templated host", `
steps:
  - {name: a, url: "http://svc{{ .message.host }}/a"}
  - {name: b, url: "{{ .message.url }}"}
`, []string{"templates may only fill the path", "must start with a literal http(s)://host"}},
		{"required compensation", `
require_compensation: true
steps:
  - {name: read, url: "http://svc/a"}
  - {name: write, method: PUT, url: "http://svc/b", body: '{}'}
  - {name: last, method: PUT, url: "http://svc/c", body: '{}'}
`, []string{`step "write" changes something (PUT)`}},
		{"bad jq, status and method", `
steps:
  - {name: a, url: "http://svc/a", success: ["2xy"], method: TRACE}
  - {name: a, url: "http://svc/a/{{ .x"}
`, []string{`"2xy" is not a status`, `"TRACE" is not GET`, `step "a" is declared twice`, "unclosed"}},
		{"jq that does not compile", `
steps:
  - {name: a, url: "http://svc/a/{{ .x | }}", body: '{', when: '.a ==', headers: {X-A: "{{ ( }}"}}
`, []string{"steps[0].url: jq", "steps[0].body: jq", "steps[0].when: jq", "steps[0].headers.X-A: jq"}},
		{"no steps", `steps: []`, []string{"at least one step"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := check(t, c.yml)
			if len(c.want) == 0 && got != "" {
				t.Fatalf("unexpected problems:\n%s", got)
			}
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
		})
	}
}

func TestRequireCompensationSparesTheLastGroup(t *testing.T) {
	if got := check(t, `
require_compensation: true
steps:
  - {name: a, method: PUT, url: "http://svc/a", body: '{}', compensate: {method: DELETE, url: "http://svc/a"}}
  - {name: last, method: PUT, url: "http://svc/c", body: '{}'}
`); got != "" {
		t.Fatal(got)
	}
}
