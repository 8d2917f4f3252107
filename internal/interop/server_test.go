package interop_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/internal/interop"
	"github.com/wsnursery/wsnursery/wsconn"
)

// handled is what our server's handler saw in one scenario.
type handled struct {
	scenario    string
	err         error              // the scenario failed on our side
	reason      wsconn.CloseReason // CloseReason at the end
	closedErr   *wsconn.ConnectionClosedError
	offered     []string
	subprotocol string
}

// goServer is our server on 127.0.0.1:0, running the scenarios by path.
type goServer struct {
	url     string
	results chan handled
}

// startGoServer serves the scenarios until t ends. opts may set
// CheckOrigin; the other fields are filled in.
func startGoServer(t *testing.T, opts *wsconn.ServerOptions) *goServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &goServer{
		url:     "ws://" + ln.Addr().String(),
		results: make(chan handled, 16),
	}
	if opts == nil {
		opts = &wsconn.ServerOptions{}
	}
	opts.MaxMessageSize = maxMessageSize
	opts.DisconnectTimeout = disconnectTimeout
	serveUntilCleanup(t, wsconn.NewServer(s.handle, opts), ln)
	return s
}

// serveUntilCleanup runs srv on ln until t ends, then checks that Serve
// returns in time.
func serveUntilCleanup(t *testing.T, srv *wsconn.Server, ln net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(2 * disconnectTimeout):
			t.Error("Serve did not return after its context was cancelled")
		}
	})
}

func (s *goServer) handle(ctx context.Context, r *wsconn.Request) error {
	h := handled{scenario: scenarioOf(r.Path), offered: r.Subprotocols}
	defer func() { s.results <- h }()
	if h.scenario == "reject" {
		h.err = r.Reject(ctx, goRejectStatus, http.Header{rejectHeader: {goRejectHeader}}, []byte(goRejectBody))
		return nil
	}
	var opts wsconn.AcceptOptions
	if slices.Contains(r.Subprotocols, subprotocol) {
		opts.Subprotocol = subprotocol
	}
	c, err := r.Accept(ctx, &opts)
	if err != nil {
		h.err = err
		return err
	}
	h.subprotocol = c.Subprotocol()
	h.err = s.run(ctx, h.scenario, c, &h)
	if h.err == nil && h.scenario != "close-by-peer" {
		// Close here (the handler's return would too) to see the peer's echo.
		h.err = c.Close(ctx, wsconn.StatusNormalClosure, "")
	}
	h.reason, _ = c.CloseReason()
	return nil
}

func (s *goServer) run(ctx context.Context, scenario string, c *wsconn.Conn, h *handled) error {
	switch scenario {
	case "echo":
		return echoAll(ctx, c)
	case "ping":
		// The peer pings us first, then says so.
		m, err := c.Receive(ctx)
		if err != nil || string(m.Data) != pingedText {
			return fmt.Errorf("want %q after the peer's ping, got %q, %v", pingedText, m.Data, err)
		}
		if err := ping(ctx, c); err != nil {
			return err
		}
		// The echoing peer sends this back.
		if err := c.SendText(ctx, "after ping"); err != nil {
			return err
		}
		if m, err := c.Receive(ctx); err != nil || string(m.Data) != "after ping" {
			return fmt.Errorf("echo after ping: %q, %v", m.Data, err)
		}
		return nil
	case "ping-only":
		return ping(ctx, c)
	case "close-by-go":
		if err := c.Close(ctx, goCloseCode, goCloseReason); err != nil {
			return fmt.Errorf("Close: %w", err)
		}
		return nil
	case "close-by-peer":
		_, err := c.Receive(ctx)
		if h.closedErr, err = closedError(err); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(scenarioTimeout):
			return errors.New("handler context not cancelled after the peer closed")
		}
		if _, err := closedError(context.Cause(ctx)); err != nil {
			return fmt.Errorf("cause of the handler's context: %w", err)
		}
		return nil
	case "subprotocol":
		if err := c.SendText(ctx, "hello"); err != nil {
			return err
		}
		if m, err := c.Receive(ctx); err != nil || string(m.Data) != "hello" {
			return fmt.Errorf("echo: %q, %v", m.Data, err)
		}
		return nil
	}
	return fmt.Errorf("unknown scenario %q", scenario)
}

func ping(ctx context.Context, c *wsconn.Conn) error {
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := c.Ping(pctx, goPing); err != nil {
		return fmt.Errorf("our Ping was not answered with a matching pong: %w", err)
	}
	return nil
}

// result waits for the handler's report on scenario.
func (s *goServer) result(t *testing.T, scenario string) handled {
	t.Helper()
	select {
	case h := <-s.results:
		if h.scenario != scenario {
			t.Fatalf("handler ran %q, want %q", h.scenario, scenario)
		}
		return h
	case <-time.After(scenarioTimeout):
		t.Fatalf("handler for %q did not finish", scenario)
	}
	panic("unreachable")
}

// peerClient is a peer WebSocket client program in testdata.
type peerClient struct {
	name string
	have func() error
	cmd  func(url, scenario string) (name string, args, env []string)
	// echoesClose: the peer answers a Close frame with the code and reason
	// it received (websocket-client always answers 1000).
	echoesClose bool
	// rejectBody: the peer's API exposes a rejection's body.
	rejectBody bool
}

func python(script string) func(url, scenario string) (string, []string, []string) {
	return func(url, scenario string) (string, []string, []string) {
		return interop.Python, []string{"-B", "testdata/" + script, url, scenario}, nil
	}
}

var peerClients = []peerClient{
	{
		name:        "trio-websocket",
		have:        func() error { return interop.HavePython("trio", "trio_websocket") },
		cmd:         python("trio_client.py"),
		echoesClose: true,
		rejectBody:  true,
	},
	{
		name:        "websockets",
		have:        func() error { return interop.HavePython("websockets") },
		cmd:         python("websockets_client.py"),
		echoesClose: true,
	},
	{
		name: "websocket-client",
		have: func() error { return interop.HavePython("websocket") },
		cmd:  python("wsclient_client.py"),
	},
	{
		name: "node-ws",
		have: func() error { return interop.HaveNode("ws") },
		cmd: func(url, scenario string) (string, []string, []string) {
			return "node", []string{"testdata/ws_client.js", url, scenario}, []string{"NODE_PATH=" + interop.NodePath}
		},
		echoesClose: true,
		rejectBody:  true,
	},
}

// runPeerClient runs pc for one scenario to completion and returns it.
func runPeerClient(t *testing.T, pc peerClient, s *goServer, scenario string) *interop.Peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	name, args, env := pc.cmd(s.url+"/"+scenario, scenario)
	p, err := interop.Start(ctx, name, args, env)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	wantNoErrorEvents(t, p)
	return p
}

// TestServerAgainstPeerClients runs each peer client against our server.
func TestServerAgainstPeerClients(t *testing.T) {
	for _, pc := range peerClients {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			interop.Need(t, pc.have())
			s := startGoServer(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			defer cancel()

			t.Run("echo", func(t *testing.T) {
				p := runPeerClient(t, pc, s, "echo")
				h := s.result(t, "echo")
				if h.err != nil {
					t.Fatal(h.err)
				}
				if h.subprotocol != "" || len(h.offered) != 0 {
					t.Errorf("no subprotocol: offered %q, selected %q", h.offered, h.subprotocol)
				}
				if e := wantEvent(ctx, t, p, "closed", "echo"); e.Code != 1000 {
					t.Errorf("peer saw close code %d, want 1000", e.Code)
				}
				wantReason(t, "our CloseReason", h.reason, 1000, "")
			})

			t.Run("ping", func(t *testing.T) {
				p := runPeerClient(t, pc, s, "ping")
				if h := s.result(t, "ping"); h.err != nil {
					t.Fatal(h.err)
				}
				wantPeerPong(t, wantEvent(ctx, t, p, "pong", "ping"))
			})

			t.Run("close-by-go", func(t *testing.T) {
				p := runPeerClient(t, pc, s, "close-by-go")
				h := s.result(t, "close-by-go")
				if h.err != nil {
					t.Fatal(h.err)
				}
				e := wantEvent(ctx, t, p, "closed", "close-by-go")
				if e.Code != goCloseCode || e.Reason != goCloseReason {
					t.Errorf("peer saw close %d %q, want %d %q", e.Code, e.Reason, goCloseCode, goCloseReason)
				}
				if pc.echoesClose {
					wantReason(t, "our CloseReason after the peer's echo", h.reason, goCloseCode, goCloseReason)
				} else {
					wantReason(t, "our CloseReason after the peer's 1000 reply", h.reason, 1000, "")
				}
			})

			t.Run("close-by-peer", func(t *testing.T) {
				p := runPeerClient(t, pc, s, "close-by-peer")
				h := s.result(t, "close-by-peer")
				if h.err != nil {
					t.Fatal(h.err)
				}
				wantReason(t, "Receive's error", h.closedErr.Reason, peerCloseCode, peerCloseReason)
				wantReason(t, "our CloseReason", h.reason, peerCloseCode, peerCloseReason)
				e := wantEvent(ctx, t, p, "closed", "close-by-peer")
				if e.Code != peerCloseCode || e.Reason != peerCloseReason {
					t.Errorf("peer saw our echo as %d %q, want %d %q", e.Code, e.Reason, peerCloseCode, peerCloseReason)
				}
			})

			t.Run("subprotocol", func(t *testing.T) {
				p := runPeerClient(t, pc, s, "subprotocol")
				h := s.result(t, "subprotocol")
				if h.err != nil {
					t.Fatal(h.err)
				}
				if !slices.Equal(h.offered, offered) {
					t.Errorf("client offered %q, want %q", h.offered, offered)
				}
				if h.subprotocol != subprotocol {
					t.Errorf("Subprotocol() = %q, want %q", h.subprotocol, subprotocol)
				}
				if got := wantEvent(ctx, t, p, "open", "subprotocol").Subprotocol; got != subprotocol {
					t.Errorf("peer sees subprotocol %q, want %q", got, subprotocol)
				}
			})

			t.Run("reject", func(t *testing.T) {
				p := runPeerClient(t, pc, s, "reject")
				if h := s.result(t, "reject"); h.err != nil {
					t.Fatal(h.err)
				}
				e := wantEvent(ctx, t, p, "rejected", "reject")
				if e.Status != goRejectStatus || e.Header != goRejectHeader {
					t.Errorf("peer saw status %d header %q, want %d %q", e.Status, e.Header, goRejectStatus, goRejectHeader)
				}
				switch {
				case !pc.rejectBody:
					t.Log(pc.name + " does not expose a rejection's body: only status and header checked")
				case e.Body == nil || *e.Body != goRejectBody:
					t.Errorf("peer saw body %v, want %q", strOrNil(e.Body), goRejectBody)
				}
			})
		})
	}
}

func strOrNil(s *string) string {
	if s == nil {
		return "<none>"
	}
	return strconv.Quote(*s)
}
