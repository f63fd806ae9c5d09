package manager

import (
	"log"
	"net"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// chanListener is a net.Listener fed by the accept loop: one TLS port
// carries both raft and the API, told apart by ALPN after the handshake.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// zapStdLog routes net/http's error log to zap at debug level: TLS
// handshake noise from port scanners is not worth an operator's attention.
func zapStdLog(z *zap.Logger) *log.Logger {
	return log.New(writerFunc(func(p []byte) (int, error) {
		z.Debug(strings.TrimSpace(string(p)), zap.String("source", "http"))
		return len(p), nil
	}), "", 0)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
