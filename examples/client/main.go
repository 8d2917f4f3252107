// Command client is an interactive WebSocket client, in the spirit of
// trio-websocket's example client and websocket-client's wsdump.
//
//	go run ./examples/client [flags] URL
//
// It connects to URL (ws:// or wss://), prints every message it receives
// and reads commands from stdin, one per line:
//
//	send TEXT              send TEXT as a text message
//	sendb HEX              send the bytes HEX (e.g. 00ff10, spaces allowed) as a binary message
//	ping [PAYLOAD]         send a ping and print the round-trip time when its pong arrives
//	wait [TIMEOUT]         wait for the next message not yet waited for (default 10s);
//	                       lets a script be sure a reply arrived before it goes on
//	close [CODE [REASON]]  run the closing handshake (default 1000) and exit; messages
//	                       that arrive before the server's Close reply are still printed
//	help                   list the commands
//
// Blank lines and lines starting with # are ignored, so stdin can be a
// terminal or a script:
//
//	go run ./examples/client ws://127.0.0.1:8000/ < examples/client/testdata/session.txt
//
// End of input closes the connection with 1000, after -eof-wait if set.
// Received messages are printed as "< TEXT" on stdout (binary ones in hex,
// or both as they are with -raw); everything else is printed on stderr, so
// stdout holds only the conversation. Messages, pongs and (with -pings) the
// server's pings are printed in the order they arrive.
//
// Flags in the manner of wsdump: -text MSG sends MSG on connecting; -raw
// prints messages without decoration; -timings starts every line with the
// seconds since the client started; -eof-wait DURATION keeps printing for
// that long after the end of input before closing; -pings prints the pings
// the server sends (-trace logs them too, with everything else).
// -compress offers permessage-deflate; "connected" says when the server
// accepted it.
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
	"unicode"
	"unicode/utf8"

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
	text           string        // sent on connecting, if set
	raw            bool          // messages without decoration
	timings        bool          // elapsed seconds on every line
	eofWait        time.Duration // printing goes on this long after the end of input
	pings          bool          // print the server's pings
	compress       bool          // offer permessage-deflate
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := config{header: http.Header{}}
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: client [flags] URL\n\n"+
			"Connects to a ws:// or wss:// URL, prints what it receives and reads\n"+
			"commands from stdin: send TEXT, sendb HEX, ping [PAYLOAD],\n"+
			"wait [TIMEOUT], close [CODE [REASON]], help. Flags:\n")
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
	fs.StringVar(&cfg.text, "text", "", "send the text `MSG` on connecting")
	fs.BoolVar(&cfg.raw, "raw", false, "print messages as they are, without \"< \" or hex")
	fs.BoolVar(&cfg.timings, "timings", false, "start every line with the seconds since the client started")
	fs.DurationVar(&cfg.eofWait, "eof-wait", 0, "after the end of input, go on printing for this `DURATION` before closing")
	fs.BoolVar(&cfg.pings, "pings", false, "print the pings the server sends")
	fs.BoolVar(&cfg.compress, "compress", false, "offer permessage-deflate compression")
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
	if cfg.eofWait < 0 {
		fmt.Fprintln(stderr, "client: -eof-wait must not be negative")
		return cfg, errUsage
	}
	cfg.url = fs.Arg(0)
	return cfg, nil
}

// run connects, runs the session and returns nil for a clean end.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	start := time.Now()
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	s := &session{cfg: cfg, stdin: stdin, stdout: stdout, stderr: stderr, start: start,
		waited: make(chan struct{}, 1), recvEnded: make(chan struct{})}
	opts := &wsconn.DialOptions{
		Header:         cfg.header,
		Subprotocols:   cfg.subprotocols,
		ConnectTimeout: cfg.connectTimeout,
		// A server that does not answer our Close within this is dropped.
		DisconnectTimeout: closeTimeout,
		// No queue: the reader hands each message to the receiver before it
		// reads the next frame, which is how pongs and pings are printed in
		// order with the messages (see session.inOrder).
		MessageQueueSize: -1,
		OnPong:           s.onPong,
	}
	if cfg.compress {
		opts.Compression = wsconn.CompressionNoContextTakeover
	}
	if cfg.pings {
		opts.OnPing = s.onPing
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
	start          time.Time // for -timings
	connected      atomic.Bool

	outMu sync.Mutex // keeps lines whole when tasks print at once

	// Lines printed in order with the messages: see inOrder.
	evMu      sync.Mutex
	events    []*event
	wake      context.CancelCauseFunc // interrupts the receiver's Receive; nil when not in it
	recvEnded chan struct{}           // closed when the receiver has returned

	// The ping command waiting for its pong.
	pingMu      sync.Mutex
	pingPayload string
	pingStart   time.Time
	pingActive  bool
	pings       int // ping commands without a payload so far

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
	s.line(s.stdout, []byte(fmt.Sprintf(format, args...)))
}

func (s *session) info(format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	s.line(s.stderr, []byte(fmt.Sprintf(format, args...)))
}

// line writes b and a newline to w, after the time with -timings. s.outMu
// must be held.
func (s *session) line(w io.Writer, b []byte) {
	var buf []byte
	if s.cfg.timings {
		buf = fmt.Appendf(buf, "[%.6f] ", time.Since(s.start).Seconds())
	}
	buf = append(append(buf, b...), '\n')
	w.Write(buf)
}

// errDone ends the session after a local close.
var errDone = errors.New("session over")

func (s *session) run(ctx context.Context, c *wsconn.Conn) error {
	s.connected.Store(true)
	sub := ""
	if p := c.Subprotocol(); p != "" {
		sub = fmt.Sprintf(", subprotocol %q", p)
	}
	if c.Compression() != wsconn.CompressionDisabled {
		sub += ", permessage-deflate"
	}
	s.info("connected to %s%s (type \"help\" for the commands)", s.cfg.url, sub)
	if s.cfg.text != "" {
		if err := c.SendText(ctx, s.cfg.text); err != nil {
			s.info("send failed: %v", err)
		}
	}
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
					if !s.eofWait(ctx) {
						return context.Cause(ctx)
					}
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

// errWake interrupts the receiver's Receive so that it prints the lines
// queued by inOrder.
var errWake = errors.New("lines to print")

// receive prints every message until the connection closes, and the lines
// that inOrder queues between them.
func (s *session) receive(ctx context.Context, c *wsconn.Conn) error {
	defer close(s.recvEnded)
	for {
		s.printEvents()
		rctx, cancel := context.WithCancelCause(ctx)
		s.evMu.Lock()
		if len(s.events) > 0 {
			s.evMu.Unlock()
			cancel(nil)
			continue
		}
		s.wake = cancel
		s.evMu.Unlock()
		m, err := c.Receive(rctx)
		s.evMu.Lock()
		s.wake = nil
		s.evMu.Unlock()
		woken := context.Cause(rctx) == errWake
		cancel(nil)
		if err != nil {
			if woken && ctx.Err() == nil {
				continue
			}
			s.printEvents()
			return err
		}
		s.printMessage(m)
		s.waitMu.Lock()
		s.unwaited++
		s.waitMu.Unlock()
		select {
		case s.waited <- struct{}{}:
		default:
		}
	}
}

func (s *session) printMessage(m wsconn.Message) {
	switch {
	case s.cfg.raw:
		s.outMu.Lock()
		s.line(s.stdout, m.Data)
		s.outMu.Unlock()
	case m.Type == wsconn.Text:
		s.out("< %s", m.Data)
	default:
		s.out("< [binary, %d bytes] %s", len(m.Data), hex.EncodeToString(m.Data))
	}
}

// An event is a line printed by inOrder.
type event struct {
	print func()
	done  chan struct{} // closed once printed
}

// inOrder prints a line about a control frame (a pong, a ping) in order with
// the messages. It runs in wsconn's reader, inside OnPong or OnPing, and the
// reader is handing messages one at a time to the receiver (there is no
// queue): every message that arrived before the frame has been handed over,
// and none after it can be until inOrder returns. So inOrder queues the line
// for the receiver, wakes it, and waits until the receiver has printed the
// message it holds, if any, and then the line. Once the receiver has
// returned, inOrder prints the line itself.
func (s *session) inOrder(print func()) {
	e := &event{print: print, done: make(chan struct{})}
	s.evMu.Lock()
	s.events = append(s.events, e)
	if s.wake != nil {
		s.wake(errWake)
	}
	s.evMu.Unlock()
	select {
	case <-e.done:
		return
	case <-s.recvEnded:
	}
	select {
	case <-e.done: // printed by the receiver's last round
	default:
		print()
	}
}

// printEvents prints the lines queued by inOrder.
func (s *session) printEvents() {
	s.evMu.Lock()
	events := s.events
	s.events = nil
	s.evMu.Unlock()
	for _, e := range events {
		e.print()
		close(e.done)
	}
}

// onPong prints the round-trip time of the ping command's pong.
func (s *session) onPong(payload []byte) {
	s.pingMu.Lock()
	match := s.pingActive && string(payload) == s.pingPayload
	if match {
		s.pingActive = false
	}
	rtt := time.Since(s.pingStart)
	s.pingMu.Unlock()
	if match {
		s.inOrder(func() { s.out("pong after %v", rtt.Round(time.Microsecond)) })
	}
}

// onPing prints a ping from the server (-pings).
func (s *session) onPing(payload []byte) {
	s.inOrder(func() {
		if utf8.Valid(payload) && !strings.ContainsFunc(string(payload), unicode.IsControl) {
			s.out("< [ping] %s", payload)
		} else {
			s.out("< [ping, %d bytes] %s", len(payload), hex.EncodeToString(payload))
		}
	})
}

// eofWait waits -eof-wait after the end of input, printing what arrives;
// it reports false if the session ended meanwhile.
func (s *session) eofWait(ctx context.Context) bool {
	if s.cfg.eofWait <= 0 {
		return true
	}
	t := time.NewTimer(s.cfg.eofWait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
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
	case "sendb":
		b, err := hex.DecodeString(strings.Join(strings.Fields(arg), ""))
		if err != nil {
			s.info("sendb: bad hex: %v", err)
			return false, nil
		}
		if err := c.SendBinary(ctx, b); err != nil {
			s.info("send failed: %v", err)
		}
	case "ping":
		s.ping(ctx, c, arg)
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
		s.info("commands: send TEXT | sendb HEX | ping [PAYLOAD] | wait [TIMEOUT] | close [CODE [REASON]] | help")
	default:
		s.info("unknown command %q; type \"help\" for the commands", name)
	}
	return false, nil
}

// ping sends a ping and waits for its pong, which onPong prints. Without a
// payload it sends a counter, so that its pong is told apart from the
// heartbeat's.
func (s *session) ping(ctx context.Context, c *wsconn.Conn, payload string) {
	s.pingMu.Lock()
	if payload == "" {
		s.pings++
		payload = "client-" + strconv.Itoa(s.pings)
	}
	s.pingPayload, s.pingStart, s.pingActive = payload, time.Now(), true
	s.pingMu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := c.Ping(pctx, []byte(payload)); err != nil {
		s.pingMu.Lock()
		s.pingActive = false
		s.pingMu.Unlock()
		s.info("ping failed: %v", err)
	}
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

// close runs the closing handshake and reports how it ended; the messages
// that arrive before the server's Close reply are printed first. A code that
// may not be sent is reported and the session goes on (done is false).
func (s *session) close(ctx context.Context, c *wsconn.Conn, code wsconn.StatusCode, reason string) (done bool, err error) {
	s.closedLocally.Store(true)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	err = c.CloseReceiving(cctx, code, reason)
	if _, started := c.CloseReason(); err != nil && !started {
		s.closedLocally.Store(false)
		s.info("close: %v", err)
		return false, nil
	}
	// The receiver prints what the handshake delivered, then returns.
	select {
	case <-s.recvEnded:
	case <-cctx.Done():
	}
	if err != nil {
		return true, err
	}
	r, _ := c.CloseReason()
	s.info("closed: %v", r)
	return true, nil
}
