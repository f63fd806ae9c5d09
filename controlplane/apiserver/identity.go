package apiserver

import "github.com/warrenhq/warren/controlplane/ca"

// Identity and Role are the CA's: authorisation uses exactly what the
// certificate says.
type (
	Identity = ca.Identity
	Role     = ca.Role
)

const (
	RoleManager = ca.RoleManager
	RoleWorker  = ca.RoleWorker
	RoleAdmin   = ca.RoleAdmin
	// RoleNone in Route.Allowed admits callers without a certificate; as an
	// identity it is such a caller.
	RoleNone Role = "none"
)
