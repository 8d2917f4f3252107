package interop_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/internal/interop"
	"github.com/wsnursery/wsnursery/wsconn"
)

// The values the peers use (testdata/peerlib.py and peerlib.js).
const (
	subprotocol       = "wsnursery.v2"
	peerCloseCode     = 4002
	peerCloseReason   = "peer-bye ✓"
	peerRejectStatus  = http.StatusForbidden
	rejectHeader      = "X-Wsnursery-Reason"
	peerRejectHeader  = "peer-says-no"
	peerRejectBody    = "rejected by peer"
	peerPingHex       = "706565722d70696e6700ff" // "peer-ping\x00\xff"
	scenarioTimeout   = 30 * time.Second
	disconnectTimeout = 5 * time.Second
)

var offered = []string{"chat.unknown", subprotocol}

// The values our side uses.
const (
	goCloseCode    = 4001
	goCloseReason  = "go-bye ✓"
	goRejectStatus = http.StatusForbidden
	goRejectHeader = "go-says-no"
	goRejectBody   = "rejected by wsnursery"
	maxMessageSize = 1 << 20
	pingTimeout    = 10 * time.Second
	pingedText     = "pinged" // what a peer sends once its own ping got its pong
)

var goPing = []byte("go-ping\x00\xfe")

// echoAll sends a text and a binary message of every size in
// interop.Sizes, one at a time, and checks that each comes back whole and
// with its type; then the same again streamed (Writer in 1000-byte writes,
// so fragmented and cut inside characters; the echo read with Reader).
func echoAll(ctx context.Context, c *wsconn.Conn) error {
	if err := echoWhole(ctx, c); err != nil {
		return err
	}
	return echoStreamed(ctx, c)
}

func echoStreamed(ctx context.Context, c *wsconn.Conn) error {
	for _, typ := range []wsconn.MessageType{wsconn.Text, wsconn.Binary} {
		for i, n := range interop.Sizes {
			want := interop.Payload(typ, n, 100+i)
			w, err := c.Writer(ctx, typ)
			if err != nil {
				return fmt.Errorf("open writer for %v of %d bytes: %w", typ, n, err)
			}
			for rest := want; len(rest) > 0; rest = rest[min(1000, len(rest)):] {
				if _, err := w.Write(rest[:min(1000, len(rest))]); err != nil {
					return fmt.Errorf("stream %v of %d bytes: %w", typ, n, err)
				}
			}
			if err := w.Close(); err != nil {
				return fmt.Errorf("stream %v of %d bytes: %w", typ, n, err)
			}
			got, r, err := c.Reader(ctx)
			if err != nil {
				return fmt.Errorf("read echo of streamed %v of %d bytes: %w", typ, n, err)
			}
			data, err := io.ReadAll(r)
			if err != nil {
				return fmt.Errorf("read echo of streamed %v of %d bytes: %w", typ, n, err)
			}
			if got != typ || !bytes.Equal(data, want) {
				return fmt.Errorf("echo of streamed %v of %d bytes came back as %v of %d bytes (equal data: %v)",
					typ, n, got, len(data), bytes.Equal(data, want))
			}
		}
	}
	return nil
}

func echoWhole(ctx context.Context, c *wsconn.Conn) error {
	seq := 0
	for _, typ := range []wsconn.MessageType{wsconn.Text, wsconn.Binary} {
		for _, n := range interop.Sizes {
			want := interop.Payload(typ, n, seq)
			seq++
			if err := c.Send(ctx, wsconn.Message{Type: typ, Data: want}); err != nil {
				return fmt.Errorf("send %v of %d bytes: %w", typ, n, err)
			}
			m, err := c.Receive(ctx)
			if err != nil {
				return fmt.Errorf("receive echo of %v of %d bytes: %w", typ, n, err)
			}
			if m.Type != typ || !bytes.Equal(m.Data, want) {
				return fmt.Errorf("echo of %v of %d bytes came back as %v of %d bytes (equal data: %v)",
					typ, n, m.Type, len(m.Data), bytes.Equal(m.Data, want))
			}
		}
	}
	return nil
}

// closedError extracts the *wsconn.ConnectionClosedError from err.
func closedError(err error) (*wsconn.ConnectionClosedError, error) {
	var ce *wsconn.ConnectionClosedError
	if !errors.As(err, &ce) {
		return nil, fmt.Errorf("want a *wsconn.ConnectionClosedError, got %T: %v", err, err)
	}
	return ce, nil
}

// wantReason checks a close reason.
func wantReason(t *testing.T, what string, got wsconn.CloseReason, code int, reason string) {
	t.Helper()
	if int(got.Code) != code || got.Reason != reason {
		t.Errorf("%s: got %v, want %d %q", what, got, code, reason)
	}
}

// is matches a peer's event by kind and scenario.
func is(event, scenario string) func(interop.Event) bool {
	return func(e interop.Event) bool { return e.Event == event && e.Scenario == scenario }
}

// wantEvent waits for the peer's event and checks there was no error event
// for the scenario before it.
func wantEvent(ctx context.Context, t *testing.T, p *interop.Peer, event, scenario string) interop.Event {
	t.Helper()
	e, err := p.Next(ctx, func(e interop.Event) bool {
		return e.Scenario == scenario && (e.Event == event || e.Event == "error")
	})
	if err != nil {
		t.Fatalf("peer did not report %q for %s: %v", event, scenario, err)
	}
	if e.Event == "error" {
		t.Fatalf("peer reported an error in %s: %s", scenario, e.Detail)
	}
	return e
}

// wantNoErrorEvents fails t if the peer reported errors or unparsable lines.
func wantNoErrorEvents(t *testing.T, p *interop.Peer) {
	t.Helper()
	for _, e := range p.Unconsumed() {
		if e.Event == "error" || e.Event == "unparsed" {
			t.Errorf("peer reported %s: %s %s", e.Event, e.Scenario, e.Detail)
		}
	}
}

func wantPeerPong(t *testing.T, e interop.Event) {
	t.Helper()
	if e.Payload != peerPingHex {
		got, _ := hex.DecodeString(e.Payload)
		t.Errorf("peer's ping came back with payload %q, want %q", got, "peer-ping\x00\xff")
	}
}

func scenarioOf(path string) string {
	path, _, _ = strings.Cut(path, "?")
	return strings.Trim(path, "/")
}
