package wsconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
)

// Request is an opening handshake waiting for its handler's decision.
type Request struct {
	Path         string      // request target: path and query as sent
	Header       http.Header // request headers
	Subprotocols []string    // offered by the client, in its order
	LocalAddr    net.Addr
	RemoteAddr   net.Addr
	HTTPRequest  *http.Request

	w      http.ResponseWriter
	srv    *Server
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	decided bool
	conn    *Conn
}

// AcceptOptions configures Accept. A nil *AcceptOptions means defaults.
type AcceptOptions struct {
	// Subprotocol to select; it must be one the client offered.
	Subprotocol string
	// Header is added to the 101 response.
	Header http.Header
	// OnPing and OnPong: see DialOptions.
	OnPing, OnPong func(payload []byte)
	// Compression, CompressionLevel and CompressionThreshold: see
	// DialOptions; a zero field takes the ServerOptions field. With
	// compression on, the server accepts the client's first
	// permessage-deflate offer it can honour (Conn.Compression says
	// whether there was one).
	Compression          CompressionMode
	CompressionLevel     int
	CompressionThreshold int
}

var errDecided = errors.New("handshake already accepted or rejected")

// Accept completes the handshake and returns the connection, which lives
// until the handler returns.
func (r *Request) Accept(ctx context.Context, opts *AcceptOptions) (*Conn, error) {
	if opts == nil {
		opts = &AcceptOptions{}
	}
	if opts.Subprotocol != "" && !slices.Contains(r.Subprotocols, opts.Subprotocol) {
		return nil, fmt.Errorf("failed to accept: subprotocol %q was not offered by the client", opts.Subprotocol)
	}
	comp, err := r.srv.compression(opts)
	if err != nil {
		return nil, fmt.Errorf("failed to accept: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed to accept: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.decided {
		return nil, fmt.Errorf("failed to accept: %w", errDecided)
	}
	r.decided = true
	header := opts.Header.Clone()
	if opts.Subprotocol != "" {
		if header == nil {
			header = http.Header{}
		}
		header.Set("Sec-WebSocket-Protocol", opts.Subprotocol)
	}
	upgrader, hr := &r.srv.upgrader, r.HTTPRequest
	if comp.mode != CompressionDisabled && negotiateDeflate(hr.Header.Values("Sec-WebSocket-Extensions")) {
		// gorilla accepts any offer, ignoring its parameters: it sees only
		// the one we accepted.
		u := *upgrader
		u.EnableCompression = true
		upgrader = &u
		hr = hr.WithContext(hr.Context())
		hr.Header = hr.Header.Clone()
		hr.Header.Set("Sec-WebSocket-Extensions", deflateName)
	} else {
		comp.mode = CompressionDisabled
	}
	gw := &guardedWriter{ResponseWriter: r.w, maxMessage: r.srv.cfg.maxMessageSize, deflate: comp.mode != CompressionDisabled}
	ws, err := upgrader.Upgrade(gw, hr, header)
	if err != nil {
		return nil, fmt.Errorf("failed to accept: %w", err)
	}
	cfg := r.srv.cfg
	cfg.onPing, cfg.onPong = opts.OnPing, opts.OnPong
	cfg.compress = comp
	c := newConn(ws, gw.guard, false, cfg, r.Path, opts.Subprotocol, header)
	r.conn = c
	c.cancelOnClose(r.cancel)

	s := r.srv
	s.mu.Lock()
	stopping := s.stopping
	if !stopping {
		s.conns[c] = struct{}{}
	}
	s.mu.Unlock()
	if stopping {
		c.Close(ctx, StatusGoingAway, "server shutting down")
		return nil, fmt.Errorf("failed to accept: %w", ErrServerClosed)
	}
	if c.cfg.log != nil {
		c.trace("websocket handshake accepted", "status", http.StatusSwitchingProtocols, "path", r.Path, "subprotocol", opts.Subprotocol,
			"header", traceHeader(acceptHeader(hr.Header.Get("Sec-WebSocket-Key"), header, comp.mode != CompressionDisabled)))
	}
	return c, nil
}

// Reject answers the handshake with an HTTP status (not 101), headers and
// body.
func (r *Request) Reject(ctx context.Context, status int, header http.Header, body []byte) error {
	if status < 200 || status > 999 {
		return fmt.Errorf("failed to reject: invalid HTTP status %d", status)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("failed to reject: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.decided {
		return fmt.Errorf("failed to reject: %w", errDecided)
	}
	r.decided = true
	h := r.w.Header()
	for k, vs := range header {
		h[k] = slices.Clone(vs)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if log := r.srv.cfg.log; log != nil {
		log.Debug("websocket handshake rejected", "status", status, "path", r.Path, "header", traceHeader(h))
	}
	r.w.WriteHeader(status)
	if _, err := r.w.Write(body); err != nil {
		return fmt.Errorf("failed to reject: %w", err)
	}
	return nil
}
