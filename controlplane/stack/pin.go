package stack

import "github.com/warrenhq/warren/controlplane/api"

// keepPin carries the manager's pin of an unchanged image (digest and
// platforms, api.ContainerSpec.ImageDigest) and the service's own registry
// credential from the running spec into the desired one: a file names
// only the tag, and re-applying it must neither show a change nor move
// the service to whatever the tag names now.
func keepPin(cur, want api.ContainerSpec) api.ContainerSpec {
	if want.Image != cur.Image || want.ImageDigest != "" {
		return want
	}
	want.ImageDigest, want.ImagePlatforms = cur.ImageDigest, cur.ImagePlatforms
	if want.RegistryAuth == "" {
		want.RegistryAuth = cur.RegistryAuth
	}
	return want
}
