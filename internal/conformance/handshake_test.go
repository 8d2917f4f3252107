package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wsnursery/wsnursery/wsconn"
)

// handshakeCase is a raw server's answer to wsconn's upgrade request that
// Dial must refuse, without sending a single byte afterwards.
type handshakeCase struct {
	id, desc     string
	subprotocols []string // what the client offers
	compress     bool     // the client offers permessage-deflate
	// response returns the raw HTTP response for the client's key.
	response func(key string) string
	// rejected: Dial must return a *wsconn.ConnectionRejectedError with
	// this status and body; otherwise an error matching ErrHandshake.
	rejected *wsconn.ConnectionRejectedError
}

func (c handshakeCase) expected() string {
	if c.rejected != nil {
		return fmt.Sprintf("ConnectionRejectedError %d, no frame", c.rejected.StatusCode)
	}
	return "ErrHandshake, no frame"
}

// upgrade returns a 101 response with the given extra header lines; a
// header given as "Name:" (no value) is left out.
func upgrade(extra ...string) func(key string) string {
	return func(key string) string {
		h := map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": acceptKey(key)}
		order := []string{"Upgrade", "Connection", "Sec-WebSocket-Accept"}
		for _, e := range extra {
			name, value, _ := strings.Cut(e, ":")
			if _, ok := h[name]; !ok {
				order = append(order, name)
			}
			h[name] = strings.TrimSpace(value)
		}
		s := "HTTP/1.1 101 Switching Protocols\r\n"
		for _, name := range order {
			if h[name] != "" {
				s += name + ": " + h[name] + "\r\n"
			}
		}
		return s + "\r\n"
	}
}

func status(code int, text, body string) func(string) string {
	return func(string) string {
		return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", code, text, len(body), body)
	}
}

var handshakeCases = []handshakeCase{
	{id: "H.1", desc: "200 OK instead of 101", response: status(200, "OK", "not a websocket endpoint"),
		rejected: &wsconn.ConnectionRejectedError{StatusCode: 200, Body: []byte("not a websocket endpoint")}},
	{id: "H.2", desc: "403 Forbidden", response: status(403, "Forbidden", "go away"),
		rejected: &wsconn.ConnectionRejectedError{StatusCode: 403, Body: []byte("go away")}},
	{id: "H.3", desc: "wrong Sec-WebSocket-Accept", response: upgrade("Sec-WebSocket-Accept: " + acceptKey("some other key=="))},
	{id: "H.4", desc: "no Sec-WebSocket-Accept", response: upgrade("Sec-WebSocket-Accept:")},
	{id: "H.5", desc: "no Upgrade header", response: upgrade("Upgrade:")},
	{id: "H.6", desc: "Upgrade: h2c instead of websocket", response: upgrade("Upgrade: h2c")},
	{id: "H.7", desc: "no Connection header", response: upgrade("Connection:")},
	{id: "H.8", desc: "an extension the client never offered", response: upgrade("Sec-WebSocket-Extensions: permessage-deflate")},
	{id: "H.8b", desc: "permessage-deflate (with its no-context-takeover parameters) never offered",
		response: upgrade("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover")},
	{id: "H.8c", desc: "an unknown extension never offered", response: upgrade("Sec-WebSocket-Extensions: x-webkit-deflate-frame")},
	{id: "H.9", desc: "a subprotocol when the client offered none", response: upgrade("Sec-WebSocket-Protocol: chat")},
	{id: "H.10", desc: "a subprotocol other than those offered", subprotocols: []string{"chat", "v2.chat"},
		response: upgrade("Sec-WebSocket-Protocol: superchat")},
	// RFC 7692 §7.1: the answer to the client's one permessage-deflate
	// offer (both no_context_takeover parameters) may not add parameters
	// it did not offer or cannot honour.
	{id: "H.11", desc: "permessage-deflate answered with client_max_window_bits, not offered", compress: true,
		response: upgrade("Sec-WebSocket-Extensions: " + plainAnswer + "; client_max_window_bits=10")},
	{id: "H.12", desc: "permessage-deflate answered without client_no_context_takeover", compress: true,
		response: upgrade("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover")},
	{id: "H.13", desc: "permessage-deflate answered without server_no_context_takeover", compress: true,
		response: upgrade("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover")},
	{id: "H.14", desc: "permessage-deflate answered with server_max_window_bits=7 (out of range)", compress: true,
		response: upgrade("Sec-WebSocket-Extensions: " + plainAnswer + "; server_max_window_bits=7")},
	{id: "H.15", desc: "permessage-deflate answered twice", compress: true,
		response: upgrade("Sec-WebSocket-Extensions: " + plainAnswer + ", " + plainAnswer)},
	{id: "H.16", desc: "permessage-deflate answered with an unknown parameter", compress: true,
		response: upgrade("Sec-WebSocket-Extensions: " + plainAnswer + "; x_mystery")},
	{id: "H.17", desc: "permessage-deflate and an extension never offered", compress: true,
		response: upgrade("Sec-WebSocket-Extensions: " + plainAnswer + ", x-webkit-deflate-frame")},
	{id: "H.18", desc: "Permessage-Deflate in capitals (gorilla would not compress)", compress: true,
		response: upgrade("Sec-WebSocket-Extensions: Permessage-Deflate; server_no_context_takeover; client_no_context_takeover")},
}

func TestClientHandshake(t *testing.T) {
	for _, c := range handshakeCases {
		t.Run(c.id, func(t *testing.T) {
			t.Parallel()
			defer record(t, c.id, c.desc, "client", c.expected())
			runHandshakeCase(t, c)
		})
	}
}

func runHandshakeCase(t *testing.T, c handshakeCase) {
	ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialed := make(chan error, 1)
	go func() {
		opts := &wsconn.DialOptions{Subprotocols: c.subprotocols}
		if c.compress {
			opts.Compression = wsconn.CompressionNoContextTakeover
		}
		conn, err := wsconn.Dial(ctx, "ws://"+ln.Addr().String()+"/", opts)
		if err == nil {
			conn.Close(ctx, wsconn.StatusNormalClosure, "")
			err = errors.New("Dial succeeded")
		}
		dialed <- err
	}()
	conn, br := acceptHandshake(t, ctx, ln)
	defer conn.Close()
	if _, err := io.WriteString(conn, c.response(conn.key)); err != nil {
		t.Fatal(err)
	}

	var err2 error
	select {
	case err2 = <-dialed:
	case <-ctx.Done():
		t.Fatalf("Dial did not return: %v", ctx.Err())
	}
	if c.rejected != nil {
		var re *wsconn.ConnectionRejectedError
		switch {
		case !errors.As(err2, &re):
			t.Errorf("Dial returned %v, want a *wsconn.ConnectionRejectedError", err2)
		case re.StatusCode != c.rejected.StatusCode || !bytes.Equal(re.Body, c.rejected.Body):
			t.Errorf("Dial rejected with %d %q, want %d %q", re.StatusCode, re.Body, c.rejected.StatusCode, c.rejected.Body)
		}
	}
	if !errors.Is(err2, wsconn.ErrHandshake) {
		t.Errorf("Dial returned %v, want an error matching wsconn.ErrHandshake", err2)
	}

	// The client must close the connection without sending anything.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(br)
	if len(rest) > 0 {
		t.Errorf("the client sent %d bytes after a failed handshake: %q", len(rest), rest)
	}
	if err != nil {
		t.Errorf("want EOF after a failed handshake, got %v", err)
	}
}

// TestClientHandshakeAccepted is the control for the cases above: a valid
// response with an offered subprotocol opens the connection.
func TestClientHandshakeAccepted(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type dialResult struct {
		sub, closeErr string
		err           error
	}
	dialed := make(chan dialResult, 1)
	go func() {
		conn, err := wsconn.Dial(ctx, "ws://"+ln.Addr().String()+"/", &wsconn.DialOptions{Subprotocols: []string{"chat", "v2.chat"}})
		if err != nil {
			dialed <- dialResult{err: err}
			return
		}
		r := dialResult{sub: conn.Subprotocol()}
		if err := conn.Close(ctx, wsconn.StatusGoingAway, "bye"); err != nil {
			r.closeErr = err.Error()
		}
		dialed <- r
	}()
	conn, br := acceptHandshake(t, ctx, ln)
	io.WriteString(conn, upgrade("Sec-WebSocket-Protocol: v2.chat")(conn.key))
	p := newPeer(t, ctx, conn, br, false)
	p.expectClose(closeWant{code: 1001, reason: str("bye")})
	p.write(closeFrame(1001, "bye"))
	p.finish()
	select {
	case r := <-dialed:
		if r.err != nil || r.sub != "v2.chat" || r.closeErr != "" {
			t.Errorf("Dial: err %v, subprotocol %q, Close error %q; want nil, \"v2.chat\", none", r.err, r.sub, r.closeErr)
		}
	case <-ctx.Done():
		t.Fatal("Dial did not return")
	}
}
