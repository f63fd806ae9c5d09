package main

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/runtime"
)

// serveNodeLogs runs the node's own mTLS listener, from which managers (and
// only managers, as mayRead says: agent.MayReadLogs) stream the logs of
// this node's tasks for `service logs`.
func serveNodeLogs(addr string, verifier *ca.CA, certs *ca.CertStore, w *runtime.Worker, mayRead func(nodeID string) error, log *zap.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/tasks/{id}/logs", func(rw http.ResponseWriter, r *http.Request) {
		id, err := ca.RequireRole(*r.TLS, ca.RoleManager)
		if err == nil {
			err = mayRead(id.NodeID)
		}
		if err != nil {
			http.Error(rw, "logs are served to managers only: "+err.Error(), http.StatusForbidden)
			return
		}
		q := r.URL.Query()
		tail, _ := strconv.Atoi(q.Get("tail"))
		rc, err := w.Logs(r.Context(), r.PathValue("id"), runtime.LogOptions{
			Follow: q.Get("follow") == "true", Tail: tail, Timestamps: q.Get("timestamps") == "true",
		})
		if err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, runtime.ErrNotFound) {
				status = http.StatusNotFound
			}
			http.Error(rw, err.Error(), status)
			return
		}
		defer rc.Close()
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fl, _ := rw.(http.Flusher)
		buf := make([]byte, 32<<10)
		for {
			n, err := rc.Read(buf)
			if n > 0 {
				if _, werr := rw.Write(buf[:n]); werr != nil {
					return
				}
				if fl != nil {
					fl.Flush()
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					log.Debug("task logs", zap.Error(err))
				}
				return
			}
		}
	})
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  verifier.Pool(),
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return certs.TLSCertificate(), nil
		},
	}
	ln, err := tls.Listen("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			log.Warn("node log listener", zap.Error(err))
		}
	}()
	return srv, nil
}
