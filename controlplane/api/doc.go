// Package api holds the types every part of Warren agrees on: what the user
// asks for (Spec) kept apart from what the system observed (Status), for
// nodes, services and tasks, and the messages exchanged between the CLI,
// managers and node agents.
//
// The package is pure data. It must not import anything kernel- or
// runtime-facing (see controlplane/imports_test.go) so that every consumer —
// the CLI, the FSM, the scheduler, the agent — can depend on it.
package api
