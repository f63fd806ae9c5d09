package apiserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/warrenhq/warren/controlplane/ca"
)

// TaskLogsPath is the node agent's route for one task's logs.
const TaskLogsPath = "/v1/tasks/%s/logs"

// serviceLogs streams the logs of a service's tasks from the nodes that run
// them, one line at a time, each prefixed with the task's name
// (`web.2@node-1 | …`), like `docker service logs`.
func (s *Server) serviceLogs(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v := s.b.View()
	svc, err := findService(v, r.PathValue("ref"))
	if err != nil {
		return err
	}
	q := url.Values{}
	for _, k := range []string{"follow", "tail", "timestamps"} {
		if x := r.URL.Query().Get(k); x != "" {
			q.Set(k, x)
		}
	}
	type source struct {
		name, url string
	}
	var sources []source
	for _, t := range v.TasksByService(svc.ID) {
		if t.NodeID == "" || t.Status.ContainerID == "" {
			continue
		}
		n, ok := v.Node(t.NodeID)
		if !ok || n.Status.Network.AgentAddr == "" {
			continue
		}
		name := fmt.Sprintf("%s.%d", svc.Spec.Name, t.Slot)
		if t.Slot == 0 {
			name = fmt.Sprintf("%s.%s", svc.Spec.Name, t.NodeID[:min(12, len(t.NodeID))])
		}
		name += "@" + n.Status.Hostname
		u := url.URL{Scheme: "https", Host: n.Status.Network.AgentAddr, Path: fmt.Sprintf(TaskLogsPath, t.ID), RawQuery: q.Encode()}
		sources = append(sources, source{name, u.String()})
	}
	if len(sources) == 0 {
		return errorf(http.StatusNotFound, "service %q: no task has run yet, so there are no logs", svc.Spec.Name)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	hc := &http.Client{Transport: s.nodeTransport()}

	var mu sync.Mutex // one line at a time on the response
	var wg sync.WaitGroup
	for _, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := streamLines(r.Context(), hc, src.url, func(line string) {
				mu.Lock()
				fmt.Fprintf(w, "%s | %s\n", src.name, line)
				if flusher != nil {
					flusher.Flush()
				}
				mu.Unlock()
			})
			if err != nil && r.Context().Err() == nil {
				s.log.Info("task logs unavailable", zap.String("task_name", src.name), zap.Error(err))
				mu.Lock()
				fmt.Fprintf(w, "%s | (logs unavailable: %v)\n", src.name, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return nil
}

func streamLines(ctx context.Context, hc *http.Client, u string, emit func(string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("node answered %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		emit(sc.Text())
	}
	return sc.Err()
}

// nodeTLS authenticates to a node's agent listener with this manager's
// certificate and accepts any node certificate issued by the cluster CA.
// Node certificates are client certificates (no server name, no server-auth
// usage), so the chain is verified here by hand.
func (s *Server) nodeTLS() *tls.Config {
	base := s.b.ForwardTLS()
	pool := s.cfg.CAPool()
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: base.GetClientCertificate,
		Certificates:         base.Certificates,
		InsecureSkipVerify:   true, // replaced by VerifyPeerCertificate below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("node presented no certificate")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			inter := x509.NewCertPool()
			for _, c := range raw[1:] {
				if ic, err := x509.ParseCertificate(c); err == nil {
					inter.AddCert(ic)
				}
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: time.Now()}); err != nil {
				return fmt.Errorf("node certificate: %w", err)
			}
			if _, err := ca.IdentityFromCert(leaf); err != nil {
				return err
			}
			return nil
		},
	}
}
