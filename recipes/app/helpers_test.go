package app_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsnursery/wsnursery/internal/pipenet"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/wsconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipeListener is an in-memory listener (internal/pipenet) that also sends
// the server ends it accepts on accepted, if that is not nil.
type pipeListener struct {
	*pipenet.Listener
	accepted chan net.Conn
}

func newPipeListener() *pipeListener { return &pipeListener{Listener: pipenet.Listen()} }

func (l *pipeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil && l.accepted != nil {
		l.accepted <- c
	}
	return c, err
}

// serve runs a wsconn.Server on ln until stop is called (or the test
// ends), which checks how Serve ended.
func serve(t *testing.T, ln net.Listener, h wsconn.Handler, opts *wsconn.ServerOptions) (stop func()) {
	t.Helper()
	if opts == nil {
		opts = &wsconn.ServerOptions{}
	}
	opts.DisconnectTimeout = 5 * time.Second
	return wstest.Serve(t, ln, h, opts).Stop
}

// pipeOptions dial ln.
func pipeOptions(ln *pipeListener) *wsconn.DialOptions {
	return &wsconn.DialOptions{NetDialContext: ln.Dial, DisconnectTimeout: 5 * time.Second}
}

// listen returns a TCP listener on 127.0.0.1 and its ws:// URL.
func listen(t *testing.T) (net.Listener, string) {
	t.Helper()
	ln := wstest.Listen(t)
	return ln, "ws://" + ln.Addr().String() + "/"
}

// recorder collects events from callbacks; callbacks run one at a time,
// but the test reads from another goroutine after Run returns.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// closeReason waits for c to close and returns why.
func closeReason(c *wsconn.Conn) wsconn.CloseReason {
	<-c.Done()
	r, _ := c.CloseReason()
	return r
}
