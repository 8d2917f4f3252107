package wsconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// DialOptions configures Dial and Open. A nil *DialOptions means defaults.
type DialOptions struct {
	// Header is sent with the opening handshake (e.g. Origin, Authorization).
	// A "Host" entry overrides the Host header.
	Header http.Header
	// Subprotocols are offered in order of preference. A server that picks
	// one not offered fails the handshake.
	Subprotocols []string
	// TLSConfig is used for wss URLs.
	TLSConfig *tls.Config
	// Proxy returns the proxy for a request (http: CONNECT, with basic auth
	// from the URL's user info; socks5:), or nil for none. Nil means no proxy;
	// http.ProxyFromEnvironment is a common choice.
	Proxy func(*http.Request) (*url.URL, error)
	// NetDialContext dials the TCP (or unix, or in-memory) connection.
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// ConnectTimeout bounds TCP, TLS and the upgrade together; it fails with
	// ErrConnectionTimeout. Default 60 s.
	ConnectTimeout time.Duration
	// DisconnectTimeout bounds the closing handshake. Default 60 s.
	DisconnectTimeout time.Duration
	// MaxMessageSize is the largest message accepted, in bytes, inclusive;
	// a larger one fails the connection with 1009. Default 1 MiB; negative
	// means no limit.
	MaxMessageSize int64
	// MessageQueueSize is how many received messages may wait for Receive
	// before the reader stops reading. Default 1; negative means none (the
	// reader hands each message straight to a waiting Receive). Once
	// Reader has been called, a message over 64 KiB is not read ahead: it
	// waits at the head of the queue, which counts as full, until Receive
	// or Reader takes it (see Reader).
	MessageQueueSize int
	// Logger, when its Debug level is enabled, receives a trace of the
	// connection: the handshake request and response headers (credentials
	// redacted), messages (type and length), pings, pongs and Close frames
	// both ways. See the package documentation.
	Logger *slog.Logger
	// TracePayloads adds the payloads of messages, pings and pongs to the
	// trace (text as is, binary in hex, at most 1 KiB per record).
	TracePayloads bool
	// OnPing and OnPong, when set, observe the pings the peer sends (after
	// they are answered) and the pongs it sends. They run on the
	// connection's reader goroutine and must not block.
	OnPing, OnPong func(payload []byte)
	// Compression, when not CompressionDisabled, offers permessage-deflate
	// (RFC 7692); Conn.Compression says whether the server accepted it.
	Compression CompressionMode
	// CompressionLevel is the compress/flate level of the messages sent
	// compressed: -2 (Huffman only) to 9. 0 means DefaultCompressionLevel.
	CompressionLevel int
	// CompressionThreshold: data messages shorter than this many bytes go
	// out uncompressed. 0 means DefaultCompressionThreshold (512); negative
	// means every message is compressed.
	CompressionThreshold int
}

// Dial opens a client connection to a ws:// or wss:// URL; http:// and
// https:// URLs are taken as ws:// and wss:// (the handshake is an HTTP
// request to the same place).
//
// ctx bounds the whole opening handshake, including the HTTP upgrade
// exchange; the connection outlives ctx once Dial returns. A server that
// answers with a status other than 101 yields a *ConnectionRejectedError.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Conn, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("failed to dial: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("failed to dial %q: scheme must be ws, wss, http or https", rawURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("failed to dial %q: no host", rawURL)
	}
	u.Fragment, u.RawFragment = "", ""
	path := u.EscapedPath()
	if path == "" {
		path = "/"
		u.Path, u.RawPath = "/", ""
	}
	if u.RawQuery != "" || u.ForceQuery {
		path += "?" + u.RawQuery
	}
	header := opts.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	if header.Get("Host") == "" {
		header.Set("Host", hostHeader(u))
	}
	cfg := newConnConfig(opts.DisconnectTimeout, opts.MaxMessageSize, opts.MessageQueueSize, opts.Logger)
	cfg.tracePayloads = opts.TracePayloads
	cfg.onPing, cfg.onPong = opts.OnPing, opts.OnPong
	comp, err := newCompression(opts.Compression, opts.CompressionLevel, opts.CompressionThreshold)
	if err != nil {
		return nil, fmt.Errorf("failed to dial %s: %w", rawURL, err)
	}
	deflate := comp.mode != CompressionDisabled // offered

	connectTimeout := opts.ConnectTimeout
	if connectTimeout <= 0 {
		connectTimeout = DefaultConnectTimeout
	}
	dctx, cancel := context.WithTimeoutCause(ctx, connectTimeout, ErrConnectionTimeout)
	defer cancel()

	proxyURL, err := resolveProxy(opts.Proxy, u)
	if err != nil {
		return nil, fmt.Errorf("failed to dial %s: %w", rawURL, err)
	}

	// gorilla only honours a context's deadline, and only once TCP is up,
	// so it gets a context that is merely cancelled when dctx ends, and the
	// raw connection is broken at that moment too. Errors are then always
	// classified by dctx, which has ended by the time gorilla returns.
	gctx, gcancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer gcancel(nil)
	var (
		mu        sync.Mutex
		raw       net.Conn
		guard     *frameGuard
		cancelled bool
	)
	stop := context.AfterFunc(dctx, func() {
		mu.Lock()
		cancelled = true
		if raw != nil {
			raw.SetDeadline(pastTime)
		}
		mu.Unlock()
		gcancel(context.Cause(dctx))
	})
	netDial := opts.NetDialContext
	if netDial == nil {
		netDial = (&net.Dialer{}).DialContext
	}
	// dial connects, and wraps the connection in the frame guard; the guard
	// parses frames unless a proxy's answers come first (see checkResponse
	// for what the client checks itself) or TLS is still to be layered.
	dial := func(ctx context.Context, network, addr string, state int) (*frameGuard, error) {
		c, err := netDial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if cancelled {
			c.Close()
			return nil, context.Cause(dctx)
		}
		raw = c
		guard = newFrameGuard(c, state, cfg.maxMessageSize)
		guard.deflate = deflate
		return guard, nil
	}
	d := websocket.Dialer{
		Subprotocols:    opts.Subprotocols,
		TLSClientConfig: opts.TLSConfig,
		ReadBufferSize:  readBufferSize,
		WriteBufferSize: clientWriteBufferSize,
		WriteBufferPool: writeBufferPool,
		// gorilla offers deflateResponse and requires both parameters back;
		// checkResponse checks the rest.
		EnableCompression: deflate,
	}
	switch {
	case proxyURL != nil:
		d.Proxy = http.ProxyURL(proxyURL)
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dial(ctx, network, addr, guardOff)
		}
	case u.Scheme == "ws":
		d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dial(ctx, network, addr, guardHTTP)
		}
	default:
		// TLS here rather than in gorilla, so that the guard reads plaintext
		// and interrupts writes above TLS.
		d.NetDialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			g, err := dial(ctx, network, addr, guardOff)
			if err != nil {
				return nil, err
			}
			tcfg := opts.TLSConfig.Clone()
			if tcfg == nil {
				tcfg = &tls.Config{}
			}
			if tcfg.ServerName == "" {
				tcfg.ServerName = u.Hostname()
			}
			tc := tls.Client(g.Conn, tcfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				tc.Close()
				return nil, err
			}
			mu.Lock()
			defer mu.Unlock()
			guard = newFrameGuard(tc, guardHTTP, cfg.maxMessageSize)
			guard.deflate = deflate
			return guard, nil
		}
	}

	if cfg.log != nil {
		// The request before it is sent, as far as it is ours: gorilla adds
		// the handshake's own headers (the key), traced with the response.
		cfg.log.Debug("websocket dialing", "url", u.Redacted(), "subprotocols", opts.Subprotocols, "header", traceHeader(header))
	}
	ws, resp, err := d.DialContext(gctx, u.String(), header)
	if cfg.log != nil && resp == nil && err != nil {
		cfg.log.Debug("websocket dial failed", "url", u.Redacted(), "err", err.Error())
	}
	if cfg.log != nil && resp != nil {
		if resp.Request != nil {
			cfg.log.Debug("websocket handshake sent", "url", u.Redacted(), "header", traceHeader(resp.Request.Header))
		}
		cfg.log.Debug("websocket handshake response", "status", resp.StatusCode, "header", traceHeader(resp.Header))
	}
	if !stop() && err == nil {
		ws.NetConn().Close()
		err = context.Cause(dctx)
	}
	if err != nil {
		return nil, dialError(ctx, dctx, rawURL, resp, err)
	}
	sub := resp.Header.Get("Sec-WebSocket-Protocol")
	negotiated, err := checkResponse(resp, sub, opts.Subprotocols, deflate)
	if err != nil {
		ws.NetConn().Close()
		return nil, fmt.Errorf("failed to dial %s: %w", rawURL, err)
	}
	if negotiated {
		cfg.compress = comp
	}
	mu.Lock()
	g := guard
	mu.Unlock()
	c := newConn(ws, g, true, cfg, path, sub, resp.Header)
	c.trace("websocket opened", "path", path, "subprotocol", sub)
	return c, nil
}

// resolveProxy asks proxy (if any) which proxy serves u, as gorilla would.
func resolveProxy(proxy func(*http.Request) (*url.URL, error), u *url.URL) (*url.URL, error) {
	if proxy == nil {
		return nil, nil
	}
	hu := *u
	hu.Scheme = map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
	return proxy(&http.Request{Method: http.MethodGet, URL: &hu, Header: http.Header{}, Host: u.Host})
}

// checkResponse closes the gaps gorilla's Dialer leaves (RFC 6455 §4.1,
// RFC 7692 §7.1): the server may not pick a subprotocol or extension the
// client never offered, nor answer an offer with parameters it did not
// make. It reports whether permessage-deflate was negotiated.
func checkResponse(resp *http.Response, sub string, offered []string, deflate bool) (bool, error) {
	if sub != "" && !slices.Contains(offered, sub) {
		return false, fmt.Errorf("%w: server chose subprotocol %q that was not offered", ErrHandshake, sub)
	}
	return checkDeflateResponse(resp.Header.Values("Sec-WebSocket-Extensions"), deflate)
}

// maxRejectBody is how much of a rejection's body ConnectionRejectedError
// keeps: 1 KiB, which is also all that gorilla's Dialer keeps of it.
const maxRejectBody = 1 << 10

func dialError(ctx, dctx context.Context, rawURL string, resp *http.Response, err error) error {
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxRejectBody))
		return &ConnectionRejectedError{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("failed to dial %s: %w", rawURL, ctx.Err())
	case errors.Is(context.Cause(dctx), ErrConnectionTimeout):
		return fmt.Errorf("failed to dial %s: %w", rawURL, ErrConnectionTimeout)
	case errors.Is(err, websocket.ErrBadHandshake):
		return fmt.Errorf("failed to dial %s: %w: invalid upgrade response", rawURL, ErrHandshake)
	case resp != nil: // a 101 arrived, with something wrong in it
		return fmt.Errorf("failed to dial %s: %w: %w", rawURL, ErrHandshake, err)
	}
	return fmt.Errorf("failed to dial %s: %w", rawURL, err)
}

// hostHeader is the URL's host, without the port when it is the scheme's
// default (RFC 6455 §4.1).
func hostHeader(u *url.URL) string {
	port := u.Port()
	if (u.Scheme == "ws" && port == "80") || (u.Scheme == "wss" && port == "443") {
		h := u.Hostname()
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return u.Host
}

// writeBufferPool lends clients' write buffers only while a message is
// written, so idle connections hold none. (gorilla wants one pool per
// buffer size; servers use no pool.)
var writeBufferPool = &sync.Pool{}
