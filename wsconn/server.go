package wsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Handler handles one opening handshake: it calls r.Accept or r.Reject and,
// once accepted, uses the connection until it returns. ctx is cancelled,
// with the *ConnectionClosedError as its cause, when the connection closes,
// and when the server shuts down.
//
// Once the handler returns, its connection is closed by the scoping rule
// that Conn.Scope states (1000 after nil; 1011 after an error or a panic,
// which is logged; 1001 when the server shuts down; nothing new when the
// connection has already closed, so that returning Receive's
// *ConnectionClosedError, or ctx's cancellation, is how a handler loop
// ends; so is returning Accept's ErrServerClosed, or ctx's end, once the
// server shuts down: neither is logged as a failure). A panic is recovered
// and reported as a *HandlerPanicError. A handler that returns without
// deciding rejects the request (403; 500 on error; 503 during shutdown).
type Handler func(ctx context.Context, r *Request) error

// ServerOptions configures a Server. A nil *ServerOptions means defaults.
type ServerOptions struct {
	// ConnectTimeout bounds the arrival of the handshake request when the
	// server runs its own listener (Serve): slow clients are dropped before
	// the handler runs. Default 60 s.
	ConnectTimeout time.Duration
	// DisconnectTimeout bounds each closing handshake. Default 60 s.
	DisconnectTimeout time.Duration
	// MaxMessageSize: see DialOptions. Default 1 MiB.
	MaxMessageSize int64
	// MessageQueueSize: see DialOptions. Default 1.
	MessageQueueSize int
	// CheckOrigin decides whether a browser's cross-origin request may
	// proceed. Nil allows requests without an Origin header and those whose
	// Origin host equals the Host header (defence against cross-site
	// WebSocket hijacking).
	CheckOrigin func(r *http.Request) bool
	// FailFast stops the server when a handler fails; Serve returns the
	// error. By default a failing handler only closes its connection (1011).
	FailFast bool
	// Logger receives handler errors and panics (Error level), refused
	// handshakes (Warn: not a WebSocket handshake, a forbidden origin,
	// MaxConnections reached; Info: during shutdown) and, when its Debug
	// level is enabled, the trace of every connection (see DialOptions).
	// Nil means slog.Default() for all but the trace, which is opt-in.
	Logger *slog.Logger
	// TracePayloads: see DialOptions.
	TracePayloads bool
	// MaxConnections bounds the handlers running at once, and so the open
	// connections: a handshake beyond it is answered 503 Service
	// Unavailable with Retry-After, and the connections already open are
	// unaffected. Zero means no limit.
	MaxConnections int
	// MaxHeaderBytes bounds the handshake request's header when the server
	// runs its own listener (Serve), as http.Server.MaxHeaderBytes does.
	// Default 64 KiB (http.Server's own default is 1 MiB).
	MaxHeaderBytes int
	// OnListen, if set, is called by Serve (and so ListenAndServe) with the
	// listener's address before it starts accepting: how a caller learns
	// the port that ":0" bound. It must not block.
	OnListen func(addr net.Addr)
	// Compression, CompressionLevel and CompressionThreshold are the
	// defaults of the AcceptOptions fields of the same names.
	Compression          CompressionMode
	CompressionLevel     int
	CompressionThreshold int
}

// Server runs a Handler for each WebSocket handshake it receives, through
// Serve or, mounted in an http.Server, ServeHTTP.
type Server struct {
	handler Handler
	opts    ServerOptions
	cfg     connConfig

	upgrader websocket.Upgrader

	ctx    context.Context // parent of every handler's ctx; cancelled by Shutdown
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	conns    map[*Conn]struct{}
	running  int // handlers, for MaxConnections
	stopping bool
	failErr  error
	stopped  chan struct{} // closed when shutdown begins
	active   sync.WaitGroup
}

// ErrServerClosed is the cause of handler contexts cancelled by Shutdown.
var ErrServerClosed = errors.New("websocket server shut down")

// NewServer returns a server that runs h for each handshake.
func NewServer(h Handler, opts *ServerOptions) *Server {
	s := &Server{handler: h, conns: map[*Conn]struct{}{}, stopped: make(chan struct{})}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.ConnectTimeout <= 0 {
		s.opts.ConnectTimeout = DefaultConnectTimeout
	}
	if s.opts.MaxHeaderBytes <= 0 {
		s.opts.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	s.cfg = newConnConfig(s.opts.DisconnectTimeout, s.opts.MaxMessageSize, s.opts.MessageQueueSize, s.opts.Logger)
	s.cfg.tracePayloads = s.opts.TracePayloads
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: s.opts.ConnectTimeout,
		// Zero sizes and no pool: gorilla reuses the hijacked connection's
		// buffers (re-pointing its reader at the frame guard).
		CheckOrigin: func(*http.Request) bool { return true }, // checked before the handler runs
	}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	return s
}

// compression merges an Accept's compression options with the server's.
func (s *Server) compression(opts *AcceptOptions) (compression, error) {
	mode, level, threshold := s.opts.Compression, s.opts.CompressionLevel, s.opts.CompressionThreshold
	if opts.Compression != CompressionDisabled {
		mode = opts.Compression
	}
	if opts.CompressionLevel != 0 {
		level = opts.CompressionLevel
	}
	if opts.CompressionThreshold != 0 {
		threshold = opts.CompressionThreshold
	}
	return newCompression(mode, level, threshold)
}

// Serve accepts connections on ln until ctx is cancelled, Shutdown is
// called, or (with FailFast) a handler fails. It then shuts down as
// Shutdown does and returns: ctx's error, nil after Shutdown, or the
// handler's error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opts.ConnectTimeout,
		IdleTimeout:       s.opts.ConnectTimeout, // also after a refused handshake
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug),
	}
	if s.opts.OnListen != nil {
		s.opts.OnListen(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
		errc <- err
		err = fmt.Errorf("failed to serve: %w", err)
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.stopped:
	}
	// Mark the server as stopping before closing the connections still in
	// the handshake, so that their handlers see ErrServerClosed as the
	// cause, not the request's end.
	s.mu.Lock()
	s.stopLocked()
	s.mu.Unlock()
	hs.Close() // the listener and connections still in the handshake
	<-errc
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.disconnectTimeout+time.Second)
	defer cancel()
	s.Shutdown(sctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	return err
}

// ListenAndServe listens on the TCP address addr and serves h on it; see
// Server.Serve.
func ListenAndServe(ctx context.Context, addr string, h Handler, opts *ServerOptions) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("failed to listen: %w", err)
	}
	return NewServer(h, opts).Serve(ctx, ln)
}

// Shutdown stops the server: Serve stops accepting, every open connection
// is closed with 1001 (going away), each bounded by ctx and the disconnect
// timeout, and handler contexts are cancelled. It returns once every
// handler has returned, with ctx's error if ctx ended first (connections
// are then dropped).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopLocked()
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.Close(ctx, StatusGoingAway, "server shutting down") })
	}
	wg.Wait()
	s.cancel(ErrServerClosed)
	s.active.Wait()
	return ctx.Err()
}

// stopLocked marks the server as stopping, once; s.mu must be held.
func (s *Server) stopLocked() {
	if !s.stopping {
		s.stopping = true
		close(s.stopped)
	}
}

// ServeHTTP runs the handler for one handshake request. A request that is
// not a WebSocket handshake gets 400, a forbidden origin 403, and a request
// during shutdown or beyond MaxConnections 503; each refusal is logged.
func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		s.refuse(w, hr, http.StatusServiceUnavailable, "server shutting down", slog.LevelInfo)
		return
	}
	s.active.Add(1)
	s.mu.Unlock()
	defer s.active.Done()

	if s.cfg.log != nil {
		s.cfg.log.Debug("websocket handshake received", "method", hr.Method, "path", hr.URL.RequestURI(), "remote", hr.RemoteAddr, "header", traceHeader(hr.Header))
	}
	if msg := checkHandshake(hr); msg != "" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		s.refuse(w, hr, http.StatusBadRequest, msg, slog.LevelWarn)
		return
	}
	checkOrigin := s.opts.CheckOrigin
	if checkOrigin == nil {
		checkOrigin = sameOrigin
	}
	if !checkOrigin(hr) {
		s.refuse(w, hr, http.StatusForbidden, "origin not allowed", slog.LevelWarn)
		return
	}
	s.mu.Lock()
	if s.opts.MaxConnections > 0 && s.running >= s.opts.MaxConnections {
		s.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		s.refuse(w, hr, http.StatusServiceUnavailable, "too many connections", slog.LevelWarn)
		return
	}
	s.running++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
	}()

	// parent ends with the request or the server; the handler's ctx also
	// ends when its connection closes.
	parent, cancelParent := context.WithCancelCause(context.WithoutCancel(hr.Context()))
	defer cancelParent(nil)
	// The request ends when the client goes or when Serve closes its
	// http.Server to shut down: then the cause is the server's closing.
	stopReq := context.AfterFunc(hr.Context(), func() {
		cause := context.Cause(hr.Context())
		s.mu.Lock()
		if s.stopping {
			cause = ErrServerClosed
		}
		s.mu.Unlock()
		cancelParent(cause)
	})
	defer stopReq()
	stop := context.AfterFunc(s.ctx, func() { cancelParent(context.Cause(s.ctx)) })
	defer stop()
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	r := &Request{
		Path:         hr.URL.RequestURI(),
		Header:       hr.Header,
		Subprotocols: websocket.Subprotocols(hr),
		LocalAddr:    localAddr(hr),
		RemoteAddr:   stringAddr{"tcp", hr.RemoteAddr},
		HTTPRequest:  hr,
		w:            w,
		srv:          s,
		cancel:       cancel,
	}
	err, panicked := s.run(ctx, r)

	r.mu.Lock()
	c, decided := r.conn, r.decided
	r.mu.Unlock()
	// Returning the server's shutdown (Accept's ErrServerClosed, or ctx's
	// end once the server or request is gone) is not a failure either.
	shutdown := !panicked && (errors.Is(err, ErrServerClosed) || parent.Err() != nil && endedByContext(err))
	failed := err != nil && !shutdown
	switch {
	case c != nil:
		// The scoping rule, as for Open: see endScope.
		_, _, failed = c.endScope(parent, ctx, err, panicked)
		failed = failed && !shutdown
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	case !decided:
		status := http.StatusForbidden
		switch {
		case shutdown:
			status = http.StatusServiceUnavailable
		case err != nil:
			status = http.StatusInternalServerError
		}
		http.Error(w, http.StatusText(status), status)
	}
	if failed {
		msg := "websocket handler failed"
		if panicked {
			msg = "websocket handler panicked"
		}
		s.logger().Error(msg, "path", r.Path, "remote", hr.RemoteAddr, "err", err)
		if s.opts.FailFast {
			s.mu.Lock()
			if s.failErr == nil {
				s.failErr = err
			}
			s.stopLocked()
			s.mu.Unlock()
		}
	}
}

// retryAfter is the Retry-After, in seconds, of a handshake refused for
// MaxConnections.
const retryAfter = 5

// DefaultMaxHeaderBytes is the default of ServerOptions.MaxHeaderBytes.
const DefaultMaxHeaderBytes = 64 << 10

// logger is where the server logs: the Logger, or slog.Default() (looked
// up each time, as net/http does with the log package's default).
func (s *Server) logger() *slog.Logger {
	if s.opts.Logger != nil {
		return s.opts.Logger
	}
	return slog.Default()
}

// refuse answers a handshake the server will not run a handler for, and
// logs why at level.
func (s *Server) refuse(w http.ResponseWriter, hr *http.Request, status int, reason string, level slog.Level) {
	s.logger().Log(hr.Context(), level, "websocket handshake refused", "status", status, "reason", reason, "path", hr.URL.RequestURI(), "remote", hr.RemoteAddr)
	http.Error(w, reason, status)
}

// HandlerPanicError reports a handler that panicked.
type HandlerPanicError struct {
	Value any
	Stack []byte
}

func (e *HandlerPanicError) Error() string {
	return fmt.Sprintf("websocket handler panicked: %v\n%s", e.Value, e.Stack)
}

func (s *Server) run(ctx context.Context, r *Request) (err error, panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			err, panicked = &HandlerPanicError{Value: v, Stack: debug.Stack()}, true
		}
	}()
	return s.handler(ctx, r), false
}

// checkHandshake returns what is wrong with a handshake request, or "".
func checkHandshake(r *http.Request) string {
	switch {
	case r.Method != http.MethodGet:
		return "websocket handshake must use GET"
	case !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket"):
		return "expected a websocket upgrade request"
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return "unsupported websocket version (want 13)"
	case r.Header.Get("Sec-WebSocket-Key") == "":
		return "missing Sec-WebSocket-Key"
	}
	return ""
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// sameOrigin allows requests without Origin and those whose Origin's host
// is the request's Host.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

func localAddr(r *http.Request) net.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a
	}
	return stringAddr{"tcp", ""}
}

type stringAddr struct{ network, addr string }

func (a stringAddr) Network() string { return a.network }
func (a stringAddr) String() string  { return a.addr }
