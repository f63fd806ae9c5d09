package client

import "github.com/warrenhq/warren/controlplane/api"

func apiReport() api.StatusReport { return api.StatusReport{NodeID: "n1"} }
