package interop_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/internal/interop"
	"github.com/wsnursery/wsnursery/wsconn"
)

// peerServer is a peer WebSocket server program in testdata.
type peerServer struct {
	name string
	have func() error
	cmd  func() (name string, args, env []string)
}

var peerServers = []peerServer{
	{
		name: "trio-websocket",
		have: func() error { return interop.HavePython("trio", "trio_websocket") },
		cmd: func() (string, []string, []string) {
			return interop.Python, []string{"-B", "testdata/trio_server.py"}, nil
		},
	},
	{
		name: "websockets",
		have: func() error { return interop.HavePython("websockets") },
		cmd: func() (string, []string, []string) {
			return interop.Python, []string{"-B", "testdata/websockets_server.py"}, nil
		},
	},
	{
		name: "node-ws",
		have: func() error { return interop.HaveNode("ws") },
		cmd: func() (string, []string, []string) {
			return "node", []string{"testdata/ws_server.js"}, []string{"NODE_PATH=" + interop.NodePath}
		},
	},
}

// startPeerServer starts ps and returns it with its base URL; it is stopped
// when t ends.
func startPeerServer(t *testing.T, ps peerServer) (*interop.Peer, string) {
	t.Helper()
	interop.Need(t, ps.have())
	name, args, env := ps.cmd()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	p, err := interop.Start(ctx, name, args, env)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(3 * time.Second)
		cancel()
	})
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	e, err := p.Next(wctx, func(e interop.Event) bool { return e.Event == "listening" })
	if err != nil {
		t.Fatal(err)
	}
	return p, "ws://127.0.0.1:" + strconv.Itoa(e.Port)
}

func dialOptions() *wsconn.DialOptions {
	return &wsconn.DialOptions{MaxMessageSize: maxMessageSize, DisconnectTimeout: disconnectTimeout}
}

// TestClientAgainstPeerServers runs our client against each peer server.
func TestClientAgainstPeerServers(t *testing.T) {
	for _, ps := range peerServers {
		t.Run(ps.name, func(t *testing.T) {
			t.Parallel()
			p, base := startPeerServer(t, ps)
			t.Run("echo", func(t *testing.T) { clientEcho(t, p, base) })
			t.Run("ping", func(t *testing.T) { clientPing(t, p, base) })
			t.Run("close-by-go", func(t *testing.T) { clientCloseByGo(t, p, base) })
			t.Run("close-by-peer", func(t *testing.T) { clientCloseByPeer(t, p, base) })
			t.Run("subprotocol", func(t *testing.T) { clientSubprotocol(t, p, base) })
			t.Run("reject", func(t *testing.T) { clientReject(t, p, base) })
			wantNoErrorEvents(t, p)
		})
	}
}

func clientEcho(t *testing.T, p *interop.Peer, base string) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	c, err := wsconn.Dial(ctx, base+"/echo", dialOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx, wsconn.StatusNormalClosure, "")
	if got := wantEvent(ctx, t, p, "open", "echo").Subprotocol; got != "" || c.Subprotocol() != "" {
		t.Errorf("no subprotocol offered, but the peer chose %q and we recorded %q", got, c.Subprotocol())
	}
	if err := echoAll(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx, wsconn.StatusNormalClosure, ""); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wantReason(t, "our CloseReason after closing", mustReason(t, c), 1000, "")
	e := wantEvent(ctx, t, p, "closed", "echo")
	if e.Code != 1000 {
		t.Errorf("peer saw close code %d, want 1000", e.Code)
	}
}

func clientPing(t *testing.T, p *interop.Peer, base string) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	c, err := wsconn.Dial(ctx, base+"/ping", dialOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx, wsconn.StatusNormalClosure, "")
	// The peer pings us first; our reader answers while we wait here.
	m, err := c.Receive(ctx)
	if err != nil || string(m.Data) != pingedText {
		t.Fatalf("want %q from the peer after its ping, got %q, %v", pingedText, m.Data, err)
	}
	wantPeerPong(t, wantEvent(ctx, t, p, "pong", "ping"))
	pctx, pcancel := context.WithTimeout(ctx, pingTimeout)
	defer pcancel()
	if err := c.Ping(pctx, goPing); err != nil {
		t.Fatalf("our Ping was not answered with a matching pong: %v", err)
	}
	if err := c.Close(ctx, wsconn.StatusNormalClosure, ""); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wantEvent(ctx, t, p, "closed", "ping")
}

func clientCloseByGo(t *testing.T, p *interop.Peer, base string) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	c, err := wsconn.Dial(ctx, base+"/close-by-go", dialOptions())
	if err != nil {
		t.Fatal(err)
	}
	wantEvent(ctx, t, p, "open", "close-by-go")
	if err := c.Close(ctx, goCloseCode, goCloseReason); err != nil {
		t.Fatalf("Close: %v", err)
	}
	e := wantEvent(ctx, t, p, "closed", "close-by-go")
	if e.Code != goCloseCode || e.Reason != goCloseReason {
		t.Errorf("peer saw close %d %q, want %d %q", e.Code, e.Reason, goCloseCode, goCloseReason)
	}
	// These peers echo the code and reason they received.
	wantReason(t, "our CloseReason after the peer's echo", mustReason(t, c), goCloseCode, goCloseReason)
	_, err = c.Receive(ctx)
	ce, err := closedError(err)
	if err != nil {
		t.Fatalf("Receive after Close: %v", err)
	}
	wantReason(t, "Receive's error after Close", ce.Reason, goCloseCode, goCloseReason)
}

// clientCloseByPeer uses Open: its function's context must end, with the
// *ConnectionClosedError as cause, when the peer closes.
func clientCloseByPeer(t *testing.T, p *interop.Peer, base string) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	var conn *wsconn.Conn
	err := wsconn.Open(ctx, base+"/close-by-peer", dialOptions(), func(fctx context.Context, c *wsconn.Conn) error {
		conn = c
		_, err := c.Receive(fctx)
		ce, err := closedError(err)
		if err != nil {
			return fmt.Errorf("Receive when the peer closes: %w", err)
		}
		wantReason(t, "Receive's error", ce.Reason, peerCloseCode, peerCloseReason)
		select {
		case <-fctx.Done():
		case <-ctx.Done():
			return errors.New("Open's context was not cancelled when the peer closed")
		}
		ce, err = closedError(context.Cause(fctx))
		if err != nil {
			return fmt.Errorf("cause of Open's context: %w", err)
		}
		wantReason(t, "cause of Open's context", ce.Reason, peerCloseCode, peerCloseReason)
		return nil
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	select {
	case <-conn.Done():
	default:
		t.Error("connection not done after Open returned")
	}
	wantReason(t, "our CloseReason", mustReason(t, conn), peerCloseCode, peerCloseReason)
	e := wantEvent(ctx, t, p, "closed", "close-by-peer")
	if e.Code != peerCloseCode || e.Reason != peerCloseReason {
		t.Errorf("peer saw our echo as %d %q, want %d %q", e.Code, e.Reason, peerCloseCode, peerCloseReason)
	}
}

func clientSubprotocol(t *testing.T, p *interop.Peer, base string) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	opts := dialOptions()
	opts.Subprotocols = slices.Clone(offered)
	c, err := wsconn.Dial(ctx, base+"/subprotocol", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx, wsconn.StatusNormalClosure, "")
	if c.Subprotocol() != subprotocol {
		t.Errorf("Subprotocol() = %q, want %q", c.Subprotocol(), subprotocol)
	}
	if got := c.ResponseHeader().Get("Sec-WebSocket-Protocol"); got != subprotocol {
		t.Errorf("response Sec-WebSocket-Protocol = %q, want %q", got, subprotocol)
	}
	if got := wantEvent(ctx, t, p, "open", "subprotocol").Subprotocol; got != subprotocol {
		t.Errorf("peer selected %q, want %q", got, subprotocol)
	}
	if err := c.SendText(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Receive(ctx); err != nil || string(m.Data) != "hello" {
		t.Fatalf("echo: %q, %v", m.Data, err)
	}
	if err := c.Close(ctx, wsconn.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	wantEvent(ctx, t, p, "closed", "subprotocol")
}

func clientReject(t *testing.T, p *interop.Peer, base string) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	c, err := wsconn.Dial(ctx, base+"/reject", dialOptions())
	if err == nil {
		c.Close(ctx, wsconn.StatusNormalClosure, "")
		t.Fatal("Dial succeeded against a rejecting server")
	}
	var re *wsconn.ConnectionRejectedError
	if !errors.As(err, &re) {
		t.Fatalf("want *wsconn.ConnectionRejectedError, got %T: %v", err, err)
	}
	if !errors.Is(err, wsconn.ErrHandshake) {
		t.Errorf("errors.Is(%v, ErrHandshake) = false", err)
	}
	if re.StatusCode != peerRejectStatus {
		t.Errorf("StatusCode = %d, want %d", re.StatusCode, peerRejectStatus)
	}
	if got := re.Header.Get(rejectHeader); got != peerRejectHeader {
		t.Errorf("header %s = %q, want %q", rejectHeader, got, peerRejectHeader)
	}
	if string(re.Body) != peerRejectBody {
		t.Errorf("Body = %q, want %q", re.Body, peerRejectBody)
	}
	wantEvent(ctx, t, p, "rejected", "reject")
}

func mustReason(t *testing.T, c *wsconn.Conn) wsconn.CloseReason {
	t.Helper()
	r, ok := c.CloseReason()
	if !ok {
		t.Fatal("CloseReason not set on a closed connection")
	}
	return r
}
