package dataplane

import (
	"github.com/prometheus/client_golang/prometheus"
)

// ServiceCounters are the cumulative counters of one service.
type ServiceCounters struct {
	Service     string // Service.Name (Service.ID until the first Set after a restart)
	Connections uint64
	Drops       uint64 // connects refused because no backend was usable
	Backends    map[string]uint64
	// Errors are how TCP connections to a backend ended badly, by the same
	// key as Backends; a backend without errors may be missing. They are the
	// figures canary analysis compares between versions.
	Errors map[string]BackendErrors
}

// BackendErrors count the TCP connections to one backend that failed.
type BackendErrors struct {
	ConnectFailures uint64 // never established: refused, timed out, abandoned
	Resets          uint64 // established, then reset by the backend
}

// CounterSource is implemented by dataplanes that count connections.
type CounterSource interface {
	Counters() ([]ServiceCounters, error)
}

var (
	descServiceConns = prometheus.NewDesc("warren_dataplane_service_connections_total",
		"New connections (TCP connects, UDP flows) balanced to a service.", []string{"service"}, nil)
	descBackendConns = prometheus.NewDesc("warren_dataplane_backend_connections_total",
		"New connections balanced to a backend of a service.", []string{"service", "backend"}, nil)
	descConnectFailures = prometheus.NewDesc("warren_dataplane_backend_connect_failures_total",
		"TCP connections balanced to a backend that were never established (refused, timed out, abandoned).", []string{"service", "backend"}, nil)
	descResets = prometheus.NewDesc("warren_dataplane_backend_resets_total",
		"Established TCP connections to a backend that the backend reset.", []string{"service", "backend"}, nil)
	descDrops = prometheus.NewDesc("warren_dataplane_no_backend_drops_total",
		"Connects refused because the service had no usable backend.", []string{"service"}, nil)
	descScrapeErrors = prometheus.NewDesc("warren_dataplane_counters_read_failed",
		"1 if reading the dataplane counters failed during this scrape.", nil, nil)
)

// NewCollector returns a Prometheus collector that reads d's counters at
// scrape time (for eBPF: per-CPU maps, summed over CPUs; the proxy and the
// fake count in memory). A Dataplane that is no CounterSource yields no
// series.
func NewCollector(d Dataplane) prometheus.Collector { return collector{d} }

type collector struct{ d Dataplane }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descServiceConns
	ch <- descBackendConns
	ch <- descDrops
	ch <- descConnectFailures
	ch <- descResets
	ch <- descScrapeErrors
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	src, ok := c.d.(CounterSource)
	if !ok {
		return
	}
	cs, err := src.Counters()
	failed := 0.0
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(descScrapeErrors, prometheus.GaugeValue, failed)
	for _, s := range cs {
		ch <- prometheus.MustNewConstMetric(descServiceConns, prometheus.CounterValue, float64(s.Connections), s.Service)
		ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(s.Drops), s.Service)
		for b, n := range s.Backends {
			ch <- prometheus.MustNewConstMetric(descBackendConns, prometheus.CounterValue, float64(n), s.Service, b)
		}
		for b, e := range s.Errors {
			ch <- prometheus.MustNewConstMetric(descConnectFailures, prometheus.CounterValue, float64(e.ConnectFailures), s.Service, b)
			ch <- prometheus.MustNewConstMetric(descResets, prometheus.CounterValue, float64(e.Resets), s.Service, b)
		}
	}
}
