// Command client is an interactive WebSocket client, in the spirit of
// trio-websocket's example client and websocket-client's wsdump.
//
//	go run ./examples/client [flags] URL
//
// It connects to URL (ws:// or wss://), prints every message it receives
// and reads commands from stdin, one per line:
//
//	send TEXT              send TEXT as a text message
//	ping [PAYLOAD]         send a ping and print the round-trip time when its pong arrives
//	wait [TIMEOUT]         wait for the next message not yet waited for (default 10s);
//	                       lets a script be sure a reply arrived before it goes on
//	close [CODE [REASON]]  run the closing handshake (default 1000) and exit
//	help                   list the commands
//
// Blank lines and lines starting with # are ignored, so stdin can be a
// terminal or a script:
//
//	go run ./examples/client ws://127.0.0.1:8000/ < examples/client/testdata/session.txt
//
// End of input closes the connection with 1000. Received messages are
// printed as "< TEXT" on stdout (binary ones in hex); everything else is
// printed on stderr, so stdout holds only the conversation.
//
// The connection lives in a nursery with three tasks: the command loop, a
// receiver that prints messages and, with -heartbeat, a heartbeat. When any
// of them fails (the server closed the connection, or stopped answering
// pings) the others are cancelled and the client exits.
//
// Exit status: 0 after a close command, end of input, or the server closing
// with 1000 or 1001; 1 when the connection fails or ends any other way; 2 on
// bad flags.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsnursery/wsnursery/examples/internal/cliflag"
	"github.com/wsnursery/wsnursery/heartbeat"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/wsconn"
)

// Time limits of the commands.
const (
	pingTimeout  = 10 * time.Second
	waitTimeout  = 10 * time.Second
	closeTimeout = 10 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // a second Ctrl-C kills at once

	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

// errUsage marks a command-line error that has already been reported.
var errUsage = errors.New("usage error")

type config struct {
	url            string
	heartbeat      cliflag.Heartbeat
	header         http.Header
	subprotocols   []string
	proxy          *url.URL
	insecure       bool
	trace          bool
	connectTimeout time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := config{header: http.Header{}}
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: client [flags] URL\n\n"+
			"Connects to a ws:// or wss:// URL, prints what it receives and reads\n"+
			"commands from stdin: send TEXT, ping [PAYLOAD], wait [TIMEOUT],\n"+
			"close [CODE [REASON]], help. Flags:\n")
		fs.PrintDefaults()
	}
	fs.Var(&cfg.heartbeat, "heartbeat", "ping the server: `TIMEOUT,INTERVAL`, or no value for 1s,15s")
	fs.Func("header", "add a handshake header `K:V` (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return errors.New(`want "Key: value"`)
		}
		cfg.header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		return nil
	})
	fs.Func("subprotocol", "offer a subprotocol `name` (repeatable, in order of preference)", func(s string) error {
		cfg.subprotocols = append(cfg.subprotocols, s)
		return nil
	})
	fs.Func("origin", "send an Origin header with this `URL`", func(s string) error {
		cfg.header.Set("Origin", s)
		return nil
	})
	fs.Func("proxy", "connect through an HTTP (CONNECT) or socks5 proxy at `URL`", func(s string) error {
		u, err := url.Parse(s)
		if err != nil {
			return err
		}
		if u.Scheme == "" || u.Host == "" {
			return errors.New("want a URL such as http://127.0.0.1:3128")
		}
		cfg.proxy = u
		return nil
	})
	fs.BoolVar(&cfg.insecure, "insecure", false, "skip TLS certificate verification (wss://)")
	fs.BoolVar(&cfg.trace, "trace", false, "log handshakes, frames and closes on stderr")
	fs.DurationVar(&cfg.connectTimeout, "connect-timeout", 10*time.Second, "limit on connecting (TCP, TLS and handshake)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, errUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "client: want exactly one URL")
		fs.Usage()
		return cfg, errUsage
	}
	cfg.url = fs.Arg(0)
	return cfg, nil
}

// run connects, runs the session and returns nil for a clean end.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	opts := &wsconn.DialOptions{
		Header:         cfg.header,
		Subprotocols:   cfg.subprotocols,
		ConnectTimeout: cfg.connectTimeout,
		// A server that does not answer our Close within this is dropped.
		DisconnectTimeout: closeTimeout,
	}
	if cfg.insecure {
		opts.TLSConfig = &tls.Config{InsecureSkipVerify: true}
	}
	if cfg.proxy != nil {
		opts.Proxy = http.ProxyURL(cfg.proxy)
	}
	if cfg.trace {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}

	s := &session{cfg: cfg, stdin: stdin, stdout: stdout, stderr: stderr, waited: make(chan struct{}, 1)}
	err = wsconn.Open(ctx, cfg.url, opts, s.run)
	var rejected *wsconn.ConnectionRejectedError
	switch {
	case s.connected.Load() && ctx.Err() != nil:
		// Interrupted (Ctrl-C): Open has closed the connection with 1001 (going away: its ctx ended).
		return errors.New("interrupted")
	case s.connected.Load():
		return err
	case errors.As(err, &rejected):
		msg := fmt.Sprintf("failed to connect to %s: server rejected the handshake with HTTP %d %s",
			cfg.url, rejected.StatusCode, http.StatusText(rejected.StatusCode))
		if body := strings.TrimSpace(string(rejected.Body)); body != "" {
			msg += ": " + body
		}
		return errors.New(msg)
	case err != nil:
		return fmt.Errorf("failed to connect: %w", err)
	}
	return nil
}

// session is one connection's life: the command loop, the receiver and the
// heartbeat.
type session struct {
	cfg            config
	stdin          io.Reader
	stdout, stderr io.Writer
	connected      atomic.Bool

	outMu sync.Mutex // keeps lines whole when tasks print at once

	// Messages received and not yet waited for by "wait"; waited is
	// signalled each time one arrives.
	waitMu   sync.Mutex
	unwaited int
	waited   chan struct{}

	closedLocally atomic.Bool // a close command or end of input started the closing handshake
}

func (s *session) out(format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.stdout, format+"\n", args...)
}

func (s *session) info(format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.stderr, format+"\n", args...)
}

// errDone ends the session after a local close.
var errDone = errors.New("session over")

func (s *session) run(ctx context.Context, c *wsconn.Conn) error {
	s.connected.Store(true)
	sub := ""
	if p := c.Subprotocol(); p != "" {
		sub = fmt.Sprintf(", subprotocol %q", p)
	}
	s.info("connected to %s%s (type \"help\" for the commands)", s.cfg.url, sub)
	lines := readLines(ctx, s.stdin)

	var closeErr error
	err := nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
		n.Go(func(ctx context.Context) error { return s.receive(ctx, c) })
		if hb := s.cfg.heartbeat; hb.Enabled {
			n.Go(func(ctx context.Context) error {
				err := heartbeat.Run(ctx, c, &heartbeat.Options{Timeout: hb.Timeout, Interval: hb.Interval})
				if errors.Is(err, heartbeat.ErrTooSlow) {
					s.info("the server did not answer a ping within %v", hb.Timeout)
				}
				return err
			})
		}
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					_, closeErr = s.close(ctx, c, wsconn.StatusNormalClosure, "")
					return errDone
				}
				done, err := s.command(ctx, c, line)
				if done {
					closeErr = err
					return errDone
				}
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
	})
	if s.closedLocally.Load() {
		return closeErr
	}
	if ctx.Err() != nil {
		// Open cancels ctx, with the *ConnectionClosedError as its cause,
		// the moment the connection closes: that is the real reason.
		err = context.Cause(ctx)
	}
	var closed *wsconn.ConnectionClosedError
	if errors.As(err, &closed) {
		s.info("connection closed: %v", closed.Reason)
		switch closed.Reason.Code {
		case wsconn.StatusNormalClosure, wsconn.StatusGoingAway:
			return nil
		}
	}
	return err
}

// readLines reads stdin line by line into a channel that is closed at end of
// input. Its goroutine stops at the first line after ctx is done; a read
// already waiting on a terminal cannot be interrupted, which is harmless
// in a program that is about to exit.
func readLines(ctx context.Context, r io.Reader) <-chan string {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	return lines
}

// receive prints every message until the connection closes.
func (s *session) receive(ctx context.Context, c *wsconn.Conn) error {
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return err
		}
		if m.Type == wsconn.Text {
			s.out("< %s", m.Data)
		} else {
			s.out("< [binary, %d bytes] %s", len(m.Data), hex.EncodeToString(m.Data))
		}
		s.waitMu.Lock()
		s.unwaited++
		s.waitMu.Unlock()
		select {
		case s.waited <- struct{}{}:
		default:
		}
	}
}

// command runs one line of input; done reports that the session is over,
// with err its outcome.
func (s *session) command(ctx context.Context, c *wsconn.Conn, line string) (done bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return false, nil
	}
	name, arg, _ := strings.Cut(line, " ")
	switch name {
	case "send":
		if err := c.SendText(ctx, arg); err != nil {
			s.info("send failed: %v", err)
		}
	case "ping":
		var payload []byte
		if arg != "" {
			payload = []byte(arg)
		}
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		start := time.Now()
		err := c.Ping(pctx, payload)
		rtt := time.Since(start)
		cancel()
		if err != nil {
			s.info("ping failed: %v", err)
		} else {
			s.out("pong after %v", rtt.Round(time.Microsecond))
		}
	case "wait":
		timeout := waitTimeout
		if arg != "" {
			d, err := time.ParseDuration(arg)
			if err != nil {
				s.info("wait: bad timeout: %v", err)
				return false, nil
			}
			timeout = d
		}
		if err := s.wait(ctx, timeout); err != nil {
			s.info("wait failed: %v", err)
		}
	case "close":
		code, reason := wsconn.StatusNormalClosure, ""
		if arg != "" {
			cs, r, _ := strings.Cut(arg, " ")
			n, err := strconv.Atoi(cs)
			if err != nil {
				s.info("close: bad code %q (want e.g. close 1000 bye)", cs)
				return false, nil
			}
			code, reason = wsconn.StatusCode(n), r
		}
		return s.close(ctx, c, code, reason)
	case "help":
		s.info("commands: send TEXT | ping [PAYLOAD] | wait [TIMEOUT] | close [CODE [REASON]] | help")
	default:
		s.info("unknown command %q; type \"help\" for the commands", name)
	}
	return false, nil
}

// wait blocks until a message arrives that no earlier wait has waited for.
func (s *session) wait(ctx context.Context, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.waitMu.Lock()
		if s.unwaited > 0 {
			s.unwaited--
			s.waitMu.Unlock()
			return nil
		}
		s.waitMu.Unlock()
		select {
		case <-s.waited:
		case <-timer.C:
			return fmt.Errorf("no message within %v", timeout)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// close runs the closing handshake and reports how it ended. A code that
// may not be sent is reported and the session goes on (done is false).
func (s *session) close(ctx context.Context, c *wsconn.Conn, code wsconn.StatusCode, reason string) (done bool, err error) {
	s.closedLocally.Store(true)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if err := c.Close(cctx, code, reason); err != nil {
		if _, started := c.CloseReason(); !started {
			s.closedLocally.Store(false)
			s.info("close: %v", err)
			return false, nil
		}
		return true, err
	}
	r, _ := c.CloseReason()
	s.info("closed: %v", r)
	return true, nil
}
