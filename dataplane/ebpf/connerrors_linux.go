package ebpf

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/warrenhq/warren/dataplane"
)

// connErrors is bpf/conn_errors.c: a BTF tracepoint program that counts,
// per backend, the TCP connections the socket balancer sent there and that
// failed to connect or were reset.
type connErrors struct {
	objs ConnErrorsObjects
	link link.Link
}

const connErrorsLink = "link_conn_errors"

// setupConnErrors loads and attaches the program over the socket balancer's
// maps. A tracing link cannot swap its program in place, so an earlier
// agent's link is detached first: the few state changes in between go
// uncounted, where the other order would count them twice.
func setupConnErrors(pinDir string, lb *SockLBMaps) (*connErrors, error) {
	ce := &connErrors{}
	err := LoadConnErrorsObjects(&ce.objs, &ebpf.CollectionOptions{
		Maps: ebpf.MapOptions{PinPath: pinDir},
		MapReplacements: map[string]*ebpf.Map{
			ConnErrorsMapConnBackends:  lb.ConnBackends,
			ConnErrorsMapBackendErrors: lb.BackendErrors,
		},
	})
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return nil, &dataplane.NotSupportedError{What: "tcp state tracepoint (BTF)", Err: err}
		}
		return nil, fmt.Errorf("load conn_errors: %w", err)
	}
	pin := filepath.Join(pinDir, connErrorsLink)
	unpinLink(pin)
	l, err := link.AttachTracing(link.TracingOptions{Program: ce.objs.WarrenTcpState, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		ce.objs.Close()
		if errors.Is(err, ebpf.ErrNotSupported) {
			return nil, &dataplane.NotSupportedError{What: "tp_btf/inet_sock_set_state", Err: err}
		}
		return nil, fmt.Errorf("attach tp_btf/inet_sock_set_state: %w", err)
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		ce.objs.Close()
		return nil, fmt.Errorf("pin %s: %w", connErrorsLink, err)
	}
	ce.link = l
	return ce, nil
}

func (ce *connErrors) close() error {
	return errors.Join(ce.link.Close(), ce.objs.Close())
}
