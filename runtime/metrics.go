package runtime

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descCPU = prometheus.NewDesc("warren_task_cpu_seconds_total",
		"CPU time used by the task's processes.", []string{"service", "task"}, nil)
	descMem = prometheus.NewDesc("warren_task_memory_bytes",
		"Memory charged to the task's cgroup.", []string{"service", "task"}, nil)
	descRestarts = prometheus.NewDesc("warren_task_restarts_total",
		"Times the node restarted the task in place.", []string{"service", "task"}, nil)
)

type collector struct{ w *Worker }

// Collector exposes per-task CPU, memory and restart counts.
func (w *Worker) Collector() prometheus.Collector { return collector{w} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCPU
	ch <- descMem
	ch <- descRestarts
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.w.mu.Lock()
	type item struct {
		svc, id string
		ctl     Controller
	}
	var items []item
	for id, r := range c.w.runners {
		items = append(items, item{r.task.ServiceName, id, r.ctl})
	}
	restarts := map[string]uint64{}
	for id, st := range c.w.status {
		restarts[id] = st.Restarts
	}
	c.w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, it := range items {
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(restarts[it.id]), it.svc, it.id)
		sr, ok := it.ctl.(StatsReader)
		if !ok {
			continue
		}
		s, err := sr.Stats(ctx)
		if err != nil {
			continue // not running: no sample rather than a misleading zero
		}
		ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, s.CPUSeconds, it.svc, it.id)
		ch <- prometheus.MustNewConstMetric(descMem, prometheus.GaugeValue, float64(s.MemoryBytes), it.svc, it.id)
	}
}
