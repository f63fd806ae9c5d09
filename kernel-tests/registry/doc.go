// Package registrytest runs a real OCI registry for kernel tests: Debian's
// docker-registry (the CNCF distribution registry) inside a network
// namespace the test created, with TLS from a CA generated per run and
// htpasswd auth, and a pusher built on go-containerregistry that loads
// image archives (build/demo.tar) into it.
//
// The registry is reached only at the namespace's own address: the pusher
// dials from inside that namespace, so no traffic leaves the machine and
// nothing is added to the root namespace.
//
// Without root the tests skip; as root a missing docker-registry fails
// (`make deps` installs it).
package registrytest
