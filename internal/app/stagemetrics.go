package app

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weirhq/weir/internal/buffer"
	"github.com/weirhq/weir/internal/pipeline"
	"github.com/weirhq/weir/internal/runtime"
)

// Per-stage metrics: lag, records in flight, adaptive concurrency limits.

// lagCollector reports each stage's lag per partition on every scrape: the records of its
// topic that its consumer group has not committed — the signal an autoscaler (KEDA) scales on.
type lagCollector struct {
	a    *App
	lag  buffer.Lagger
	desc *prometheus.Desc
}

func newLagCollector(a *App, lag buffer.Lagger) *lagCollector {
	return &lagCollector{a: a, lag: lag, desc: prometheus.NewDesc("weir_stage_lag",
		"Records of a stage's topic its consumer group has not committed, by partition.", []string{"stage", "partition"}, nil)}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range c.a.stages {
		lag, err := c.lag.Lag(ctx, s.cfg.Topic, s.cfg.Group)
		if err != nil {
			c.a.log.Warn("reading a stage's lag", "stage", s.cfg.Name, "err", err)
			continue
		}
		for p, n := range lag {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), s.cfg.Name, strconv.Itoa(p))
		}
	}
}

// adaptConcurrency gives every deliver and workflow stage an adaptive concurrency limit (between
// one handler call and its workers), reported as weir_stage_concurrency_limit.
func (a *App) adaptConcurrency() {
	for i := range a.stages {
		s := &a.stages[i].cfg
		if s.Topic != pipeline.TopicWorkflow && !strings.HasPrefix(s.Topic, pipeline.DeliverTopic("")) {
			continue
		}
		l := runtime.NewAdaptiveLimit(1, s.Workers)
		s.Limiter = l
		a.metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weir_stage_concurrency_limit",
			Help: "The adaptive limit on a stage's handler calls in flight.", ConstLabels: prometheus.Labels{"stage": s.Name}},
			func() float64 { return float64(l.Current()) }))
	}
}

// reportInFlight gives every stage a weir_stage_in_flight gauge: records fetched and not
// finished, at most runtime.window — near the window, the stage is the bottleneck.
func (a *App) reportInFlight() {
	for i := range a.stages {
		s := &a.stages[i].cfg
		st := &runtime.Stats{}
		s.Stats = st
		a.metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "weir_stage_in_flight",
			Help: "Records a stage fetched and has not finished.", ConstLabels: prometheus.Labels{"stage": s.Name}},
			func() float64 { return float64(st.InFlight.Load()) }))
	}
}
