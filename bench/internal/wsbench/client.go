// Package wsbench measures wsnursery's wsconn against raw gorilla/websocket,
// coder/websocket, lxzan/gws and raw TCP: the same workloads through one
// small client interface, servers for every library in one process, and
// the helper processes that keep client and server apart.
package wsbench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"
	"github.com/lxzan/gws"
	"github.com/wsnursery/wsnursery/wsconn"
)

// ErrUnsupported is returned by Client.Ping for raw TCP, which has none.
var ErrUnsupported = errors.New("not supported by this library")

// Client is one connection, as a benchmark sees it. Send and Recv may be
// called concurrently with each other (one goroutine each); Ping needs a
// client dialled with Reader set, for libraries that only see a pong while
// something reads.
type Client interface {
	// Send writes p as one binary message.
	Send(ctx context.Context, p []byte) error
	// Recv returns the next message; the slice is valid until the next Recv.
	Recv(ctx context.Context) ([]byte, error)
	// Ping sends a ping and waits for its pong.
	Ping(ctx context.Context) error
	// Close drops the connection at once (no closing handshake) and
	// releases every goroutine the client started.
	Close() error
}

// DialConfig says how to dial a Client.
type DialConfig struct {
	// Addr is the library's server, host:port.
	Addr string
	// Path selects the server's behaviour: "/echo", "/sink" or "/source".
	Path string
	// Reader makes the libraries that read in the caller's goroutine
	// (gorilla, coder, TCP) run a reader goroutine instead, which is what an
	// application that pings or idles must do. Recv then takes messages from
	// that goroutine.
	Reader bool
}

// Dial connects a client of library lib.
func Dial(ctx context.Context, lib Lib, cfg DialConfig) (Client, error) {
	switch lib.Kind {
	case KindGorilla:
		cfg.Reader = cfg.Reader || lib.Pump || lib.ClientPump
		return dialGorilla(ctx, lib, cfg)
	case KindCoder:
		return dialCoder(ctx, cfg)
	case KindGWS:
		return dialGWS(ctx, cfg)
	case KindWsconn:
		return dialWsconn(ctx, lib, cfg)
	case KindTCP:
		return dialTCP(ctx, cfg)
	}
	return nil, fmt.Errorf("failed to dial: unknown library %q", lib.Name)
}

// pumped is what a reader goroutine hands to Recv.
type pumped struct {
	p   []byte
	err error
}

// pump runs read in a loop on its own goroutine, handing each message to
// Recv over a channel of capacity 1 (the same hand-off wsconn makes).
type pump struct {
	ch   chan pumped
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func startPump(read func() ([]byte, error)) *pump {
	p := &pump{ch: make(chan pumped, 1), stop: make(chan struct{})}
	p.wg.Go(func() {
		for {
			b, err := read()
			select {
			case p.ch <- pumped{b, err}:
			case <-p.stop:
				return
			}
			if err != nil {
				return
			}
		}
	})
	return p
}

func (p *pump) recv(ctx context.Context) ([]byte, error) {
	select {
	case m := <-p.ch:
		return m.p, m.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close must be called after the connection is closed, so read fails.
func (p *pump) close() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

// pongWaiter turns pong callbacks into a wait for the pong of one ping.
type pongWaiter struct {
	ch chan struct{}
}

func newPongWaiter() *pongWaiter { return &pongWaiter{ch: make(chan struct{}, 1)} }

func (w *pongWaiter) pong() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

func (w *pongWaiter) wait(ctx context.Context) error {
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("failed to wait for pong: %w", ctx.Err())
	}
}

var pingPayload = []byte("wsbench!")

// --- gorilla/websocket, defaults -------------------------------------------

type gorillaClient struct {
	ws   *websocket.Conn
	pump *pump
	pong *pongWaiter
}

// gorillaPool is the write buffer pool of the WriteBuffer variants.
var gorillaPool sync.Pool

func dialGorilla(ctx context.Context, lib Lib, cfg DialConfig) (Client, error) {
	d := *websocket.DefaultDialer
	if lib.WriteBuffer > 0 {
		d.WriteBufferSize, d.WriteBufferPool = lib.WriteBuffer, &gorillaPool
	}
	ws, _, err := d.DialContext(ctx, "ws://"+cfg.Addr+cfg.Path, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to dial gorilla: %w", err)
	}
	c := &gorillaClient{ws: ws, pong: newPongWaiter()}
	ws.SetPongHandler(func(string) error { c.pong.pong(); return nil })
	if cfg.Reader {
		c.pump = startPump(func() ([]byte, error) {
			_, p, err := ws.ReadMessage()
			return p, err
		})
	}
	return c, nil
}

func (c *gorillaClient) Send(_ context.Context, p []byte) error {
	return c.ws.WriteMessage(websocket.BinaryMessage, p)
}

func (c *gorillaClient) Recv(ctx context.Context) ([]byte, error) {
	if c.pump != nil {
		return c.pump.recv(ctx)
	}
	_, p, err := c.ws.ReadMessage()
	return p, err
}

func (c *gorillaClient) Ping(ctx context.Context) error {
	if c.pump == nil {
		return errors.New("gorilla sees pongs only while reading: dial with Reader")
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	if err := c.ws.WriteControl(websocket.PingMessage, pingPayload, deadline); err != nil {
		return err
	}
	return c.pong.wait(ctx)
}

func (c *gorillaClient) Close() error {
	err := c.ws.NetConn().Close()
	if c.pump != nil {
		c.pump.close()
	}
	return err
}

// --- coder/websocket ---------------------------------------------------------

type coderClient struct {
	ws   *coder.Conn
	pump *pump
}

// readLimit lets coder (32 KiB by default) take the 64 KiB messages.
const readLimit = 1 << 20

func dialCoder(ctx context.Context, cfg DialConfig) (Client, error) {
	ws, _, err := coder.Dial(ctx, "ws://"+cfg.Addr+cfg.Path, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to dial coder: %w", err)
	}
	ws.SetReadLimit(readLimit)
	c := &coderClient{ws: ws}
	if cfg.Reader {
		c.pump = startPump(func() ([]byte, error) {
			_, p, err := ws.Read(context.Background())
			return p, err
		})
	}
	return c, nil
}

func (c *coderClient) Send(ctx context.Context, p []byte) error {
	return c.ws.Write(ctx, coder.MessageBinary, p)
}

func (c *coderClient) Recv(ctx context.Context) ([]byte, error) {
	if c.pump != nil {
		return c.pump.recv(ctx)
	}
	_, p, err := c.ws.Read(ctx)
	return p, err
}

func (c *coderClient) Ping(ctx context.Context) error {
	if c.pump == nil {
		return errors.New("coder sees pongs only while reading: dial with Reader")
	}
	return c.ws.Ping(ctx)
}

func (c *coderClient) Close() error {
	err := c.ws.CloseNow()
	if c.pump != nil {
		c.pump.close()
	}
	return err
}

// --- lxzan/gws ---------------------------------------------------------------

type gwsClient struct {
	gws.BuiltinEventHandler
	ws   *gws.Conn
	msgs chan *gws.Message
	last *gws.Message
	pong *pongWaiter
	stop chan struct{}
	once sync.Once
	done chan struct{}
}

func dialGWS(_ context.Context, cfg DialConfig) (Client, error) {
	c := &gwsClient{msgs: make(chan *gws.Message, 1), pong: newPongWaiter(), stop: make(chan struct{}), done: make(chan struct{})}
	ws, _, err := gws.NewClient(c, &gws.ClientOption{Addr: "ws://" + cfg.Addr + cfg.Path})
	if err != nil {
		return nil, fmt.Errorf("failed to dial gws: %w", err)
	}
	c.ws = ws
	go func() {
		defer close(c.done)
		ws.ReadLoop()
	}()
	return c, nil
}

func (c *gwsClient) OnPing(s *gws.Conn, payload []byte) { s.WritePong(payload) }
func (c *gwsClient) OnPong(*gws.Conn, []byte)           { c.pong.pong() }

func (c *gwsClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	select {
	case c.msgs <- m:
	case <-c.stop:
		m.Close()
	}
}

func (c *gwsClient) Send(_ context.Context, p []byte) error {
	return c.ws.WriteMessage(gws.OpcodeBinary, p)
}

func (c *gwsClient) Recv(ctx context.Context) ([]byte, error) {
	if c.last != nil {
		c.last.Close()
		c.last = nil
	}
	select {
	case m := <-c.msgs:
		c.last = m
		return m.Bytes(), nil
	case <-c.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *gwsClient) Ping(ctx context.Context) error {
	if err := c.ws.WritePing(pingPayload); err != nil {
		return err
	}
	return c.pong.wait(ctx)
}

func (c *gwsClient) Close() error {
	c.once.Do(func() { close(c.stop) })
	err := c.ws.NetConn().Close()
	<-c.done
	return err
}

// --- wsnursery wsconn --------------------------------------------------------

type wsconnClient struct {
	c  *wsconn.Conn
	bg bool
}

func dialWsconn(ctx context.Context, lib Lib, cfg DialConfig) (Client, error) {
	c, err := wsconn.Dial(ctx, "ws://"+cfg.Addr+cfg.Path, lib.dialOptions())
	if err != nil {
		return nil, err
	}
	return &wsconnClient{c: c, bg: lib.BackgroundCtx}, nil
}

func (c *wsconnClient) Send(ctx context.Context, p []byte) error {
	if c.bg {
		ctx = context.Background()
	}
	return c.c.SendBinary(ctx, p)
}

func (c *wsconnClient) Recv(ctx context.Context) ([]byte, error) {
	m, err := c.c.Receive(ctx)
	return m.Data, err
}

func (c *wsconnClient) Ping(ctx context.Context) error {
	return c.c.Ping(ctx, pingPayload)
}

// Conn exposes the connection, for heartbeat.Run.
func (c *wsconnClient) Conn() *wsconn.Conn { return c.c }

func (c *wsconnClient) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// An already-cancelled ctx: Close sends its frame and drops TCP.
	dctx, dcancel := context.WithCancel(ctx)
	dcancel()
	c.c.Close(dctx, wsconn.StatusGoingAway, "")
	select {
	case <-c.c.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// --- raw TCP, length-prefixed ------------------------------------------------

// TCP framing: the client's first byte picks the mode (modeEcho, modeSink,
// modeSource); then every message is a 4-byte big-endian length and the
// payload.
const (
	modeEcho   = 'e'
	modeSink   = 's'
	modeSource = 'o'
)

type tcpClient struct {
	conn net.Conn
	br   *bufio.Reader
	wbuf []byte
	rbuf []byte
	pump *pump
}

func dialTCP(ctx context.Context, cfg DialConfig) (Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("failed to dial tcp: %w", err)
	}
	mode := byte(modeEcho)
	switch cfg.Path {
	case "/sink":
		mode = modeSink
	case "/source":
		mode = modeSource
	}
	if _, err := conn.Write([]byte{mode}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("failed to dial tcp: %w", err)
	}
	c := &tcpClient{conn: conn, br: bufio.NewReader(conn)}
	if cfg.Reader {
		c.pump = startPump(func() ([]byte, error) {
			p, err := c.read()
			return append([]byte(nil), p...), err // read reuses its buffer
		})
	}
	return c, nil
}

func (c *tcpClient) Send(_ context.Context, p []byte) error {
	c.wbuf = binary.BigEndian.AppendUint32(c.wbuf[:0], uint32(len(p)))
	c.wbuf = append(c.wbuf, p...)
	_, err := c.conn.Write(c.wbuf)
	return err
}

func (c *tcpClient) read() ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(h[:]))
	if cap(c.rbuf) < n {
		c.rbuf = make([]byte, n)
	}
	c.rbuf = c.rbuf[:n]
	if _, err := io.ReadFull(c.br, c.rbuf); err != nil {
		return nil, err
	}
	return c.rbuf, nil
}

func (c *tcpClient) Recv(ctx context.Context) ([]byte, error) {
	if c.pump != nil {
		return c.pump.recv(ctx)
	}
	return c.read()
}

func (c *tcpClient) Ping(context.Context) error { return ErrUnsupported }

func (c *tcpClient) Close() error {
	err := c.conn.Close()
	if c.pump != nil {
		c.pump.close()
	}
	return err
}
