package main_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/examples/internal/extest"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/wsconn"
)

// The wsdump-like behaviour: messages, pongs, pings and the close printed in
// the order they arrive, and the flags -raw, -text, -timings, -eof-wait and
// -pings.

// runMerged runs the client with stdin and args to its end and returns its
// stdout and stderr interleaved as written, and its exit code.
func runMerged(t *testing.T, stdin string, args ...string) (output string, code int) {
	t.Helper()
	p := extest.StartMerged(t, strings.NewReader(stdin), extest.Build(t, "."), args...)
	code = p.Wait(t)
	return p.Stdout(), code
}

// untilClosed waits, in a handler, until the client closes.
func untilClosed(ctx context.Context, c *wsconn.Conn) error {
	for {
		if _, err := c.Receive(ctx); err != nil {
			if errors.Is(err, wsconn.ErrConnectionClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// The script, piped: send hello / ping / close 1000 bye. The wsconn
// server answers the ping and only then echoes hello (from its OnPing hook,
// before it reads anything else), so the pong arrives first and the echo
// after it, possibly after the client has sent its Close: the client prints
// the pong, the echo, and the close, in that order.
func TestPipedScriptPrintsInOrderOfArrival(t *testing.T) {
	url := startServer(t, func(ctx context.Context, r *wsconn.Request) error {
		var conn atomic.Pointer[wsconn.Conn]
		accepted := make(chan struct{})
		c, err := r.Accept(ctx, &wsconn.AcceptOptions{OnPing: func([]byte) {
			<-accepted
			c := conn.Load()
			// hello came before the ping, so it is queued already.
			rctx, cancel := context.WithTimeout(ctx, wstest.Timeout)
			defer cancel()
			if m, err := c.Receive(rctx); err == nil {
				c.Send(rctx, m)
			}
		}})
		if err != nil {
			return err
		}
		conn.Store(c)
		close(accepted)
		<-c.Done()
		return nil
	})
	for range 3 {
		out, code := runMerged(t, "send hello\nping\nclose 1000 bye\n", url)
		if code != 0 {
			t.Fatalf("exit code %d; output:\n%s", code, out)
		}
		matchLines(t, "output", out,
			regexp.QuoteMeta(`connected to `+url+` (type "help" for the commands)`),
			`pong after \S+`,
			`< hello`,
			regexp.QuoteMeta(`closed: 1000 (normal closure): "bye"`))
	}
}

// startGorillaPeer runs a plain gorilla server that answers a ping with the
// last message it received and then the pong, written back to back, so that
// the client reads both at once: the test of the client's ordering when a
// message and a control frame arrive together. It answers a Close with a
// message, "after your close", and then its own Close: the test that close
// still prints what arrives before the server's Close reply.
func startGorillaPeer(t *testing.T) string {
	up := websocket.Upgrader{}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		var last []byte
		ws.SetPingHandler(func(payload string) error {
			deadline := time.Now().Add(wstest.Timeout)
			if err := ws.WriteMessage(websocket.TextMessage, last); err != nil {
				return err
			}
			return ws.WriteControl(websocket.PongMessage, []byte(payload), deadline)
		})
		ws.SetCloseHandler(func(code int, text string) error {
			if err := ws.WriteMessage(websocket.TextMessage, []byte("after your close")); err != nil {
				return err
			}
			return ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(wstest.Timeout))
		})
		for {
			_, m, err := ws.ReadMessage()
			if err != nil {
				return
			}
			last = m
		}
	})}
	ln := wstest.Listen(t)
	done := make(chan struct{})
	go func() { defer close(done); hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close(); <-done })
	return "ws://" + ln.Addr().String() + "/"
}

// The echo and the pong arrive together and are printed in that order; the
// message the server sends after the client's Close is printed before the
// close.
func TestMessageAndPongArrivingTogether(t *testing.T) {
	url := startGorillaPeer(t)
	for range 5 {
		out, code := runMerged(t, "send hello\nping\nclose 1000 bye\n", url)
		if code != 0 {
			t.Fatalf("exit code %d; output:\n%s", code, out)
		}
		matchLines(t, "output", out,
			`connected to .*`,
			`< hello`,
			`pong after \S+`,
			`< after your close`,
			regexp.QuoteMeta(`closed: 1000 (normal closure): "bye"`))
	}
}

// -pings prints the server's pings, in order with the messages around them.
func TestPings(t *testing.T) {
	url := startServer(t, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := c.Receive(ctx); err != nil { // "go"
			return err
		}
		if err := c.SendText(ctx, "one"); err != nil {
			return err
		}
		if err := c.Ping(ctx, []byte("from the server")); err != nil {
			return err
		}
		if err := c.Ping(ctx, []byte{0, 1, 0xfe}); err != nil {
			return err
		}
		if err := c.SendText(ctx, "two"); err != nil {
			return err
		}
		return untilClosed(ctx, c)
	})
	out, code := runMerged(t, "send go\nwait\nwait\n", "-pings", url)
	if code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	matchLines(t, "output", out,
		`connected to .*`,
		`< one`,
		regexp.QuoteMeta(`< [ping] from the server`),
		regexp.QuoteMeta(`< [ping, 3 bytes] 0001fe`),
		`< two`,
		regexp.QuoteMeta(`closed: 1000 (normal closure)`))

	// Without -pings they are answered but not printed.
	out, code = runMerged(t, "send go\nwait\nwait\n", url)
	if code != 0 || strings.Contains(out, "[ping") {
		t.Fatalf("without -pings: exit code %d; output:\n%s", code, out)
	}
}

// -text sends on connecting; -raw prints payloads as they are; sendb sends
// binary.
func TestTextRawAndSendb(t *testing.T) {
	url := startServer(t, wstest.Echo)
	stdout, stderr, code := runClient(t, "wait\nsendb 00 ff 41\nwait\nsendb zz\nclose\n", "-raw", "-text", "sent on connect", url)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	if want := "sent on connect\n\x00\xffA\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	if !strings.Contains(stderr, "sendb: bad hex: ") {
		t.Errorf("stderr does not report the bad hex:\n%s", stderr)
	}

	// Without -raw, binary is shown in hex.
	stdout, stderr, code = runClient(t, "sendb 00ff41\nwait\n", url)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	matchLines(t, "stdout", stdout, regexp.QuoteMeta(`< [binary, 3 bytes] 00ff41`))
}

// -timings starts every line, on stdout and stderr, with the seconds since
// the start, which never decrease.
func TestTimings(t *testing.T) {
	url := startServer(t, wstest.Echo)
	out, code := runMerged(t, "send a\nwait\nping\nsend b\nwait\n", "-timings", url)
	if code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	const stamp = `\[(\d+\.\d{6})\] `
	matchLines(t, "output", out,
		stamp+`connected to .*`,
		stamp+`< a`,
		stamp+`pong after \S+`,
		stamp+`< b`,
		stamp+regexp.QuoteMeta(`closed: 1000 (normal closure)`))
	last := ""
	for _, m := range regexp.MustCompile(`(?m)^`+stamp).FindAllStringSubmatch(out, -1) {
		if len(m[1]) < len(last) || (len(m[1]) == len(last) && m[1] < last) {
			t.Errorf("time %s after %s", m[1], last)
		}
		last = m[1]
	}
}

// -eof-wait goes on printing after the end of input: a reply the server
// sends later is printed, and the server's close ends the wait early.
// Without it the client closes at once and the late reply is not sent.
func TestEOFWait(t *testing.T) {
	late := make(chan error, 2)
	url := startServer(t, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := c.Receive(ctx); err != nil { // "go"
			return err
		}
		timer := time.NewTimer(300 * time.Millisecond) // a slow reply
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
		err = c.SendText(ctx, "late")
		late <- err
		if err != nil {
			return nil
		}
		return c.Close(ctx, wsconn.StatusNormalClosure, "done")
	})

	start := time.Now()
	out, code := runMerged(t, "send go\n", "-eof-wait", "20s", url)
	if code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	matchLines(t, "output", out,
		`connected to .*`,
		`< late`,
		regexp.QuoteMeta(`connection closed: 1000 (normal closure): "done"`))
	if d := time.Since(start); d >= 20*time.Second {
		t.Errorf("the client waited %v, the whole -eof-wait, though the server closed", d)
	}
	if err := <-late; err != nil {
		t.Fatalf("server could not send its late reply: %v", err)
	}

	out, code = runMerged(t, "send go\n", url)
	if code != 0 {
		t.Fatalf("without -eof-wait: exit code %d; output:\n%s", code, out)
	}
	matchLines(t, "output", out, `connected to .*`, regexp.QuoteMeta(`closed: 1000 (normal closure)`))
	if err := wstest.Recv(t, wstest.Context(t, 0), late); !errors.Is(err, wsconn.ErrConnectionClosed) {
		t.Errorf("without -eof-wait the server's late send = %v, want a closed-connection error", err)
	}
}
