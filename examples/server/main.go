// Command server is a WebSocket echo server: every message a client sends,
// text or binary, is sent straight back to it.
//
// Run it and talk to it with the example client:
//
//	go run ./examples/server -heartbeat
//	go run ./examples/client ws://127.0.0.1:8000/
//
// Each connection is handled in a nursery: the echo loop and, with
// -heartbeat, a heartbeat that pings the client. If the client stops
// answering pings the heartbeat fails, the nursery cancels the echo loop and
// the connection is closed with 1011 "ping timeout" and dropped. Connections are logged with log/slog on stderr.
//
// SIGINT or SIGTERM stops the server gracefully: it stops accepting, closes
// every connection with 1001 (going away) and exits once every handler has
// returned. A second signal kills it at once.
//
// Flags:
//
//	-addr HOST:PORT          address to listen on (default 127.0.0.1:8000; port 0 picks a free one)
//	-heartbeat[=T,I]         ping each client every I and drop it if a pong takes longer
//	                         than T (default 1s,15s when given without values)
//	-tls-cert FILE           serve wss:// with this certificate (PEM) ...
//	-tls-key FILE            ... and this private key (PEM)
//	-max-message-size BYTES  largest message accepted; larger ones close the connection with 1009
//	-subprotocol NAME        a subprotocol the server speaks (repeatable); the first one the
//	                         client offers is selected
//	-compress                negotiate permessage-deflate with clients that offer it (browsers do)
//	-trace                   log handshakes, frames and closes (debug level)
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsnursery/wsnursery/examples/internal/cliflag"
	"github.com/wsnursery/wsnursery/heartbeat"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/wsconn"
)

// disconnectTimeout bounds each closing handshake, and so how long a
// graceful shutdown can wait for a client that does not answer.
const disconnectTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, restore the default behaviour so that a second
	// one kills the process even if the shutdown hangs.
	context.AfterFunc(ctx, stop)

	err := run(ctx, os.Args[1:], os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// errUsage marks a command-line error that the flag package has already
// reported.
var errUsage = errors.New("usage error")

type config struct {
	addr           string
	heartbeat      cliflag.Heartbeat
	tlsCert        string
	tlsKey         string
	maxMessageSize int64
	subprotocols   []string
	compress       bool
	trace          bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: server [flags]\n\nA WebSocket echo server. Flags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8000", "address to listen on (port 0 picks a free port)")
	fs.Var(&cfg.heartbeat, "heartbeat", "ping clients: `TIMEOUT,INTERVAL`, or no value for 1s,15s")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "certificate `file` (PEM); serves wss:// with -tls-key")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "private key `file` (PEM) for -tls-cert")
	fs.Int64Var(&cfg.maxMessageSize, "max-message-size", wsconn.DefaultMaxMessageSize, "largest message accepted, in `bytes`; bigger ones close the connection with 1009")
	fs.Func("subprotocol", "a subprotocol the server speaks (repeatable)", func(s string) error {
		cfg.subprotocols = append(cfg.subprotocols, s)
		return nil
	})
	fs.BoolVar(&cfg.compress, "compress", false, "negotiate permessage-deflate with clients that offer it")
	fs.BoolVar(&cfg.trace, "trace", false, "log handshakes, frames and closes")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "server: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return cfg, errUsage
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		fmt.Fprintln(stderr, "server: -tls-cert and -tls-key go together")
		return cfg, errUsage
	}
	if cfg.maxMessageSize <= 0 {
		fmt.Fprintln(stderr, "server: -max-message-size must be positive")
		return cfg, errUsage
	}
	return cfg, nil
}

// run parses args, serves until ctx is cancelled, then shuts down
// gracefully. A shutdown caused by ctx is a success.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if cfg.trace {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("failed to listen: %w", err)
	}
	scheme := "ws"
	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("failed to load TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
		scheme = "wss"
	}

	e := &echoServer{cfg: cfg, log: log}
	opts := &wsconn.ServerOptions{
		DisconnectTimeout: disconnectTimeout,
		MaxMessageSize:    cfg.maxMessageSize,
		Logger:            log,
	}
	if cfg.compress {
		opts.Compression = wsconn.CompressionNoContextTakeover
	}
	srv := wsconn.NewServer(e.handle, opts)
	// Serve shuts down when its context ends; log first, then let it.
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	stop := context.AfterFunc(ctx, func() {
		log.Info("shutting down: closing connections with 1001 (going away)", "open", e.open.Load())
		stopServing()
	})
	defer stop()
	log.Info("listening", "url", scheme+"://"+ln.Addr().String()+"/", "heartbeat", cfg.heartbeat.String())
	err = srv.Serve(serveCtx, ln)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		log.Info("server stopped")
		return nil
	}
	return err
}

// echoServer handles each connection.
type echoServer struct {
	cfg  config
	log  *slog.Logger
	open atomic.Int64 // connections being handled
}

func (e *echoServer) handle(ctx context.Context, r *wsconn.Request) error {
	c, err := r.Accept(ctx, &wsconn.AcceptOptions{Subprotocol: e.pickSubprotocol(r.Subprotocols)})
	if err != nil {
		return err
	}
	e.open.Add(1)
	defer e.open.Add(-1)
	start := time.Now()
	log := e.log.With("remote", r.RemoteAddr.String())
	if c.Compression() != wsconn.CompressionDisabled {
		log = log.With("compression", c.Compression().String())
	}
	log.Info("connection opened", "path", r.Path, "subprotocol", c.Subprotocol())

	messages := 0 // received (and echoed)
	err = nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
		if e.cfg.heartbeat.Enabled {
			n.Go(func(ctx context.Context) error {
				return heartbeat.Run(ctx, c, &heartbeat.Options{Timeout: e.cfg.heartbeat.Timeout, Interval: e.cfg.heartbeat.Interval})
			})
		}
		for {
			m, err := c.Receive(ctx)
			if err != nil {
				return err
			}
			messages++
			if err := c.Send(ctx, m); err != nil {
				return err
			}
		}
	})

	if ctx.Err() != nil {
		// ctx is cancelled when the connection closes or the server shuts
		// down; its cause says which.
		err = context.Cause(ctx)
	}
	attrs := []any{"messages", messages, "duration", time.Since(start).Round(time.Millisecond)}
	var closed *wsconn.ConnectionClosedError
	switch {
	case errors.As(err, &closed):
		log.Info("connection closed", append(attrs, "code", int(closed.Reason.Code), "reason", closed.Reason.Reason)...)
	case errors.Is(err, heartbeat.ErrTooSlow):
		// Close with 1011, as Python's websockets does on a ping timeout
		// (returning the error would send 1011 too, and log it at Error);
		// since the client did not answer the ping, wsconn sends the frame
		// without waiting for the closing handshake. The handler then
		// returns nil, and the connection, already closing, gets no other
		// Close frame.
		c.Close(context.WithoutCancel(ctx), wsconn.StatusInternalError, "ping timeout")
		log.Warn("client stopped answering pings; dropping it", append(attrs, "code", int(wsconn.StatusInternalError))...)
	case errors.Is(err, wsconn.ErrServerClosed):
		log.Info("connection closed by shutdown", attrs...)
	default:
		// Unexpected: returning the error closes with 1011 and logs it.
		return err
	}
	return nil
}

// pickSubprotocol returns the first subprotocol the client offered that the
// server speaks, or "".
func (e *echoServer) pickSubprotocol(offered []string) string {
	for _, p := range offered {
		if slices.Contains(e.cfg.subprotocols, strings.TrimSpace(p)) {
			return p
		}
	}
	return ""
}
