package wstest

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
)

// ServeTCP runs fn for every connection to a new listener on 127.0.0.1 and
// returns the listener's address. Each connection is closed when its fn
// returns. When the test ends the listener and every connection still open
// are closed, and every fn is awaited.
func ServeTCP(t TB, fn func(c net.Conn)) string {
	t.Helper()
	ln := Listen(t)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				fn(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// ProxyOptions configures [StartProxy]. The zero value is an HTTP CONNECT
// proxy without authentication that connects to the target it is asked for.
type ProxyOptions struct {
	// SOCKS5 makes the proxy speak SOCKS5 (RFC 1928, no authentication,
	// CONNECT only) instead of HTTP CONNECT.
	SOCKS5 bool

	// User and Password, when User is not empty, are the Basic credentials
	// an HTTP CONNECT proxy demands; without them it answers 407.
	User, Password string

	// Upstream, if not empty, is the address the proxy connects to whatever
	// target it is asked for, so that a test can ask for a host name that is
	// then never looked up. When empty, the proxy connects to the target,
	// which must be on 127.0.0.1 (an HTTP proxy answers 403 otherwise).
	Upstream string
}

// A Proxy is a loopback proxy that records the targets it is asked for.
type Proxy struct {
	// Addr is the proxy's host:port.
	Addr string

	opts    ProxyOptions
	mu      sync.Mutex
	targets []string
}

// StartProxy runs a proxy on 127.0.0.1 until the test ends.
func StartProxy(t TB, opts *ProxyOptions) *Proxy {
	t.Helper()
	p := &Proxy{}
	if opts != nil {
		p.opts = *opts
	}
	p.Addr = ServeTCP(t, p.serve)
	return p
}

// Targets returns the targets the proxy has been asked for, in order: the
// host:port of a CONNECT or a SOCKS5 request, or the method and URI of any
// other HTTP request. A target is recorded before the proxy answers.
func (p *Proxy) Targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.targets)
}

func (p *Proxy) record(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.targets = append(p.targets, target)
}

func (p *Proxy) serve(c net.Conn) {
	br := bufio.NewReader(c)
	var up net.Conn
	if p.opts.SOCKS5 {
		up = p.socks5(c, br)
	} else {
		up = p.httpConnect(c, br)
	}
	if up == nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(c, up)
		c.Close()
		close(done)
	}()
	io.Copy(up, br)
	up.Close()
	<-done
}

// dial connects to the upstream for target, or returns why it may not.
func (p *Proxy) dial(target string) (net.Conn, error) {
	addr := p.opts.Upstream
	if addr == "" {
		host, _, err := net.SplitHostPort(target)
		if err != nil {
			return nil, err
		}
		if host != "127.0.0.1" {
			return nil, errForbidden
		}
		addr = target
	}
	return net.Dial("tcp", addr)
}

var errForbidden = errors.New("target not on 127.0.0.1")

// httpConnect answers one HTTP CONNECT request and returns the upstream
// connection, or nil after answering with an error status.
func (p *Proxy) httpConnect(c net.Conn, br *bufio.Reader) net.Conn {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil
	}
	if req.Method != http.MethodConnect {
		p.record(req.Method + " " + req.RequestURI)
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return nil
	}
	p.record(req.Host)
	if p.opts.User != "" {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.opts.User+":"+p.opts.Password))
		if req.Header.Get("Proxy-Authorization") != want {
			io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
			return nil
		}
	}
	up, err := p.dial(req.Host)
	switch {
	case errors.Is(err, errForbidden):
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		return nil
	case err != nil:
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return nil
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		up.Close()
		return nil
	}
	return up
}

// socks5 answers one SOCKS5 CONNECT request and returns the upstream
// connection, or nil after a failure.
func (p *Proxy) socks5(c net.Conn, br *bufio.Reader) net.Conn {
	target, err := socks5Request(c, br)
	if err != nil {
		return nil
	}
	p.record(target)
	up, err := p.dial(target)
	if err != nil {
		c.Write([]byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0}) // connection not allowed
		return nil
	}
	if _, err := c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0}); err != nil {
		up.Close()
		return nil
	}
	return up
}

// socks5Request reads the greeting (offering no authentication) and the
// CONNECT request, and returns the target host:port.
func socks5Request(c net.Conn, br *bufio.Reader) (string, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil || hdr[0] != 5 {
		return "", fmt.Errorf("bad greeting %v: %v", hdr, err)
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return "", err
	}
	if !slices.Contains(methods, 0) {
		c.Write([]byte{5, 0xff})
		return "", errors.New("client does not offer no-auth")
	}
	if _, err := c.Write([]byte{5, 0}); err != nil {
		return "", err
	}
	var req [4]byte
	if _, err := io.ReadFull(br, req[:]); err != nil || req[0] != 5 || req[1] != 1 {
		return "", fmt.Errorf("bad request %v: %v", req, err)
	}
	var host string
	switch req[3] {
	case 1, 4:
		ip := make(net.IP, 4)
		if req[3] == 4 {
			ip = make(net.IP, 16)
		}
		if _, err := io.ReadFull(br, ip); err != nil {
			return "", err
		}
		host = ip.String()
	case 3:
		n, err := br.ReadByte()
		if err != nil {
			return "", err
		}
		name := make([]byte, n)
		if _, err := io.ReadFull(br, name); err != nil {
			return "", err
		}
		host = string(name)
	default:
		return "", fmt.Errorf("bad address type %d", req[3])
	}
	var port [2]byte
	if _, err := io.ReadFull(br, port[:]); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:])))), nil
}
