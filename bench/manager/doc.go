// Package manager measures what a Warren manager costs to run: resident
// memory idle and with 100 services, and the time from `cluster init` to a
// manager that answers. It runs the real binary (WARREN_BIN, or one it
// builds) as a separate process so RSS is the manager's alone.
package manager
