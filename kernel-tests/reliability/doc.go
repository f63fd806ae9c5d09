// Package reliability is Warren's reliability matrix: faults injected into
// real clusters of warren binaries on namespace hosts (the harness of
// kernel-tests/ktest, shared with kernel-tests/cluster), with the outcome
// checked rather than eyeballed — a porcupine linearizability check over
// the history clients recorded, and the set of acknowledged writes
// compared with what the cluster holds afterwards.
//
// Every test prints one summary line (RELIABILITY <id> …) with its figures;
// the test binary ends with the table of them. WARREN_RELIABILITY_PROFILE
// is "short" (CI: a few rounds) or "full" (make reliability).
//
// Row T5, fuzzing, is fuzz.sh beside this file: every native fuzz target
// of the module for a time each — 2 m in `make fuzz` (and FUZZTIME in
// `make reliability`), 30 s in CI's `make fuzz-smoke`, two targets at a
// time with a core each — with the committed corpus as seeds.
//
// Without root every test skips; as root a missing requirement fails.
package reliability
