// Package obs holds Weir's observability: the Prometheus metrics every part reports to, served
// on the admin listener.
package obs

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of Weir's metrics, registered on their own registry.
type Metrics struct {
	Registry  *prometheus.Registry
	Accepted  *prometheus.CounterVec   // messages accepted at ingest, by type
	Handled   *prometheus.CounterVec   // records finished by a stage, by stage and outcome
	Retries   *prometheus.CounterVec   // transient failures scheduled for retry, by stage
	HandleDur *prometheus.HistogramVec // handler call latency, by stage
	Dead      *prometheus.CounterVec   // messages dead-lettered, by stage and reason
	Endpoint  *prometheus.GaugeVec     // endpoint health: 0 healthy, 1 failing, 2 paused
	Streak    *prometheus.GaugeVec     // consecutive failed attempts, by endpoint
	Runs      *prometheus.CounterVec   // workflow runs started and finished, by workflow and state
	InFlight  *prometheus.GaugeVec     // workflow runs started and not finished, by workflow
	StepDur   *prometheus.HistogramVec // workflow call latency, by workflow, step and outcome
}

// New registers Weir's metrics on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Accepted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weir_ingest_accepted_total", Help: "Messages accepted at ingest (durably in the log)."}, []string{"type"}),
		Handled:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weir_stage_records_total", Help: "Records finished by a stage."}, []string{"stage", "outcome"}),
		Retries:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weir_stage_retries_total", Help: "Transient failures scheduled for another attempt."}, []string{"stage"}),
		HandleDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "weir_stage_batch_seconds", Help: "Time a stage handler takes per batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"stage"}),
	}
	m.Dead = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weir_dead_letters_total", Help: "Messages dead-lettered."}, []string{"stage", "reason"})
	m.Endpoint = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "weir_endpoint_state", Help: "Endpoint health: 0 healthy, 1 failing, 2 paused."}, []string{"endpoint"})
	m.Streak = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "weir_endpoint_consecutive_failures", Help: "Consecutive failed delivery attempts."}, []string{"endpoint"})
	m.Runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weir_workflow_runs_total", Help: "Workflow runs by state reached: started, completed, failed, compensated (failed, every completed step undone), compensation_failed."}, []string{"workflow", "state"})
	m.InFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "weir_workflow_runs_in_flight", Help: "Workflow runs started and not finished."}, []string{"workflow"})
	m.StepDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "weir_workflow_call_seconds", Help: "Latency of workflow calls and compensations.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"workflow", "step", "outcome"})
	m.Registry.MustRegister(m.Accepted, m.Handled, m.Retries, m.HandleDur, m.Dead, m.Endpoint, m.Streak, m.Runs, m.InFlight, m.StepDur,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
