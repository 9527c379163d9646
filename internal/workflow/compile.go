// Package workflow runs Weir's declarative sagas: a message type's workflow calls HTTP services
// step by step (groups of steps in parallel), records each step's outcome durably before the
// next step starts, retries transient failures on the step's schedule through the durable retry
// machinery, and when a step fails for good — or the workflow's timeout passes — compensates
// every completed step in reverse order. A run interrupted by a crash resumes from its last
// recorded outcome when its message is handled again; a step recorded as succeeded is never
// called again, and every call carries an Idempotency-Key (run id and step) so that a call
// repeated after a crash, before its outcome was recorded, has no second effect.
package workflow

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/weirhq/weir/internal/config"
	"github.com/weirhq/weir/internal/format"
	"github.com/weirhq/weir/internal/retry"
)

// Workflow is a compiled workflow.
type Workflow struct {
	Name    string
	Timeout time.Duration
	Notify  string // endpoint for workflow.failed events
	// AllowPrivate lets calls reach private addresses (the host is always literal config).
	AllowPrivate bool
	Groups       [][]*Step // run in order; the steps of a group run in parallel
	// Client makes the calls; it must not follow redirects (see deliver.HTTPClient).
	Client *http.Client
	steps  int
}

// Step is a compiled step.
type Step struct {
	Name       string
	Index      int // position in Run.Steps
	When       *format.JQ
	Call       *Call
	Compensate *Call
	Policy     retry.Policy
	CompPolicy retry.Policy
	// Keep is set when a template reads the step's answer: only then is it stored with the run
	// (a run is written after every step, so it stays small).
	Keep bool
}

// Call is a compiled HTTP call.
type Call struct {
	Method    string
	URL       *template
	Headers   map[string]*template
	Body      *format.JQ
	Timeout   time.Duration
	success   []string
	transient []string
	permanent []string
}

// Default schedules.
func defaultStepPolicy() retry.Policy {
	return retry.Policy{Schedule: []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second,
		10 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute}, Jitter: 0.1}
}

func defaultCompensationPolicy() retry.Policy {
	return retry.Policy{Schedule: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute,
		10 * time.Minute, time.Hour, 5 * time.Hour, 10 * time.Hour}, Jitter: 0.1}
}

// StagePolicy is the workflow stage's policy for the retry machinery: the engine decides from
// each step's own schedule when to try again and when to give up, and hands the wait over as a
// Retry-After, so the stage's policy only waits that long, never giving up on its own.
func StagePolicy() retry.Policy {
	return retry.Policy{Schedule: []time.Duration{0}, MaxAttempts: math.MaxInt32}
}

// Compile turns a checked workflow config into its runtime form, reporting every template that
// does not compile and every reference to a step that does not run before the one using it.
func Compile(w *config.Workflow, at string) (*Workflow, error) {
	var probs config.Problems
	wf := &Workflow{Name: w.Name, Timeout: w.Timeout.D(), Notify: w.Notify, AllowPrivate: w.AllowPrivate == nil || *w.AllowPrivate}
	stepPolicy := retry.Configured(w.Retry, defaultStepPolicy())
	compPolicy := retry.Configured(w.CompensationRetry, defaultCompensationPolicy())
	// group of each step name, to check that templates only read steps that ran before.
	groupOf := map[string]int{}
	for g, gs := range w.Steps {
		for _, s := range members(&gs) {
			groupOf[s.Name] = g
		}
	}
	for g := range w.Steps {
		var group []*Step
		for k, s := range members(&w.Steps[g]) {
			sat := fmt.Sprintf("%s.steps[%d]", at, g)
			if len(w.Steps[g].Parallel) > 0 {
				sat = fmt.Sprintf("%s.parallel[%d]", sat, k)
			}
			st := &Step{Name: s.Name, Index: wf.steps, Policy: stepPolicy, CompPolicy: compPolicy}
			wf.steps++
			if s.Retry != nil {
				st.Policy = retry.Configured(s.Retry, stepPolicy)
			}
			refs := func(where, src string, own bool) {
				for _, name := range references(src) {
					rg, ok := groupOf[name]
					switch {
					case !ok:
						probs.Add(sat+where, "refers to .steps.%s, which is not a step of this workflow", name)
					case rg > g || (rg == g && !(own && name == s.Name)):
						probs.Add(sat+where, "refers to .steps.%s, which does not finish before step %q runs", name, s.Name)
					}
				}
			}
			if s.When != "" {
				q, err := format.CompileJQ(s.When)
				if err != nil {
					probs.Add(sat+".when", "%v", err)
				}
				st.When = q
				refs(".when", s.When, false)
			}
			var err error
			if st.Call, err = compileCall(&s.Call, sat, &probs); err == nil {
				for _, src := range sources(&s.Call) {
					refs("", src, false)
				}
			}
			if s.Compensate != nil {
				if st.Compensate, err = compileCall(s.Compensate, sat+".compensate", &probs); err == nil {
					for _, src := range sources(s.Compensate) {
						refs(".compensate", src, true)
					}
				}
			}
			group = append(group, st)
		}
		wf.Groups = append(wf.Groups, group)
	}
	if err := probs.Err(); err != nil {
		return nil, err
	}
	read := map[string]bool{}
	for g := range w.Steps {
		for _, s := range members(&w.Steps[g]) {
			srcs := sources(&s.Call)
			if s.Compensate != nil {
				srcs = append(srcs, sources(s.Compensate)...)
			}
			for _, src := range append(srcs, s.When) {
				for _, name := range references(src) {
					read[name] = true
				}
			}
		}
	}
	for _, g := range wf.Groups {
		for _, s := range g {
			s.Keep = read[s.Name]
		}
	}
	return wf, nil
}

// members returns the steps of a group entry: itself, or its parallel steps.
func members(s *config.WorkflowStep) []*config.WorkflowStep {
	if len(s.Parallel) == 0 {
		return []*config.WorkflowStep{s}
	}
	out := make([]*config.WorkflowStep, len(s.Parallel))
	for i := range s.Parallel {
		out[i] = &s.Parallel[i]
	}
	return out
}

// sources returns the jq sources of a call's templates.
func sources(c *config.Call) []string {
	out := append(config.Templates(c.URL), c.Body)
	for _, h := range c.Headers {
		out = append(out, config.Templates(h)...)
	}
	return out
}

var refRE = regexp.MustCompile(`\.steps(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*"([^"]+)"\s*\])`)

// references returns the step names a jq source reads as .steps.<name> or .steps["name"].
func references(src string) []string {
	var out []string
	for _, m := range refRE.FindAllStringSubmatch(src, -1) {
		if m[1] != "" {
			out = append(out, m[1])
		} else {
			out = append(out, m[2])
		}
	}
	return out
}

func compileCall(c *config.Call, at string, probs *config.Problems) (*Call, error) {
	n := len(probs.List)
	out := &Call{Method: c.Method, Timeout: c.Timeout.D(), Headers: map[string]*template{},
		success: c.Success, transient: c.Transient, permanent: c.Permanent}
	var err error
	if out.URL, err = compileTemplate(c.URL, true); err != nil {
		probs.Add(at+".url", "%v", err)
	}
	for k, v := range c.Headers {
		if out.Headers[http.CanonicalHeaderKey(k)], err = compileTemplate(v, false); err != nil {
			probs.Add(at+".headers."+k, "%v", err)
		}
	}
	if strings.TrimSpace(c.Body) != "" {
		if out.Body, err = format.CompileJQ(c.Body); err != nil {
			probs.Add(at+".body", "%v", err)
		}
	}
	if len(probs.List) > n {
		return nil, probs
	}
	return out, nil
}

// template is a string with `{{ jq }}` parts.
type template struct {
	parts []part
	url   bool // escape values: path-escaped before the '?', query-escaped after
}

type part struct {
	lit   string
	q     *format.JQ
	query bool // in a URL's query
}

func compileTemplate(s string, isURL bool) (*template, error) {
	t := &template{url: isURL}
	inQuery := false
	for s != "" {
		i := strings.Index(s, "{{")
		if i < 0 {
			t.parts = append(t.parts, part{lit: s})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: s[:i]})
			inQuery = inQuery || strings.Contains(s[:i], "?")
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("unclosed {{ in %q", s)
		}
		q, err := format.CompileJQ(strings.TrimSpace(s[i+2 : i+j]))
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, part{q: q, query: inQuery})
		s = s[i+j+2:]
	}
	return t, nil
}

// render evaluates the template over doc. A value that is null, an object or an array is an
// error: a template error is permanent, the same input fails the same way every time.
func (t *template) render(ctx context.Context, doc any, vars format.Vars) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.q == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := p.q.Run(ctx, doc, vars)
		if err != nil {
			return "", err
		}
		s, err := scalar(v)
		if err != nil {
			return "", err
		}
		switch {
		case t.url && p.query:
			s = url.QueryEscape(s)
		case t.url:
			s = url.PathEscape(s)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case nil:
		return "", fmt.Errorf("a template value is null")
	default:
		if s, ok := v.(fmt.Stringer); ok { // json.Number, big numbers
			return s.String(), nil
		}
		b, _ := format.Encode(v)
		return "", fmt.Errorf("a template value must be a string, number or boolean, got %s", b)
	}
}

// status classifies an answer by the call's patterns: 0 success, 1 transient, 2 permanent,
// -1 not classified by the config (the default rules apply).
func (c *Call) status(code int) int {
	switch {
	case config.StatusMatches(code, c.success):
		return 0
	case config.StatusMatches(code, c.permanent):
		return 2
	case config.StatusMatches(code, c.transient):
		return 1
	}
	return -1
}
