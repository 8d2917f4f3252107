package wstest

import (
	"net"
	"syscall"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// SmallSendBuf wraps ln so that each TCP connection it accepts has a
// kernel send buffer of 4 KiB: a peer that stops reading stalls the
// server's writes within kilobytes rather than megabytes. For tests of
// slow consumers, with [SlowClientOptions] on the other side.
func SmallSendBuf(ln net.Listener) net.Listener { return smallSendBuf{ln} }

type smallSendBuf struct{ net.Listener }

func (l smallSendBuf) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// SlowClientOptions give a client a kernel receive buffer of 2 KiB: while
// it does not call Receive, the server's writes to it stall within
// kilobytes.
func SlowClientOptions() *wsconn.DialOptions {
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return &wsconn.DialOptions{NetDialContext: d.DialContext, DisconnectTimeout: 5 * time.Second}
}
