package app

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/deliver"
	"github.com/weirhq/weir/internal/message"
	"github.com/weirhq/weir/internal/obs"
	"github.com/weirhq/weir/internal/pipeline"
	"github.com/weirhq/weir/internal/retry"
	"github.com/weirhq/weir/internal/runtime"
	"github.com/weirhq/weir/internal/state"
	"github.com/weirhq/weir/internal/workflow"
)

// EventWorkflowFailed is the operations event of a failed workflow run (workflows[].notify).
const EventWorkflowFailed = "workflow.failed"

// workflowIdle bounds the idle connections kept to each service a workflow calls: runs in
// flight call the same few hosts, and a pool smaller than the concurrency would reconnect.
const workflowIdle = 512

type stageFunc func(name, topic string, workers, batch int, h runtime.Handler, st retry.Stage, pause runtime.Pauser)

// workflowStage adds the stage that runs the message types' workflows: one run per handler
// call, so that a slow run never holds up finished ones (a batch ends with its slowest run).
func (a *App) workflowStage(flows map[string]*workflow.Workflow, stage stageFunc) {
	clients := map[bool]*http.Client{}
	for _, wf := range flows {
		private := wf.AllowPrivate || a.opts.AllowPrivate
		if clients[private] == nil {
			clients[private] = deliver.HTTPClient(workflowIdle, private)
		}
		wf.Client = clients[private]
	}
	wc := workflow.Config{Store: a.store, Topic: pipeline.TopicWorkflow, Flows: flows, Notify: a.workflowNotify,
		Observer: runObserver{a.metrics}, Failpoints: a.opts.Failpoints, Logger: a.log}
	if a.member != nil {
		wc.Fence = a.member.Fence // a run's record is written only while its partition is held
	}
	eng := workflow.New(wc)
	stage(pipeline.StageWorkflow, pipeline.TopicWorkflow, a.cfg.Runtime.WorkflowConcurrency, 1, eng.Handle,
		retry.Stage{Name: pipeline.StageWorkflow, Policy: func(string) retry.Policy { return workflow.StagePolicy() }}, nil)
	a.countInFlight()
}

// countInFlight starts the in-flight gauge from the runs a previous process left unfinished.
func (a *App) countInFlight() {
	for _, st := range []string{state.RunRunning, state.RunCompensating} {
		f := state.RunFilter{State: st, Limit: 1000}
		for {
			runs, next, err := a.store.Runs(f)
			if err != nil {
				a.log.Warn("counting workflow runs in flight", "err", err)
				return
			}
			for _, r := range runs {
				a.metrics.InFlight.WithLabelValues(r.Workflow).Inc()
			}
			if next == "" {
				break
			}
			f.After = next
		}
	}
}

// workflowNotify turns a failed run into a workflow.failed event for the workflow's notify
// endpoint (without the steps' answers, which may be large).
func (a *App) workflowNotify(r *state.Run, endpoint string) (string, []buffer.Message) {
	summary := *r
	summary.Steps = make([]state.StepRun, len(r.Steps))
	for i, s := range r.Steps {
		s.Response = nil
		summary.Steps[i] = s
	}
	now := time.Now().UTC()
	body, err := json.Marshal(map[string]any{"type": EventWorkflowFailed, "timestamp": now, "data": summary})
	if err != nil {
		return "", nil
	}
	m := message.Message{ID: "wf_failed_" + r.ID, Client: opsClient, Type: opsType, Key: r.ID, Endpoint: endpoint,
		ReceivedAt: now, Payload: body}
	return pipeline.DeliverTopic(endpoint), []buffer.Message{{Key: []byte(m.Key), Value: m.Encode()}}
}

// runObserver reports workflow runs to the metrics.
type runObserver struct{ m *obs.Metrics }

func (o runObserver) Started(wf string) {
	o.m.Runs.WithLabelValues(wf, "started").Inc()
	o.m.InFlight.WithLabelValues(wf).Inc()
}

func (o runObserver) Finished(wf, st string) {
	o.m.Runs.WithLabelValues(wf, st).Inc()
	o.m.InFlight.WithLabelValues(wf).Dec()
}

func (o runObserver) Compensated(wf string) { o.m.Runs.WithLabelValues(wf, "compensated").Inc() }

func (o runObserver) Step(wf, step, outcome string, d time.Duration) {
	o.m.StepDur.WithLabelValues(wf, step, outcome).Observe(d.Seconds())
}
