package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/raftnode"
	"github.com/warrenhq/warren/controlplane/store"
)

// rawPost sends body as it is and returns the status and error message.
func rawPost(t *testing.T, c *cluster, url, kind, body string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c.tlsFor(kind)}}
	resp, err := hc.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e client.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Message
}

// TestHostileBodies are requests a fault-injection run sent that the server
// used to accept: trailing data after the JSON value, an update that
// renames the service, an image reference outside the distribution grammar.
func TestHostileBodies(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	admin := c.client(t, "admin", hostOf(srv))
	if _, err := admin.CreateService(t.Context(), webSpec("a", 0)); err != nil {
		t.Fatal(err)
	}
	spec := func(name, image string) string {
		b, _ := json.Marshal(api.ServiceSpec{Name: name, Replicas: 1, Task: api.TaskSpec{Container: api.ContainerSpec{Image: image}}})
		return string(b)
	}
	for _, tc := range []struct {
		name, path, body string
		want             string // substring of the 400 message
	}{
		{"two objects on create", "/v1/services", spec("b", "x") + spec("c", "x"), "request body: unexpected data after the JSON value"},
		{"garbage after create", "/v1/services", spec("b", "x") + " garbage", "request body: unexpected data after the JSON value"},
		{"two objects on update", "/v1/services/a/update", spec("a", "x") + `{}`, "request body: unexpected data after the JSON value"},
		{"garbage after update", "/v1/services/a/update", spec("a", "x") + `]`, "request body: unexpected data after the JSON value"},
		{"garbage after scale", "/v1/services/a/scale", `{"replicas":3} 4`, "request body: unexpected data after the JSON value"},
		{"garbage after join", "/v1/join", `{"role":"worker"}{"role":"manager"}`, "request body: unexpected data after the JSON value"},
		{"garbage after node update", "/v1/nodes/w1/update", `{"availability":"drain"}x`, "request body: unexpected data after the JSON value"},
		{"unknown field", "/v1/services", `{"name":"b","nmae":"c","task":{"container":{"image":"x"}}}`, `unknown field "nmae"`},
		{"rename on update", "/v1/services/a/update", spec("b", "warren/demo:1"), `service "a": name: cannot change to "b"`},
		{"invalid image on create", "/v1/services", spec("b", "Not A//Valid::Image@@ref"), `service "b": task.container.image: "Not A//Valid::Image@@ref": invalid reference format`},
		{"upper-case image on update", "/v1/services/a/update", spec("a", "Warren/Demo:1"), `service "a": task.container.image: "Warren/Demo:1": `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, msg := rawPost(t, c, srv.URL+tc.path, "admin", tc.body)
			if status != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
				t.Fatalf("got %d %q, want 400 containing %q", status, msg, tc.want)
			}
		})
	}
	// Nothing of the above changed the store: still one service, named a.
	svcs := c.st.View().Services()
	if len(svcs) != 1 || svcs[0].Spec.Name != "a" || svcs[0].SpecVersion != 1 {
		t.Fatalf("services after refused requests: %+v", svcs)
	}
	// Valid references of every form are accepted.
	for _, img := range []string{"x", "warren/demo:1", "registry.example:5000/team/app:v2",
		"nginx@sha256:" + strings.Repeat("ab", 32)} {
		if status, msg := rawPost(t, c, srv.URL+"/v1/services/a/update", "admin", spec("a", img)); status != http.StatusOK {
			t.Errorf("image %q refused: %d %s", img, status, msg)
		}
	}
}

// TestJoinRefusesForeignCADigest: the digest in a token pins the CA, and the
// server checks it too, not only the joining CLI.
func TestJoinRefusesForeignCADigest(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	anon := c.client(t, "none", hostOf(srv))
	csr, _ := csrFor(t)
	before := len(c.st.View().Nodes())

	// WRN-1-<digest>-<secret>: change one character of the digest.
	parts := strings.Split(c.workerToken, "-")
	d := []byte(parts[2])
	if d[0] == 'a' {
		d[0] = 'b'
	} else {
		d[0] = 'a'
	}
	parts[2] = string(d)
	_, err := anon.Join(t.Context(), client.JoinRequest{Token: strings.Join(parts, "-"), Role: "worker", CSRPEM: string(csr)})
	wantErr(t, err, http.StatusUnauthorized, "join as worker refused: join token: the CA digest does not match this cluster's CA")
	if after := len(c.st.View().Nodes()); after != before {
		t.Fatalf("a refused join added a node: %d nodes, was %d", after, before)
	}
}

// conflictBackend fails the first applies with a version conflict, as a
// concurrent write to the cluster object would.
type conflictBackend struct {
	*fakeBackend
	mu        sync.Mutex
	conflicts int
}

func (b *conflictBackend) Apply(ctx context.Context, batch *store.Batch) (uint64, error) {
	b.mu.Lock()
	fail := b.conflicts > 0
	if fail {
		b.conflicts--
	}
	b.mu.Unlock()
	if fail {
		// Someone else changed the cluster object meanwhile.
		c := b.st.View().Cluster()
		next := *c
		if _, err := b.fakeBackend.Apply(ctx, &store.Batch{Cluster: &next}); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("cluster is at version %d, expected %d: %w", c.Meta.Version+1, c.Meta.Version, store.ErrConflict)
	}
	return b.fakeBackend.Apply(ctx, batch)
}

// TestConcurrentJoins: ten nodes joining at once all get in, each with its
// own node record, subnet and raft entry; a version conflict is the
// server's to retry, never the joiner's.
func TestConcurrentJoins(t *testing.T) {
	c := newCluster(t)
	be := &conflictBackend{fakeBackend: c.backend(t, "m1", true), conflicts: 3}
	srv := c.serve(t, c.newServer(t, be).Handler())
	anon := c.client(t, "none", hostOf(srv))
	before := len(c.st.View().Nodes())

	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	ids := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			csr, _ := csrFor(t)
			req := client.JoinRequest{Token: c.workerToken, Role: "worker", CSRPEM: string(csr), Hostname: fmt.Sprint("w-", i)}
			if i%2 == 0 {
				addr := fmt.Sprintf("10.0.0.%d:2377", 10+i)
				req = client.JoinRequest{Token: c.managerToken, Role: "manager", CSRPEM: string(csr), Hostname: fmt.Sprint("m-", i), RaftAddr: addr, APIAddr: addr}
			}
			resp, err := anon.Join(t.Context(), req)
			errs[i] = err
			if err == nil {
				ids[i] = resp.NodeID
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("join %d: %v", i, err)
		}
	}
	v := c.st.View()
	if got := len(v.Nodes()); got != before+n {
		t.Fatalf("%d nodes after %d joins, want %d", got, n, before+n)
	}
	subnets := map[string]string{}
	for _, id := range ids {
		sub, ok := v.Cluster().Subnets[id]
		if !ok {
			t.Errorf("node %s has no subnet", id)
		}
		if other, dup := subnets[sub]; dup {
			t.Errorf("nodes %s and %s share subnet %s", id, other, sub)
		}
		subnets[sub] = id
	}
	if len(be.nonvoter) != n/2 {
		t.Fatalf("%d managers added to raft, want %d", len(be.nonvoter), n/2)
	}
}

// noRaftBackend cannot add servers to raft (leadership lost, a membership
// change stuck).
type noRaftBackend struct{ *fakeBackend }

func (noRaftBackend) AddNonvoter(id, addr string) error {
	return fmt.Errorf("add %s: %w", id, raftnode.ErrNoQuorum)
}

// TestFailedManagerJoinLeavesNoNode: a manager that could not be added to
// raft is not left in the store as a node without a raft seat.
func TestFailedManagerJoinLeavesNoNode(t *testing.T) {
	c := newCluster(t)
	srv := c.serve(t, c.newServer(t, noRaftBackend{c.backend(t, "m1", true)}).Handler())
	anon := c.client(t, "none", hostOf(srv))
	csr, _ := csrFor(t)
	v0 := c.st.View()
	_, err := anon.Join(t.Context(), client.JoinRequest{Token: c.managerToken, Role: "manager", CSRPEM: string(csr), RaftAddr: "10.0.0.9:2377", APIAddr: "10.0.0.9:2377"})
	wantErr(t, err, http.StatusServiceUnavailable, "join: add 10.0.0.9:2377 to raft as a nonvoter")
	v := c.st.View()
	if len(v.Nodes()) != len(v0.Nodes()) || len(v.Cluster().Subnets) != len(v0.Cluster().Subnets) {
		t.Fatalf("failed join left %d nodes and %d subnets, was %d and %d", len(v.Nodes()), len(v.Cluster().Subnets), len(v0.Nodes()), len(v0.Cluster().Subnets))
	}
}

// TestCatchingUpManagerDoesNotAnswerFromItsStore: a manager whose store is
// behind its raft log (it just restarted) refuses with 503 rather than
// answer "not found" for objects that exist, on every path that would
// answer from that store.
func TestCatchingUpManagerDoesNotAnswerFromItsStore(t *testing.T) {
	c := newCluster(t)
	leaderBe := c.backend(t, "m1", true)
	leader := c.serve(t, c.newServer(t, leaderBe).Handler())
	if _, err := c.client(t, "admin", hostOf(leader)).CreateService(t.Context(), webSpec("web", 0)); err != nil {
		t.Fatal(err)
	}
	fb := c.backend(t, "m2", false)
	fb.leaderID = "" // it has not heard from a leader yet
	fb.catchingUp = true
	follower := c.serve(t, c.newServerWith(t, Config{Backend: fb, CatchUpWait: 50 * time.Millisecond}).Handler())
	admin := c.client(t, "admin", hostOf(follower))
	worker := c.client(t, "worker", hostOf(follower))
	ctx := t.Context()

	_, err := admin.Stale().Service(ctx, "web")
	wantErr(t, err, http.StatusServiceUnavailable, "this manager is still catching up with the raft log")
	_, err = admin.Service(ctx, "web")
	wantErr(t, err, http.StatusServiceUnavailable, "catching up")
	_, err = worker.Assignments(ctx, 0, 0)
	wantErr(t, err, http.StatusServiceUnavailable, "catching up")

	fb.setCatchingUp(false)
	if _, err := admin.Stale().Service(ctx, "web"); err != nil {
		t.Fatalf("caught up, stale read: %v", err)
	}
	if _, err := admin.Service(ctx, "web"); err != nil {
		t.Fatalf("caught up, no leader known, read from the local view: %v", err)
	}
}

// TestFollowerForwardsBeforeKnowingLeaderRecord: a follower whose store
// does not hold the leader's node record yet forwards to the leader's raft
// address, which is its API address too.
func TestFollowerForwardsBeforeKnowingLeaderRecord(t *testing.T) {
	c := newCluster(t)
	leader := c.serve(t, c.newServer(t, c.backend(t, "m1", true)).Handler())
	fb := c.backend(t, "m2", false)
	fb.leaderAddr = hostOf(leader)
	follower := c.serve(t, c.newServerWith(t, Config{Backend: fb, RaftAddrIsAPIAddr: true}).Handler())
	if n, _ := c.st.View().Node("m1"); n.Status.Manager.APIAddr != "" {
		t.Fatalf("the leader's node record already has an API address")
	}
	admin := c.client(t, "admin", hostOf(follower))
	if _, err := admin.CreateService(t.Context(), webSpec("web", 0)); err != nil {
		t.Fatalf("write through a follower that knows the leader only from raft: %v", err)
	}
	if _, err := admin.Service(t.Context(), "web"); err != nil {
		t.Fatalf("read through it: %v", err)
	}
}
