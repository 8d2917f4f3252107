package wsconn

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Defaults for the options structs.
const (
	DefaultConnectTimeout    = 60 * time.Second
	DefaultDisconnectTimeout = 60 * time.Second
	DefaultMaxMessageSize    = 1 << 20
	DefaultMessageQueueSize  = 1
)

// Buffer sizes. A client reads through a 4 KiB buffer of its own and
// writes through 64 KiB buffers lent from a pool only while a message is
// written, so that a 64 KiB message is one frame and an idle connection
// holds none. A server reuses the 4 KiB read and write buffers of the
// hijacked HTTP connection: gorilla then writes every message as one frame,
// with no allocation.
const (
	readBufferSize        = 4096
	clientWriteBufferSize = 64 << 10
)

// finWait bounds how long a client waits for the server to close TCP after
// the closing handshake (RFC 6455 §7.1.1 asks the server to close first).
const finWait = time.Second

// connConfig is what a connection needs from DialOptions or ServerOptions.
type connConfig struct {
	disconnectTimeout time.Duration
	maxMessageSize    int64 // < 0: unlimited
	queueSize         int
	log               *slog.Logger // nil unless Debug tracing is on
	tracePayloads     bool
	onPing, onPong    func(payload []byte)
	compress          compression // what the handshake negotiated
}

func newConnConfig(disconnect time.Duration, maxSize int64, queue int, log *slog.Logger) connConfig {
	cfg := connConfig{disconnectTimeout: disconnect, maxMessageSize: maxSize, queueSize: queue, log: log}
	if cfg.disconnectTimeout <= 0 {
		cfg.disconnectTimeout = DefaultDisconnectTimeout
	}
	if cfg.maxMessageSize == 0 {
		cfg.maxMessageSize = DefaultMaxMessageSize
	}
	switch {
	case cfg.queueSize == 0:
		cfg.queueSize = DefaultMessageQueueSize
	case cfg.queueSize < 0:
		cfg.queueSize = 0
	}
	if cfg.log != nil && !cfg.log.Enabled(context.Background(), slog.LevelDebug) {
		cfg.log = nil
	}
	return cfg
}

// Conn is a WebSocket connection. All methods are safe for concurrent use.
//
// A background goroutine reads whole messages into a bounded queue that
// Receive drains, and answers pings and Close frames as they arrive.
type Conn struct {
	ws      *websocket.Conn
	netConn net.Conn    // what gorilla reads and writes: TLS or the guard
	guard   *frameGuard // the socket under gorilla, checked and interruptible
	client  bool
	cfg     connConfig

	path        string
	subprotocol string
	respHeader  http.Header

	queue    chan inbound  // filled by the reader, closed when it exits
	writeSem chan struct{} // serialises data messages; a ctx can give up waiting
	watch    writeWatch    // interrupts a data message whose ctx ends
	direct   *direct       // nil: every message goes through the queue

	mu      sync.Mutex
	state   connState // see close.go; changed only by transition
	reason  CloseReason
	discard bool           // queued messages are discarded (local Close or abort)
	pings   []*pendingPing // in the order sent
	onDone  []func()

	// Closed by transition, for waiters to select on.
	closing   chan struct{} // the state left stateOpen
	dropQueue chan struct{} // discard became true
	done      chan struct{} // the state became stateClosed

	peerDead    atomic.Bool               // a ping timed out and no pong came since
	streaming   atomic.Pointer[msgReader] // the last Reader, until read to the end
	streamReads atomic.Bool               // set by the first Reader: stream long messages
	noReadAhead atomic.Bool               // set by NetConn: stream every message
}

func newConn(ws *websocket.Conn, guard *frameGuard, client bool, cfg connConfig, path, subprotocol string, header http.Header) *Conn {
	c := &Conn{
		ws:          ws,
		netConn:     ws.NetConn(),
		guard:       guard,
		client:      client,
		cfg:         cfg,
		path:        path,
		subprotocol: subprotocol,
		respHeader:  header,
		queue:       make(chan inbound, cfg.queueSize),
		writeSem:    make(chan struct{}, 1),
		closing:     make(chan struct{}),
		dropQueue:   make(chan struct{}),
		done:        make(chan struct{}),
	}
	ws.SetCloseHandler(c.handleClose)
	ws.SetPingHandler(c.handlePing)
	ws.SetPongHandler(c.handlePong)
	if cfg.compress.mode != CompressionDisabled {
		ws.SetCompressionLevel(cfg.compress.level) // checked by newCompression
	}
	if c.cfg.log != nil {
		c.cfg.log = c.cfg.log.With("side", c.side(), "remote", ws.RemoteAddr().String())
	}
	c.direct = newDirect(c)
	go c.readLoop()
	return c
}

func (c *Conn) side() string {
	if c.client {
		return "client"
	}
	return "server"
}

// Subprotocol returns the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string { return c.subprotocol }

// Compression returns the compression the opening handshake negotiated:
// CompressionDisabled unless both sides asked for it.
func (c *Conn) Compression() CompressionMode { return c.cfg.compress.mode }

// Path returns the request target of the opening handshake: path and query,
// percent-encoding kept as sent.
func (c *Conn) Path() string { return c.path }

// IsClient reports whether this side opened the connection.
func (c *Conn) IsClient() bool { return c.client }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// ResponseHeader returns the headers of the handshake response: those the
// server sent for a client connection, those given to Accept for a server one.
func (c *Conn) ResponseHeader() http.Header { return c.respHeader }

// Done returns a channel that is closed once the connection is closed: the
// closing handshake finished or the connection was lost, the TCP connection
// is closed and the reader goroutine has stopped. CloseReason is final then.
func (c *Conn) Done() <-chan struct{} { return c.done }

func (c *Conn) isDone() bool { return isClosed(c.done) }

// isClosing reports whether closing has started.
func (c *Conn) isClosing() bool { return isClosed(c.closing) }

// isClosed reports whether ch, which is only ever closed, is.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// CloseReason returns why the connection is closing or closed, and false
// while it is open. It is set the moment closing starts and updated once
// with the code the peer echoed.
func (c *Conn) CloseReason() (CloseReason, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason, c.state != stateOpen
}

// closedErr returns the error for operations on a closing connection.
func (c *Conn) closedErr() error {
	r, _ := c.CloseReason()
	return &ConnectionClosedError{Reason: r}
}

// afterDone arranges for f to run (once, on the reader goroutine or at
// once) after the connection is closed. f must not block.
func (c *Conn) afterDone(f func()) {
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		f()
		return
	default:
	}
	c.onDone = append(c.onDone, f)
	c.mu.Unlock()
}

// controlDeadline bounds a control write made on behalf of ctx: ctx's
// deadline or the disconnect timeout, whichever comes first.
func (c *Conn) controlDeadline(ctx context.Context) time.Time {
	d := time.Now().Add(c.cfg.disconnectTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	return d
}
