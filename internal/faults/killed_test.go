package faults_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/internal/interop"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/wsconn"
)

// The test binary re-executed with helperEnv set is a peer process: a
// client ("client", dialing helperURLEnv) or a server ("server") that sends
// helperMessages whole messages and then the first half of one more frame,
// reports {"event":"half-sent"} on stdout, and waits to be killed.
const (
	helperEnv      = "WSNURSERY_FAULTS_HELPER"
	helperURLEnv   = "WSNURSERY_FAULTS_URL"
	helperMessages = 100
	halfFrameLen   = 1000 // the announced payload; half of it is sent
)

func helperMain(mode string) int {
	ctx := context.Background()
	report := func(event string, fields map[string]any) {
		if fields == nil {
			fields = map[string]any{}
		}
		fields["event"] = event
		b, _ := json.Marshal(fields)
		os.Stdout.Write(append(b, '\n'))
	}
	fail := func(err error) int {
		report("error", map[string]any{"detail": err.Error()})
		return 1
	}
	switch mode {
	case "client":
		var raw net.Conn
		opts := &wsconn.DialOptions{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			raw = c
			return c, err
		}}
		c, err := wsconn.Dial(ctx, os.Getenv(helperURLEnv), opts)
		if err != nil {
			return fail(err)
		}
		if err := sendThenHalf(ctx, c, raw, true); err != nil {
			return fail(err)
		}
	case "server":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		cl := &capturingListener{Listener: ln, conns: make(chan net.Conn, 1)}
		go wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err == nil {
				err = sendThenHalf(ctx, c, <-cl.conns, false)
			}
			if err != nil {
				fail(err)
			} else {
				report("half-sent", nil)
			}
			<-ctx.Done() // hold the connection until killed
			return nil
		}, nil).Serve(ctx, cl)
		report("listening", map[string]any{"port": ln.Addr().(*net.TCPAddr).Port})
		io.Copy(io.Discard, os.Stdin) // until killed (or the test closes stdin)
		return 0
	default:
		return fail(fmt.Errorf("unknown helper mode %q", mode))
	}
	report("half-sent", nil)
	io.Copy(io.Discard, os.Stdin) // until killed (or the test closes stdin)
	return 0
}

// sendThenHalf sends the whole messages, then, straight on the TCP
// connection under c, a frame header announcing halfFrameLen bytes and
// half of them (masked when the sender is a client).
func sendThenHalf(ctx context.Context, c *wsconn.Conn, raw net.Conn, client bool) error {
	for seq := range helperMessages {
		if err := c.SendBinary(ctx, message(seq)); err != nil {
			return err
		}
	}
	hdr := []byte{0x82, 126, 0, 0} // FIN + binary, 16-bit length follows
	binary.BigEndian.PutUint16(hdr[2:], halfFrameLen)
	if client {
		hdr[1] |= 0x80
		hdr = append(hdr, 1, 2, 3, 4) // masking key
	}
	_, err := raw.Write(append(hdr, make([]byte, halfFrameLen/2)...))
	return err
}

type capturingListener struct {
	net.Listener
	conns chan net.Conn
}

func (l *capturingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		select {
		case l.conns <- c:
		default:
		}
	}
	return c, err
}

// startHelper re-executes the test binary as a peer process.
func startHelper(t *testing.T, ctx context.Context, mode, url string) *interop.Peer {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := interop.Start(ctx, exe, []string{"-test.run=^$"}, []string{helperEnv + "=" + mode, helperURLEnv + "=" + url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(time.Second) })
	return p
}

// killWhenHalfSent waits for the helper's half frame and kills it with
// SIGKILL.
func killWhenHalfSent(ctx context.Context, p *interop.Peer) error {
	e, err := p.Next(ctx, func(e interop.Event) bool { return e.Event == "half-sent" || e.Event == "error" })
	if err != nil {
		return err
	}
	if e.Event == "error" {
		return fmt.Errorf("helper failed: %s", e.Detail)
	}
	if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
		return fmt.Errorf("failed to kill the helper: %w", err)
	}
	if err := p.Wait(ctx); err == nil {
		return fmt.Errorf("helper exited cleanly; want killed")
	}
	return nil
}

// receiveAll receives until the connection fails, checking that the
// messages are message(0), message(1), ...; it returns how many arrived
// and the error that ended it. ctx may be the connection's scope (Open's or
// a handler's), which the loss cancels: queued messages still come first.
func receiveAll(ctx context.Context, c *wsconn.Conn) (int, error) {
	for n := 0; ; n++ {
		m, err := c.Receive(ctx)
		if err != nil {
			return n, err
		}
		if err := checkMessage(m, n); err != nil {
			return n, err
		}
	}
}

// TestPeerProcessKilledMidMessage: a peer process killed with SIGKILL
// halfway through a frame ends our side's connection with 1006, after
// every whole message it sent arrived exactly once and the half one not
// at all.
func TestPeerProcessKilledMidMessage(t *testing.T) {
	t.Run("peer-client", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done := make(chan result, 1)
		addr := startServer(t, func(hctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(hctx, nil)
			if err != nil {
				return err
			}
			n, err := receiveAll(hctx, c)
			done <- result{n, err}
			return nil
		}, nil)
		p := startHelper(t, ctx, "client", "ws://"+addr+"/")
		if err := killWhenHalfSent(ctx, p); err != nil {
			t.Fatal(err)
		}
		r := waitResult(t, done, 10*time.Second)
		if err := closed1006(r.err); err != nil {
			t.Error(err)
		}
		if r.n != helperMessages {
			t.Errorf("received %d messages, want %d", r.n, helperMessages)
		}
	})

	t.Run("peer-server", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		p := startHelper(t, ctx, "server", "")
		e, err := p.Next(ctx, func(e interop.Event) bool { return e.Event == "listening" })
		if err != nil {
			t.Fatal(err)
		}
		var (
			mu      sync.Mutex
			n       int
			recvErr error
		)
		err = wsconn.Open(ctx, "ws://127.0.0.1:"+strconv.Itoa(e.Port)+"/", nil, func(ctx context.Context, c *wsconn.Conn) error {
			return nursery.Run(ctx, func(ctx context.Context, nu *nursery.Nursery) error {
				nu.Go(func(ctx context.Context) error { return killWhenHalfSent(ctx, p) })
				nu.Go(func(ctx context.Context) error {
					got, err := receiveAll(ctx, c)
					mu.Lock()
					n, recvErr = got, err
					mu.Unlock()
					return err
				})
				return nil
			})
		})
		if err := closed1006(recvErr); err != nil {
			t.Errorf("Receive: %v", err)
		}
		// Whether the nursery saw the receiver's error or only Open's
		// cancellation of its parent, Open reports why the connection ended.
		if err := closed1006(err); err != nil {
			t.Errorf("Open: %v", err)
		}
		if n != helperMessages {
			t.Errorf("received %d messages, want %d", n, helperMessages)
		}
	})
}
