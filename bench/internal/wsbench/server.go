package wsbench

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"
	"github.com/lxzan/gws"
	"github.com/wsnursery/wsnursery/wsconn"
)

// responder is one server connection's behaviour, picked by the path:
// /echo sends every message back; /sink discards messages but answers an
// empty one with an empty one (so a client knows all before it arrived);
// /source answers an 8-byte request (count, size: big-endian uint32s) with
// count messages of size bytes.
type responder struct {
	mode byte
	out  []byte
}

func newResponder(path string) *responder {
	switch path {
	case "/sink":
		return &responder{mode: modeSink}
	case "/source":
		return &responder{mode: modeSource}
	}
	return &responder{mode: modeEcho}
}

func (r *responder) handle(p []byte, write func([]byte) error) error {
	switch r.mode {
	case modeSink:
		if len(p) == 0 {
			return write(nil)
		}
		return nil
	case modeSource:
		if len(p) != 8 {
			return fmt.Errorf("source request of %d bytes, want 8", len(p))
		}
		count, size := binary.BigEndian.Uint32(p), int(binary.BigEndian.Uint32(p[4:]))
		if cap(r.out) < size {
			r.out = make([]byte, size)
		}
		for range count {
			if err := write(r.out[:size]); err != nil {
				return err
			}
		}
		return nil
	}
	return write(p)
}

// SourceRequest is the message that asks /source for count messages of
// size bytes.
func SourceRequest(count, size int) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(count))
	return binary.BigEndian.AppendUint32(b, uint32(size))
}

// Servers runs a server for every library, each on its own 127.0.0.1 port,
// plus a control port that reports this process's Stats.
type Servers struct {
	// Addrs maps library names to host:port; "control" is the stats server.
	Addrs map[string]string

	cancel context.CancelFunc
	lns    []*trackingListener
	plain  []net.Listener
	https  []*http.Server
	wg     sync.WaitGroup
}

// StartServers starts the servers of libs and the control server.
func StartServers(libs []Lib) (*Servers, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Servers{Addrs: map[string]string{}, cancel: cancel}
	for _, lib := range libs {
		if err := s.start(ctx, lib); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.startFanout(ctx); err != nil {
		s.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		st := ReadStats(r.URL.Query().Get("gc") == "1")
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("/heap", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		pprof.Lookup("heap").WriteTo(w, 0)
	})
	if err := s.serveHTTP("control", mux); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Servers) listen(name string) (*trackingListener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("failed to listen for %s: %w", name, err)
	}
	tl := &trackingListener{Listener: ln, conns: map[net.Conn]struct{}{}}
	s.lns = append(s.lns, tl)
	s.Addrs[name] = ln.Addr().String()
	return tl, nil
}

// listenPlain listens without tracking connections, for wsconn's Server,
// which closes its own at shutdown; its connections stay plain TCP
// connections, as an application's are.
func (s *Servers) listenPlain(name string) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("failed to listen for %s: %w", name, err)
	}
	s.plain = append(s.plain, ln)
	s.Addrs[name] = ln.Addr().String()
	return ln, nil
}

func (s *Servers) serveHTTP(name string, h http.Handler) error {
	ln, err := s.listen(name)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	s.https = append(s.https, hs)
	s.wg.Go(func() { hs.Serve(ln) })
	return nil
}

func (s *Servers) start(ctx context.Context, lib Lib) error {
	switch lib.Kind {
	case KindGorilla:
		if lib.Pump {
			return s.serveHTTP(lib.Name, http.HandlerFunc(s.gorillaPump))
		}
		up := &websocket.Upgrader{}
		if lib.WriteBuffer > 0 {
			up.WriteBufferSize, up.WriteBufferPool = lib.WriteBuffer, &gorillaPool
		}
		return s.serveHTTP(lib.Name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.gorilla(up, w, r) }))
	case KindCoder:
		return s.serveHTTP(lib.Name, http.HandlerFunc(s.coder))
	case KindGWS:
		return s.serveHTTP(lib.Name, s.gwsHandler())
	case KindWsconn:
		ln, err := s.listenPlain(lib.Name)
		if err != nil {
			return err
		}
		srv := wsconn.NewServer(wsconnHandler(lib), lib.serverOptions())
		s.wg.Go(func() { srv.Serve(ctx, ln) })
		return nil
	case KindTCP:
		ln, err := s.listen(lib.Name)
		if err != nil {
			return err
		}
		s.wg.Go(func() { s.serveTCP(ln) })
		return nil
	}
	return fmt.Errorf("unknown library %q", lib.Name)
}

// Close stops every server, drops every connection and waits for every
// goroutine the servers started.
func (s *Servers) Close() {
	s.cancel()
	for _, hs := range s.https {
		hs.Close()
	}
	for _, ln := range s.lns {
		ln.closeAll()
	}
	for _, ln := range s.plain {
		ln.Close()
	}
	s.wg.Wait()
}

// trackingListener remembers accepted connections so that Close can drop
// hijacked ones too.
type trackingListener struct {
	net.Listener
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *trackingListener) closeAll() {
	l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// gorilla: the default Upgrader, ReadMessage and WriteMessage.
func (s *Servers) gorilla(up *websocket.Upgrader, w http.ResponseWriter, r *http.Request) {
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	resp := newResponder(r.URL.Path)
	write := func(p []byte) error { return ws.WriteMessage(websocket.BinaryMessage, p) }
	for {
		_, p, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if err := resp.handle(p, write); err != nil {
			return
		}
	}
}

// gorillaPump: gorilla with a reader goroutine handing messages to the
// handler over a channel of capacity 1.
func (s *Servers) gorillaPump(w http.ResponseWriter, r *http.Request) {
	var up websocket.Upgrader
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	p := startPump(func() ([]byte, error) {
		_, b, err := ws.ReadMessage()
		return b, err
	})
	defer p.close()
	defer ws.Close()
	resp := newResponder(r.URL.Path)
	write := func(p []byte) error { return ws.WriteMessage(websocket.BinaryMessage, p) }
	for {
		b, err := p.recv(r.Context())
		if err != nil {
			return
		}
		if err := resp.handle(b, write); err != nil {
			return
		}
	}
}

// coder: Accept with defaults but the read limit, Read and Write with the
// request's context.
func (s *Servers) coder(w http.ResponseWriter, r *http.Request) {
	ws, err := coder.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(readLimit)
	ctx := r.Context()
	resp := newResponder(r.URL.Path)
	write := func(p []byte) error { return ws.Write(ctx, coder.MessageBinary, p) }
	for {
		_, p, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if err := resp.handle(p, write); err != nil {
			return
		}
	}
}

// gws: an Upgrader per path, ReadLoop on its own goroutine as gws advises,
// responding inside OnMessage.
type gwsServerHandler struct {
	gws.BuiltinEventHandler
	path string
}

func (h *gwsServerHandler) OnPing(s *gws.Conn, payload []byte) { s.WritePong(payload) }

func (h *gwsServerHandler) OnOpen(s *gws.Conn) {
	s.Session().Store("r", newResponder(h.path))
}

func (h *gwsServerHandler) OnMessage(s *gws.Conn, m *gws.Message) {
	defer m.Close()
	v, _ := s.Session().Load("r")
	resp := v.(*responder)
	if err := resp.handle(m.Bytes(), func(p []byte) error { return s.WriteMessage(gws.OpcodeBinary, p) }); err != nil {
		s.NetConn().Close()
	}
}

func (s *Servers) gwsHandler() http.Handler {
	ups := map[string]*gws.Upgrader{}
	for _, p := range []string{"/echo", "/sink", "/source"} {
		ups[p] = gws.NewUpgrader(&gwsServerHandler{path: p}, &gws.ServerOption{})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up, ok := ups[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		ws, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		s.wg.Go(ws.ReadLoop)
	})
}

// wsconn: the default Server, Receive and Send with the handler's context.
func wsconnHandler(lib Lib) wsconn.Handler {
	return func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		sendCtx := ctx
		if lib.BackgroundCtx {
			sendCtx = context.Background()
		}
		resp := newResponder(r.Path)
		write := func(p []byte) error { return c.SendBinary(sendCtx, p) }
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				return nil
			}
			if err := resp.handle(m.Data, write); err != nil {
				return nil
			}
		}
	}
}

// tcp: length-prefixed frames after a mode byte.
func (s *Servers) serveTCP(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() { serveTCPConn(conn) })
	}
}

func serveTCPConn(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	mode, err := br.ReadByte()
	if err != nil {
		return
	}
	resp := &responder{mode: mode}
	var in, out []byte
	write := func(p []byte) error {
		out = binary.BigEndian.AppendUint32(out[:0], uint32(len(p)))
		out = append(out, p...)
		_, err := conn.Write(out)
		return err
	}
	var h [4]byte
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(h[:]))
		if cap(in) < n {
			in = make([]byte, n)
		}
		in = in[:n]
		if _, err := io.ReadFull(br, in); err != nil {
			return
		}
		if err := resp.handle(in, write); err != nil {
			return
		}
	}
}

// waitStdinEOF blocks until the parent closes our stdin (or dies), bounded
// by max.
func waitStdinEOF(r io.Reader, max time.Duration) {
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, r)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(max):
	}
}
