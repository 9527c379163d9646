package config

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Workflow is a saga that a message type runs: steps (HTTP calls) in order, groups of steps in
// parallel, and for each step an optional compensating call that undoes it when a later step
// fails for good. Templates are jq: `{{ jq }}` inside url and headers, a whole jq program as body
// and when. A template sees .message (the payload), .workflow (id, message_id, client, type,
// key, attempt) and .steps.<name> (status and body of each step that ran before).
type Workflow struct {
	Name string `yaml:"name"`
	// Timeout bounds a whole run: past it, no new step starts and the completed ones are
	// compensated (default 1h).
	Timeout Duration `yaml:"timeout"`
	// Retry is the default schedule of the steps' calls (default: 100ms, 500ms, 2s, 10s, 1m,
	// 5m, 30m — capped by the timeout).
	Retry *Retry `yaml:"retry"`
	// CompensationRetry is the schedule of compensating calls (default: 1s, 5s, 30s, 2m, 10m,
	// 1h, 5h, 10h); one that runs out is dead-lettered for manual handling.
	CompensationRetry *Retry `yaml:"compensation_retry"`
	// RequireCompensation makes `weir check` insist on a compensation for every step that
	// changes something (method other than GET and HEAD), except in the last group.
	RequireCompensation bool `yaml:"require_compensation"`
	// Notify names an endpoint that receives a "workflow.failed" event for every run that
	// failed (compensated or not).
	Notify string `yaml:"notify"`
	// AllowPrivate lets the calls reach loopback and private addresses (default true: the
	// services a workflow calls are usually internal; the host is never templated).
	AllowPrivate *bool          `yaml:"allow_private"`
	Steps        []WorkflowStep `yaml:"steps"`
}

// WorkflowStep is a step, or a group of steps that run in parallel (Parallel set, nothing else).
type WorkflowStep struct {
	Name     string         `yaml:"name"`
	Parallel []WorkflowStep `yaml:"parallel"`
	// When is a jq condition: the step runs only when it yields true (else it is skipped).
	When string `yaml:"when"`
	Call `yaml:",inline"`
	// Retry overrides the workflow's schedule for this step.
	Retry *Retry `yaml:"retry"`
	// Compensate undoes the step; it runs when a later step fails for good.
	Compensate *Call `yaml:"compensate"`
}

// Call is an HTTP request made by a step or a compensation.
type Call struct {
	Method  string            `yaml:"method"` // default POST, or GET without a body
	URL     string            `yaml:"url"`    // templates allowed after the host only
	Headers map[string]string `yaml:"headers"`
	// Body is a jq program over the template context whose result is sent as JSON.
	Body    string   `yaml:"body"`
	Timeout Duration `yaml:"timeout"` // default 10s
	// Success, Transient and Permanent classify answers by status: "2xx", "404", "5xx".
	// Defaults: success 2xx (2xx and 404 for a compensation: already undone); transient 408,
	// 429, 5xx, timeouts and connection errors; permanent every other status.
	Success   []string `yaml:"success"`
	Transient []string `yaml:"transient"`
	Permanent []string `yaml:"permanent"`
}

// Workflow returns the workflow named name, or nil.
func (c *Config) Workflow(name string) *Workflow {
	for i := range c.Workflows {
		if c.Workflows[i].Name == name {
			return &c.Workflows[i]
		}
	}
	return nil
}

func (w *Workflow) defaults() {
	setDur(&w.Timeout, time.Hour)
	if w.AllowPrivate == nil {
		t := true
		w.AllowPrivate = &t
	}
	for i := range w.Steps {
		s := &w.Steps[i]
		for j := range s.Parallel {
			s.Parallel[j].defaults()
		}
		if len(s.Parallel) == 0 {
			s.defaults()
		}
	}
}

func (s *WorkflowStep) defaults() {
	s.Call.defaults(false)
	if s.Compensate != nil {
		s.Compensate.defaults(true)
	}
}

func (c *Call) defaults(compensation bool) {
	if c.Method == "" {
		c.Method = http.MethodPost
		if c.Body == "" {
			c.Method = http.MethodGet
		}
	}
	c.Method = strings.ToUpper(c.Method)
	setDur(&c.Timeout, 10*time.Second)
	if len(c.Success) == 0 {
		c.Success = []string{"2xx"}
		if compensation {
			c.Success = []string{"2xx", "404"}
		}
	}
}

var (
	statusRE   = regexp.MustCompile(`^[1-5]([0-9][0-9]|xx)$`)
	templateRE = regexp.MustCompile(`\{\{(.*?)\}\}`)
)

// Templates returns the jq expressions of a `{{ jq }}` template, in order.
func Templates(s string) []string {
	var out []string
	for _, m := range templateRE.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}

func (c *Config) checkWorkflows(p *Problems) {
	names := map[string]bool{}
	for i := range c.Workflows {
		w := &c.Workflows[i]
		at := fmt.Sprintf("workflows[%d]", i)
		if !nameRE.MatchString(w.Name) {
			p.Add(at+".name", "%q is not a valid name (letters, digits, '_', '-', '.')", w.Name)
		}
		if names[w.Name] {
			p.Add(at+".name", "workflow %q is declared twice", w.Name)
		}
		names[w.Name] = true
		if w.Timeout <= 0 {
			p.Add(at+".timeout", "must be positive")
		}
		checkRetry(p, at+".retry", w.Retry)
		checkRetry(p, at+".compensation_retry", w.CompensationRetry)
		if w.Notify != "" && c.Endpoint(w.Notify) == nil {
			p.Add(at+".notify", "unknown endpoint %q", w.Notify)
		}
		if len(w.Steps) == 0 {
			p.Add(at+".steps", "a workflow needs at least one step")
		}
		steps := map[string]bool{}
		for j := range w.Steps {
			g := &w.Steps[j]
			gat := fmt.Sprintf("%s.steps[%d]", at, j)
			group := []*WorkflowStep{g}
			if len(g.Parallel) > 0 {
				if g.Name != "" || g.URL != "" || g.When != "" || g.Compensate != nil || g.Retry != nil {
					p.Add(gat, "a parallel group holds only its steps (name, url, when, compensate and retry belong to them)")
				}
				group = group[:0]
				for k := range g.Parallel {
					if len(g.Parallel[k].Parallel) > 0 {
						p.Add(fmt.Sprintf("%s.parallel[%d]", gat, k), "parallel groups do not nest")
						continue
					}
					group = append(group, &g.Parallel[k])
				}
			}
			last := j == len(w.Steps)-1
			for k, s := range group {
				sat := gat
				if len(g.Parallel) > 0 {
					sat = fmt.Sprintf("%s.parallel[%d]", gat, k)
				}
				if !nameRE.MatchString(s.Name) {
					p.Add(sat+".name", "%q is not a valid step name (letters, digits, '_', '-', '.')", s.Name)
				} else if steps[s.Name] {
					p.Add(sat+".name", "step %q is declared twice", s.Name)
				}
				steps[s.Name] = true
				checkCall(p, sat, &s.Call)
				checkRetry(p, sat+".retry", s.Retry)
				if s.Compensate != nil {
					checkCall(p, sat+".compensate", s.Compensate)
				} else if w.RequireCompensation && !last && s.Method != http.MethodGet && s.Method != http.MethodHead {
					p.Add(sat+".compensate", "required: step %q changes something (%s) and a later step can fail (require_compensation)", s.Name, s.Method)
				}
			}
		}
	}
}

func checkCall(p *Problems, at string, c *Call) {
	switch c.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		p.Add(at+".method", "%q is not GET, HEAD, POST, PUT, PATCH or DELETE", c.Method)
	}
	checkCallURL(p, at+".url", c.URL)
	for k := range c.Headers {
		if http.CanonicalHeaderKey(k) == "Idempotency-Key" {
			p.Add(at+".headers", "Idempotency-Key is set by Weir (workflow id and step)")
		}
	}
	if c.Timeout <= 0 || c.Timeout.D() > 5*time.Minute {
		p.Add(at+".timeout", "must be between 1ms and 5m")
	}
	for name, list := range map[string][]string{"success": c.Success, "transient": c.Transient, "permanent": c.Permanent} {
		for i, s := range list {
			if !statusRE.MatchString(s) {
				p.Add(fmt.Sprintf("%s.%s[%d]", at, name, i), "%q is not a status like 200, 404 or 5xx", s)
			}
		}
	}
}

// checkCallURL insists on a literal scheme and host: templates may fill the path and the query
// only, so that a message can never steer a call to another host.
func checkCallURL(p *Problems, at, raw string) {
	if raw == "" {
		p.Add(at, "required")
		return
	}
	head := raw
	if i := strings.Index(raw, "{{"); i >= 0 {
		head = raw[:i]
	}
	u, err := url.Parse(head)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.Add(at, "%q must start with a literal http(s)://host", raw)
		return
	}
	if strings.Contains(raw, "{{") && !strings.Contains(head[len(u.Scheme)+3:], "/") {
		p.Add(at, "%q: templates may only fill the path and the query, not the host", raw)
	}
	if strings.Count(raw, "{{") != strings.Count(raw, "}}") {
		p.Add(at, "%q has an unclosed {{ template }}", raw)
	}
}

// StatusMatches reports whether code matches one of the patterns ("404", "5xx").
func StatusMatches(code int, patterns []string) bool {
	s := strconv.Itoa(code)
	for _, p := range patterns {
		if p == s || (strings.HasSuffix(p, "xx") && len(s) == 3 && s[0] == p[0]) {
			return true
		}
	}
	return false
}
