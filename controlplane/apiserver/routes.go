package apiserver

import "net/http"

// Who may call what. Nodes (worker or manager certificates) read their own
// assignments and write their own status; operators (admin certificates or
// the unix socket) change intent. Managers may read cluster state because
// they forward reads for their callers.
var (
	anyone    = []Role{RoleNone}
	admins    = []Role{RoleAdmin}
	readers   = []Role{RoleManager, RoleAdmin}
	nodes     = []Role{RoleWorker, RoleManager}
	managers  = []Role{RoleManager}
	certified = []Role{RoleWorker, RoleManager, RoleAdmin}
)

// routeTable is every route of the v1 API. docs/api.md documents it and the
// authorisation test enumerates it.
func (s *Server) routeTable() []Route {
	return append([]Route{
		{http.MethodGet, "/v1/cluster", certified, Read, s.clusterInfo},

		{http.MethodPost, "/v1/join", anyone, Write, s.join},
		{http.MethodPost, "/v1/agent/manager-ready", managers, Write, s.managerReady},
		{http.MethodGet, "/v1/join-tokens", admins, Read, s.joinTokens},
		{http.MethodPost, "/v1/join-tokens/{role}/rotate", admins, Write, s.rotateJoinToken},

		{http.MethodGet, "/v1/nodes", readers, Read, s.listNodes},
		{http.MethodGet, "/v1/nodes/{ref}", readers, Read, s.inspectNode},
		{http.MethodPost, "/v1/nodes/{ref}/update", admins, Write, s.updateNode},
		{http.MethodDelete, "/v1/nodes/{ref}", admins, Write, s.removeNode},
		{http.MethodPost, "/v1/nodes/{ref}/promote", admins, Write, s.promoteNode},
		{http.MethodPost, "/v1/nodes/{ref}/demote", admins, Write, s.demoteNode},

		{http.MethodPost, "/v1/services", admins, Write, s.createService},
		{http.MethodGet, "/v1/services", readers, Read, s.listServices},
		{http.MethodGet, "/v1/services/{ref}", readers, Read, s.inspectService},
		{http.MethodPost, "/v1/services/{ref}/update", admins, Write, s.updateService},
		{http.MethodPost, "/v1/services/{ref}/scale", admins, Write, s.scaleService},
		{http.MethodDelete, "/v1/services/{ref}", admins, Write, s.removeService},
		{http.MethodPost, "/v1/services/{ref}/promote", admins, Write, s.promoteService},
		{http.MethodPost, "/v1/services/{ref}/rollback", admins, Write, s.rollbackService},

		{http.MethodGet, "/v1/tasks", readers, Read, s.listTasks},
		// Which service table each node applied; the leader holds the acks.
		{http.MethodGet, "/v1/tables", readers, Read, s.tables},
		// Logs are streamed from the nodes by whichever manager is asked.
		{http.MethodGet, "/v1/services/{ref}/logs", admins, Local, s.serviceLogs},

		{http.MethodPost, "/v1/agent/register", nodes, Write, s.register},
		// Assignments are served from the local store: an agent's blocking
		// query must keep working on any manager, and the index it passes
		// makes the answer monotonic.
		{http.MethodGet, "/v1/agent/assignments", nodes, Local, s.assignments},
		{http.MethodPost, "/v1/agent/status", nodes, Write, s.reportStatus},
		{http.MethodPost, "/v1/agent/role", nodes, Write, s.changeRole},

		{http.MethodPost, "/v1/images", admins, Write, s.uploadImage},
		{http.MethodGet, "/v1/images", certified, Read, s.listImages},
		{http.MethodDelete, "/v1/images/{name...}", admins, Write, s.removeImage},
		{http.MethodGet, "/v1/image-blobs/{name...}", certified, Local, s.downloadImage},
		// Managers record that they hold an image's archive (replication).
		{http.MethodPost, "/v1/image-holders/{name...}", managers, Write, s.recordImageHolder},

		{http.MethodPost, "/v1/volumes", admins, Write, s.createVolume},
		{http.MethodGet, "/v1/volumes", readers, Read, s.listVolumes},
		{http.MethodGet, "/v1/volumes/{name}", readers, Read, s.inspectVolume},
		{http.MethodDelete, "/v1/volumes/{name}", admins, Write, s.removeVolume},

		// Renewal needs the CA key, which every manager holds; no raft write.
		{http.MethodPost, "/v1/certs/renew", certified, Local, s.renewCert},
	}, append(append(s.secretRoutes(), s.autolockRoutes()...), s.registryRoutes()...)...)
}
