package apiserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/ca"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/store"
)

func webSpec(name string, published uint16) api.ServiceSpec {
	return api.ServiceSpec{
		Name: name, Replicas: 2,
		Task:  api.TaskSpec{Container: api.ContainerSpec{Image: "warren/demo:1"}},
		Ports: []api.PortConfig{{TargetPort: 80, PublishedPort: published}},
	}
}

func wantErr(t *testing.T, err error, status int, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error %d containing %q, got success", status, substr)
	}
	if got := client.StatusOf(err); got != status || !strings.Contains(err.Error(), substr) {
		t.Fatalf("got %d %q, want %d containing %q", got, err, status, substr)
	}
}

func TestServiceLifecycle(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	ctx := t.Context()

	_, err := admin.CreateService(ctx, webSpec("Web_1", 0))
	wantErr(t, err, http.StatusBadRequest, `service "Web_1": name: must be a DNS label`)

	res, err := admin.CreateService(ctx, webSpec("web", 8080))
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.CreateService(ctx, webSpec("api", 8080))
	wantErr(t, err, http.StatusBadRequest, `service "api": ports[0].published_port: 8080/tcp is already published by service "web"`)
	_, err = admin.CreateService(ctx, webSpec("web", 0))
	wantErr(t, err, http.StatusConflict, `service "web": name: already used`)

	svc, err := admin.Service(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if svc.ID != res.ID || svc.Endpoint.VIP == "" || svc.Spec.Mode != api.ModeReplicated || svc.SpecVersion != 1 {
		t.Fatalf("created service = %+v", svc)
	}
	if _, err := admin.ScaleService(ctx, "web", 5); err != nil {
		t.Fatal(err)
	}
	spec := svc.Spec
	spec.Replicas = 5
	spec.Task.Container.Image = "warren/demo:2"
	if _, err := admin.UpdateService(ctx, "web", spec); err != nil {
		t.Fatal(err)
	}
	svc, _ = admin.Service(ctx, res.ID)
	if svc.SpecVersion != 2 || svc.PreviousSpec == nil || svc.PreviousSpec.Task.Container.Image != "warren/demo:1" {
		t.Fatalf("after update: version %d previous %+v", svc.SpecVersion, svc.PreviousSpec)
	}
	if _, err := admin.RollbackService(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	svc, _ = admin.Service(ctx, "web")
	if svc.Spec.Task.Container.Image != "warren/demo:1" || svc.SpecVersion != 3 {
		t.Fatalf("after rollback: image %s version %d", svc.Spec.Task.Container.Image, svc.SpecVersion)
	}
	_, err = admin.PromoteService(ctx, "web")
	wantErr(t, err, http.StatusBadRequest, "only canary and blue-green rollouts are promoted")

	if _, err := admin.RemoveService(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Service(ctx, "web"); !client.IsNotFound(err) {
		t.Fatalf("removed service still found: %v", err)
	}
	if vips := c.st.View().Cluster().VIPs; len(vips) != 0 {
		t.Fatalf("VIP not released: %v", vips)
	}
	all, err := admin.Services(ctx)
	if err != nil || len(all) != 0 {
		t.Fatalf("services = %v, %v", all, err)
	}
}

// csrFor makes a key and CSR; the key becomes a tls.Certificate once signed.
func csrFor(t *testing.T) (csrPEM []byte, keyPEM []byte) {
	t.Helper()
	key, err := ca.NewNodeKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.NewCSR(key, "joiner", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.MarshalKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	return csr, kp
}

func identityOf(t *testing.T, certPEM string) ca.Identity {
	t.Helper()
	b, _ := pem.Decode([]byte(certPEM))
	if b == nil {
		t.Fatal("no certificate in answer")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.IdentityFromCert(cert)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestJoin(t *testing.T) {
	c := newCluster(t)
	be := c.backend(t, "m1", true)
	srv := c.serve(t, c.newServer(t, be).Handler())
	anon := c.client(t, "none", hostOf(srv))
	ctx := t.Context()
	csr, keyPEM := csrFor(t)

	_, err := anon.Join(ctx, client.JoinRequest{Token: c.managerToken, Role: "worker", CSRPEM: string(csr)})
	wantErr(t, err, http.StatusUnauthorized, "join as worker refused")
	_, err = anon.Join(ctx, client.JoinRequest{Token: "WRN-1-nonsense", Role: "worker", CSRPEM: string(csr)})
	wantErr(t, err, http.StatusUnauthorized, "malformed")

	w, err := anon.Join(ctx, client.JoinRequest{Token: c.workerToken, Role: "worker", CSRPEM: string(csr), Hostname: "edge-7", Addr: "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	if id := identityOf(t, w.CertPEM); id.NodeID != w.NodeID || id.Role != ca.RoleWorker {
		t.Fatalf("worker certificate identity %+v, node %s", id, w.NodeID)
	}
	if len(w.KEK) != 0 || w.Network.Subnet == "" {
		t.Fatalf("worker join answer: kek %q subnet %q", w.KEK, w.Network.Subnet)
	}
	if n, ok := c.st.View().Node(w.NodeID); !ok || n.Status.Hostname != "edge-7" || n.Spec.Role != api.RoleWorker {
		t.Fatalf("joined node in store: %+v %v", n, ok)
	}

	csr2, key2 := csrFor(t)
	m, err := anon.Join(ctx, client.JoinRequest{Token: c.managerToken, Role: "manager", CSRPEM: string(csr2), RaftAddr: "10.0.0.9:2377", APIAddr: "10.0.0.9:2377"})
	if err != nil {
		t.Fatal(err)
	}
	if string(m.KEK) != testKEK {
		t.Fatalf("manager join did not hand over the KEK")
	}
	if len(be.voterAdd) != 0 || len(be.nonvoter) != 1 || be.nonvoter[0] != m.NodeID {
		t.Fatalf("a joining manager must be added as nonvoter only: nonvoters %v voters %v", be.nonvoter, be.voterAdd)
	}
	// With its new certificate the manager says it has caught up.
	cert, err := tls.X509KeyPair([]byte(m.CertPEM), key2)
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.tlsFor("none")
	cfg.Certificates = []tls.Certificate{cert}
	mc, err := client.New(client.Config{Addrs: []string{hostOf(srv)}, TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.ManagerReady(ctx, client.ManagerReadyRequest{RaftAddr: "10.0.0.9:2377", Index: m.Index}); err != nil {
		t.Fatal(err)
	}
	if len(be.voterAdd) != 1 || be.voterAdd[0] != m.NodeID {
		t.Fatalf("manager-ready did not promote: %v", be.voterAdd)
	}
	_ = keyPEM
}

func TestAgentRoutesActOnOwnNodeOnly(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	worker := c.client(t, "worker", hostOf(srv))
	ctx := t.Context()

	err := worker.Register(ctx, api.NodeRegistration{NodeID: "m1", Hostname: "evil"})
	wantErr(t, err, http.StatusForbidden, "node w1 may not act for node m1")
	if err := worker.Register(ctx, api.NodeRegistration{Hostname: "worker-1b", Addr: "192.0.2.1", OS: "linux", Arch: "amd64",
		Network: api.NodeNetwork{WGPublicKey: "pub"}}); err != nil {
		t.Fatal(err)
	}
	n, _ := c.st.View().Node("w1")
	if n.Status.Hostname != "worker-1b" || n.Status.State != api.NodeReady || !n.Status.Heartbeat.Equal(testNow) || n.Status.Network.WGPublicKey != "pub" {
		t.Fatalf("registered status = %+v", n.Status)
	}

	c.apply(t, &store.Batch{PutTasks: []api.Task{
		{ID: "t1", ServiceID: "s", NodeID: "w1", DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskAssigned}},
		{ID: "t2", ServiceID: "s", NodeID: "m1", DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskAssigned}},
	}})
	a, err := worker.Assignments(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.NodeID != "w1" || len(a.Tasks) != 1 || a.Tasks[0].ID != "t1" || a.Index != c.st.View().Index() {
		t.Fatalf("assignments = node %s tasks %v index %d", a.NodeID, a.Tasks, a.Index)
	}

	// A blocking query returns when the index moves.
	got := make(chan *api.Assignments, 1)
	go func() {
		next, err := worker.Assignments(ctx, a.Index, time.Minute)
		if err != nil {
			t.Error(err)
		}
		got <- next
	}()
	c.apply(t, &store.Batch{PutTasks: []api.Task{{ID: "t3", ServiceID: "s", NodeID: "w1", DesiredState: api.TaskRunning}}})
	select {
	case next := <-got:
		if next == nil || next.Index <= a.Index || len(next.Tasks) != 2 {
			t.Fatalf("blocking query answer = %+v", next)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("blocking query did not return after the store moved")
	}

	err = worker.ReportStatus(ctx, api.StatusReport{Tasks: map[string]api.TaskStatus{
		"t1": {State: api.TaskRunning}, "t2": {State: api.TaskFailed},
	}})
	if err != nil {
		t.Fatal(err)
	}
	v := c.st.View()
	t1, _ := v.Task("t1")
	t2, _ := v.Task("t2")
	if t1.Status.State != api.TaskRunning || t2.Status.State != api.TaskAssigned {
		t.Fatalf("after report: t1 %s (want running), t2 %s (another node's task, want unchanged)", t1.Status.State, t2.Status.State)
	}
	err = worker.ReportStatus(ctx, api.StatusReport{NodeID: "m1", Tasks: map[string]api.TaskStatus{"t2": {State: api.TaskFailed}}})
	wantErr(t, err, http.StatusForbidden, "may not act for node m1")
}

func TestNoQuorumRefusesWritesServesReads(t *testing.T) {
	c := newCluster(t)
	be := c.backend(t, "m1", true)
	be.noQuorum = true
	srv := c.serve(t, c.newServer(t, be).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	_, err := admin.CreateService(t.Context(), webSpec("web", 0))
	wantErr(t, err, http.StatusServiceUnavailable, NoQuorumMessage)
	if _, err := admin.Nodes(t.Context()); err != nil {
		t.Fatalf("reads must work without quorum: %v", err)
	}
}

// A manager that cannot write its raft log names the disk's error, on the
// leader (raft answered the proposal with it) and on a manager without a
// leader (it keeps failing to store its first entry as leader), instead of
// only "no quorum".
func TestFullDiskNamesTheDisk(t *testing.T) {
	enospc := fmt.Errorf("%w: write /var/lib/warren/raft/raft.db: %w", raftnode.ErrStorage, syscall.ENOSPC)
	for _, tc := range []struct {
		name   string
		leader bool
		err    error
	}{
		{"leader", true, enospc},
		{"no leader", false, fmt.Errorf("no leader for 1.5s, and this manager cannot write its log: %w (%w)", enospc, errNoQuorum)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			be := c.backend(t, "m1", tc.leader)
			be.storageErr = tc.err
			if !tc.leader {
				be.leaderID = ""
			}
			srv := c.serve(t, c.newServer(t, be).Handler())
			admin := c.client(t, "admin", hostOf(srv))
			_, err := admin.CreateService(t.Context(), webSpec("web", 0))
			wantErr(t, err, http.StatusServiceUnavailable, "raft log write failed: write /var/lib/warren/raft/raft.db: no space left on device")
		})
	}
}

func TestFollowerForwardsToLeader(t *testing.T) {
	c := newCluster(t)
	leader := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	fb := c.backend(t, "m2", false)
	follower := c.serve(t, c.newServer(t, fb).Handler())
	ctx := t.Context()

	admin := c.client(t, "admin", hostOf(follower))
	_, err := admin.CreateService(ctx, webSpec("web", 0))
	wantErr(t, err, http.StatusServiceUnavailable, "no known API address")

	n, _ := c.st.View().Node("m1")
	n.Status.Manager.APIAddr = hostOf(leader)
	c.apply(t, &store.Batch{NodeStatuses: []store.NodeStatusUpdate{{NodeID: "m1", Status: n.Status}}})

	if _, err := admin.CreateService(ctx, webSpec("web", 0)); err != nil {
		t.Fatalf("write through a follower: %v", err)
	}
	// The leader acted for the original caller: the worker's registration
	// lands on the worker's node, not on the forwarding manager's.
	worker := c.client(t, "worker", hostOf(follower))
	if err := worker.Register(ctx, api.NodeRegistration{Hostname: "via-follower"}); err != nil {
		t.Fatal(err)
	}
	if w1, _ := c.st.View().Node("w1"); w1.Status.Hostname != "via-follower" {
		t.Fatalf("forwarded registration landed elsewhere: w1 hostname %q", w1.Status.Hostname)
	}
	// A forwarded worker is still only a worker.
	_, err = worker.Services(ctx)
	wantErr(t, err, http.StatusForbidden, "role worker")

	leader.Close()
	_, err = admin.CreateService(ctx, webSpec("api", 0))
	wantErr(t, err, http.StatusServiceUnavailable, "cannot reach the leader")
	svcs, err := admin.Services(ctx)
	if err != nil || len(svcs) != 1 {
		t.Fatalf("a read falls back to the follower's view when the leader is unreachable: %v %v", svcs, err)
	}
}

func TestImages(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	worker := c.client(t, "worker", hostOf(srv))
	ctx := t.Context()
	archive := bytes.Repeat([]byte("layer"), 1000)

	_, err := worker.UploadImage(ctx, "warren/demo:1", bytes.NewReader(archive))
	wantErr(t, err, http.StatusForbidden, "needs role admin")
	img, err := admin.UploadImage(ctx, "warren/demo:1", bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(img.Digest, "sha256:") || img.Size != int64(len(archive)) || len(img.Holders) != 1 {
		t.Fatalf("image = %+v", img)
	}
	rc, err := worker.DownloadImage(ctx, "warren/demo:1")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, archive) {
		t.Fatalf("downloaded %d bytes, want the %d uploaded", len(got), len(archive))
	}
	if _, err := admin.RemoveImage(ctx, "warren/demo:1"); err != nil {
		t.Fatal(err)
	}
	if imgs, _ := admin.Images(ctx); len(imgs) != 0 {
		t.Fatalf("images after rm = %v", imgs)
	}
}

func TestRenewKeepsIdentity(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	csr, _ := csrFor(t)
	res, err := c.client(t, "worker", hostOf(srv)).RenewCert(t.Context(), string(csr))
	if err != nil {
		t.Fatal(err)
	}
	if id := identityOf(t, res.CertPEM); id != (ca.Identity{NodeID: "w1", Role: ca.RoleWorker}) {
		t.Fatalf("renewed identity %+v, want w1/worker", id)
	}
	// A removed node is not renewed.
	c.apply(t, &store.Batch{DeleteNodes: []string{"w1"}})
	_, err = c.client(t, "worker", hostOf(srv)).RenewCert(context.Background(), string(csr))
	wantErr(t, err, http.StatusForbidden, "was removed")
}

func TestNegativeReplicasNamesServiceAndField(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.tlsFor("admin")}}
	resp, err := hc.Post(srv.URL+"/v1/services", "application/json",
		strings.NewReader(`{"name":"web","replicas":-1,"task":{"container":{"image":"x"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e client.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	want := `service "web": replicas: must be a whole number ≥ 0, not number -1`
	if resp.StatusCode != http.StatusBadRequest || e.Message != want {
		t.Fatalf("got %d %q, want 400 %q", resp.StatusCode, e.Message, want)
	}
}
