package apiserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/controlplane/api"
)

// The API's own figures (PRD story 5.1): request latency by route, and the
// task outcomes nodes report. They are process-wide, like the routes they
// describe; the manager exposes them on /metrics through Metrics.
var (
	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "warren_api_request_duration_seconds",
		Help: "API requests by route pattern (not the raw path, so object names add no series), method and status class, " +
			"as served by this manager (a forwarded request is counted on both managers).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"method", "route", "code"})
	taskReports = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warren_task_reports_total",
		Help: "Task states reported by nodes and committed, by state; failed / (running + failed) is the task failure rate.",
	}, []string{"state"})
)

func init() {
	// Zero series exist from the start so rate() and the alert have
	// something to divide before the first failure.
	for _, st := range []api.TaskState{api.TaskRunning, api.TaskFailed, api.TaskComplete, api.TaskRejected} {
		taskReports.WithLabelValues(string(st))
	}
}

// Metrics returns the API's collectors.
func Metrics() []prometheus.Collector {
	return []prometheus.Collector{requestDuration, taskReports, imageBlobRequests, assignmentAnswers, assignmentBytes}
}

// codeClass is "2xx", "4xx", …: the status class keeps the series few.
func codeClass(code int) string {
	if code == 0 {
		code = http.StatusOK // nothing written: net/http answers 200
	}
	return strconv.Itoa(code/100) + "xx"
}

// codeRecorder remembers the status a handler wrote. It passes Flush
// through (log streaming) and unwraps for http.ResponseController.
type codeRecorder struct {
	http.ResponseWriter
	code int
}

func (c *codeRecorder) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *codeRecorder) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return c.ResponseWriter.Write(b)
}

func (c *codeRecorder) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *codeRecorder) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// timed observes every request of rt in requestDuration.
func timed(rt Route, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &codeRecorder{ResponseWriter: w}
		defer func() {
			requestDuration.WithLabelValues(rt.Method, rt.Pattern, codeClass(rec.code)).Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(rec, r)
	})
}

// countReports counts the states of a committed status report.
func countReports(rep map[string]api.TaskStatus) {
	for _, st := range rep {
		switch st.State {
		case api.TaskRunning, api.TaskFailed, api.TaskComplete, api.TaskRejected:
			taskReports.WithLabelValues(string(st.State)).Inc()
		}
	}
}
