// Package faults puts network faults between a WebSocket client and server
// for tests: Proxy is a TCP proxy on 127.0.0.1 that adds latency, limits
// bandwidth, blackholes the path or resets the connections on demand.
//
// The package's tests use it to check how wsconn connections, heartbeat and
// nursery behave when the network misbehaves, and that no message is ever
// lost or duplicated while the path still works.
package faults

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Options configures a Proxy. A nil *Options means a plain proxy.
type Options struct {
	// Latency delays every byte this long in each direction (one way, so a
	// round trip takes twice as long). Data keeps flowing while it waits:
	// latency is not bandwidth.
	Latency time.Duration
	// Bandwidth limits each direction of each connection, in bytes per
	// second. Zero means unlimited.
	Bandwidth int
}

// chunkSize bounds one forwarded write, which keeps bandwidth pacing smooth.
const chunkSize = 16 << 10

// Proxy forwards each TCP connection accepted on its address to a target
// address, subject to its Options and to the faults its methods inject.
// Its methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	opts   Options

	mu         sync.Mutex
	links      map[*link]struct{}
	blackholed bool
	closed     bool

	wg sync.WaitGroup // the accept loop and every link's goroutines
}

// link is one proxied connection.
type link struct {
	client, server *net.TCPConn
	halt           chan struct{} // closed by Blackhole: forward nothing more
	done           chan struct{} // closed when the link's sockets are closed
	haltOnce       sync.Once
	doneOnce       sync.Once
}

// Listen starts a proxy on 127.0.0.1 (a free port) to target, a host:port.
func Listen(target string, opts *Options) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("failed to listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, links: map[*link]struct{}{}}
	if opts != nil {
		p.opts = *opts
	}
	if p.opts.Latency < 0 || p.opts.Bandwidth < 0 {
		ln.Close()
		return nil, errors.New("failed to listen: negative latency or bandwidth")
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the host:port clients should connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Links returns how many proxied connections are open.
func (p *Proxy) Links() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Blackhole stops forwarding, in both directions, on every connection now
// open and every one accepted later. Nothing is closed: no FIN, no RST; the
// endpoints just stop hearing from each other, as behind a dead router.
// Data already in flight inside the proxy is dropped.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackholed = true
	for l := range p.links {
		l.haltOnce.Do(func() { close(l.halt) })
	}
}

// Reset aborts every open connection with a TCP RST to both endpoints
// (SO_LINGER 0, then close), as a peer or middlebox that resets would.
func (p *Proxy) Reset() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.abort()
	}
}

// Close stops accepting, closes every connection (with FIN) and returns
// once all of the proxy's goroutines have ended.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c.(*net.TCPConn))
	}
}

// serve dials the target for client and forwards until both directions end
// or the link is closed.
func (p *Proxy) serve(client *net.TCPConn) {
	defer p.wg.Done()
	s, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		client.SetLinger(0)
		client.Close()
		return
	}
	l := &link{client: client, server: s.(*net.TCPConn), halt: make(chan struct{}), done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.close()
		return
	}
	if p.blackholed {
		close(l.halt)
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(l, l.client, l.server) }()
	go func() { defer wg.Done(); p.pipe(l, l.server, l.client) }()
	wg.Wait()
	l.close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

type chunk struct {
	data []byte
	due  time.Time
}

// pipe forwards src to dst: this goroutine reads, another writes each chunk
// once its latency has passed and the bandwidth allows. A clean EOF is
// passed on as a half-close, a read error as a reset.
func (p *Proxy) pipe(l *link, src, dst *net.TCPConn) {
	chunks := make(chan chunk, 64)
	var readErr error
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		p.write(l, chunks, dst)
	}()
	defer func() {
		close(chunks)
		<-wrote
		select {
		case <-l.halt:
			<-l.done // blackholed: keep both sockets open until Close
			return
		default:
		}
		if readErr == nil || errors.Is(readErr, io.EOF) {
			dst.CloseWrite()
		} else {
			l.abort()
		}
	}()
	for {
		buf := make([]byte, chunkSize)
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-l.halt:
				return // dropped; read nothing more
			case chunks <- chunk{data: buf[:n], due: time.Now().Add(p.opts.Latency)}:
			case <-l.done:
				return
			}
		}
		if err != nil {
			readErr = err
			return
		}
	}
}

// write is pipe's writer.
func (p *Proxy) write(l *link, chunks <-chan chunk, dst *net.TCPConn) {
	var free time.Time // when the bandwidth allows the next write
	timer := time.NewTimer(0)
	defer timer.Stop()
	wait := func(until time.Time) bool {
		d := time.Until(until)
		if d <= 0 {
			return true
		}
		timer.Reset(d)
		select {
		case <-timer.C:
			return true
		case <-l.halt:
		case <-l.done:
		}
		if !timer.Stop() {
			<-timer.C
		}
		return false
	}
	<-timer.C
	for c := range chunks {
		if !wait(c.due) {
			break
		}
		if p.opts.Bandwidth > 0 {
			if !wait(free) {
				break
			}
			start := time.Now()
			if free.After(start) {
				start = free
			}
			free = start.Add(time.Duration(len(c.data)) * time.Second / time.Duration(p.opts.Bandwidth))
		}
		select {
		case <-l.halt:
			return
		default:
		}
		if _, err := dst.Write(c.data); err != nil {
			l.abort()
			break
		}
	}
	for range chunks { // drop the rest so that the reader never blocks
	}
}

// abort resets both sockets.
func (l *link) abort() {
	l.client.SetLinger(0)
	l.server.SetLinger(0)
	l.close()
}

// close closes both sockets and wakes everything waiting on the link.
func (l *link) close() {
	l.doneOnce.Do(func() {
		l.client.Close()
		l.server.Close()
		close(l.done)
	})
}
