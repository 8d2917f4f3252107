package main_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsnursery/wsnursery/examples/internal/extest"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/wsconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.Cleanup(extest.Cleanup)) }

// runClient runs the client binary with stdin and args to its end and
// returns its stdout, stderr and exit code.
func runClient(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	p := extest.Start(t, strings.NewReader(stdin), extest.Build(t, "."), args...)
	code = p.Wait(t)
	return p.Stdout(), p.Stderr(), code
}

// matchLines checks that text consists of lines matching res, in order.
func matchLines(t *testing.T, what, text string, res ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) != len(res) {
		t.Fatalf("%s has %d lines, want %d:\n%s", what, len(lines), len(res), text)
	}
	for i, re := range res {
		if !regexp.MustCompile("^" + re + "$").MatchString(lines[i]) {
			t.Fatalf("%s line %d = %q, want it to match %q; all of it:\n%s", what, i+1, lines[i], re, text)
		}
	}
}

// TestSessionScript is the acceptance test: the script a user can
// run, fed to the client binary against the server binary.
func TestSessionScript(t *testing.T) {
	srv, url := extest.StartServer(t, extest.Build(t, "../server"))
	script, err := os.ReadFile("testdata/session.txt")
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runClient(t, string(script), url)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	matchLines(t, "stdout", stdout,
		`< hello`,
		`pong after [0-9.]+(µs|ms|s)`,
		`pong after [0-9.]+(µs|ms|s)`)
	matchLines(t, "stderr", stderr,
		regexp.QuoteMeta(`connected to `+url+` (type "help" for the commands)`),
		regexp.QuoteMeta(`closed: 4000 (private): "bye"`))
	srv.WaitStderr(t, regexp.MustCompile(`msg="connection closed" remote=\S+ messages=1 duration=\S+ code=4000 reason=bye`))
}

// TestBareScript runs the three commands of the issue without "wait"
// against the example server. The client prints whatever arrives before the
// server's Close reply (TestPipedScriptPrintsInOrderOfArrival pins that),
// but this server's wsconn answers the client's Close as soon as it reads
// it, and its handler may not have sent the echo by then: the echo may be
// missing, and comes before or after the pong; the pong and the close are
// always there, the close last.
func TestBareScript(t *testing.T) {
	_, url := extest.StartServer(t, extest.Build(t, "../server"))
	out, code := runMerged(t, "send hello\nping\nclose 4000 bye\n", url)
	if code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	if !regexp.MustCompile(`^connected to .*\n(< hello\n)?pong after \S+\n(< hello\n)?closed: 4000 \(private\): "bye"\n$`).MatchString(out) ||
		strings.Count(out, "< hello") > 1 {
		t.Errorf("want the connection, the pong (the echo before or after it, or missing) and the close:\n%s", out)
	}
}

// TestEndOfInput: EOF closes with 1000 and exits 0.
func TestEndOfInput(t *testing.T) {
	srv, url := extest.StartServer(t, extest.Build(t, "../server"))
	stdout, stderr, code := runClient(t, "send one\nwait\n\n# done\n", url)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	matchLines(t, "stdout", stdout, `< one`)
	if !strings.HasSuffix(stderr, "closed: 1000 (normal closure)\n") {
		t.Fatalf("stderr does not end with the close:\n%s", stderr)
	}
	srv.WaitStderr(t, regexp.MustCompile(`msg="connection closed" .*messages=1 .*code=1000`))
}

// TestServerShutdown: SIGTERM to the server closes the client with 1001;
// both exit 0.
func TestServerShutdown(t *testing.T) {
	srv, url := extest.StartServer(t, extest.Build(t, "../server"))
	stdin, w := pipe(t)
	client := extest.Start(t, stdin, extest.Build(t, "."), url)
	stdin.Close()
	if _, err := io.WriteString(w, "send before shutdown\n"); err != nil {
		t.Fatal(err)
	}
	client.WaitStdout(t, regexp.MustCompile(`< before shutdown\n`))
	srv.Signal(t, syscall.SIGTERM)
	if code := client.Wait(t); code != 0 {
		t.Fatalf("client exit code %d; stderr:\n%s", code, client.Stderr())
	}
	if code := srv.Wait(t); code != 0 {
		t.Fatalf("server exit code %d; stderr:\n%s", code, srv.Stderr())
	}
	if !strings.HasSuffix(client.Stderr(), "connection closed: 1001 (going away): \"server shutting down\"\n") {
		t.Fatalf("client stderr does not end with the 1001 close:\n%s", client.Stderr())
	}
	matchLines(t, "client stdout", client.Stdout(), `< before shutdown`)
	log := srv.Stderr()
	for _, want := range []string{`msg="shutting down: closing connections with 1001 (going away)" open=1`, `code=1001 reason="server shutting down"`, `msg="server stopped"`} {
		if !strings.Contains(log, want) {
			t.Errorf("server log lacks %q:\n%s", want, log)
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stdout, stderr, code := runClient(t, "send x\n", "ws://"+addr+"/")
	if code != 1 || stdout != "" {
		t.Fatalf("exit code %d, stdout %q; want 1 and nothing", code, stdout)
	}
	matchLines(t, "stderr", stderr, `client: failed to connect: failed to dial ws://`+regexp.QuoteMeta(addr)+`/: .*connection refused`)
}

func TestRejectedOrigin(t *testing.T) {
	_, url := extest.StartServer(t, extest.Build(t, "../server"))
	_, stderr, code := runClient(t, "", "-origin", "http://elsewhere.test", url)
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	matchLines(t, "stderr", stderr, regexp.QuoteMeta("client: failed to connect to "+url+": server rejected the handshake with HTTP 403 Forbidden: origin not allowed"))
}

func TestSubprotocol(t *testing.T) {
	_, url := extest.StartServer(t, extest.Build(t, "../server"), "-subprotocol", "echo.v2", "-subprotocol", "chat")
	_, stderr, code := runClient(t, "", "-subprotocol", "other", "-subprotocol", "chat", "-subprotocol", "echo.v2", url)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, `connected to `+url+`, subprotocol "chat" `) {
		t.Fatalf("stderr does not name the subprotocol:\n%s", stderr)
	}
}

func TestBadCommands(t *testing.T) {
	_, url := extest.StartServer(t, extest.Build(t, "../server"))
	_, stderr, code := runClient(t, "frobnicate\nclose 999\nclose abc\nwait 1ms\nclose 4001 see you\n", url)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	matchLines(t, "stderr", stderr,
		`connected to .*`,
		regexp.QuoteMeta(`unknown command "frobnicate"; type "help" for the commands`),
		regexp.QuoteMeta(`close: failed to close: status code 999 may not be sent`),
		regexp.QuoteMeta(`close: bad code "abc" (want e.g. close 1000 bye)`),
		regexp.QuoteMeta(`wait failed: no message within 1ms`),
		regexp.QuoteMeta(`closed: 4001 (private): "see you"`))
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"-heartbeat=1s", "ws://x/"}, {"ws://a/", "ws://b/"}} {
		_, stderr, code := runClient(t, "", args...)
		if code != 2 || !strings.Contains(stderr, "usage: client [flags] URL") {
			t.Errorf("args %q: exit code %d, want 2 and the usage; stderr:\n%s", args, code, stderr)
		}
	}
}

// TestTrace: -trace logs wsconn's debug records on stderr.
func TestTrace(t *testing.T) {
	_, url := extest.StartServer(t, extest.Build(t, "../server"))
	_, stderr, code := runClient(t, "send x\nwait\n", "-trace", url)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{`level=DEBUG msg="websocket opened"`, `level=DEBUG msg="websocket message received"`, `level=DEBUG msg="websocket close sent" side=client`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestTLS: a wss:// server with a self-signed certificate is refused
// without -insecure and works with it.
func TestTLS(t *testing.T) {
	certFile, keyFile := extest.SelfSigned(t)
	_, url := extest.StartServer(t, extest.Build(t, "../server"), "-tls-cert", certFile, "-tls-key", keyFile)
	if !strings.HasPrefix(url, "wss://") {
		t.Fatalf("server URL %q is not wss://", url)
	}
	_, stderr, code := runClient(t, "", url)
	if code != 1 || !strings.Contains(stderr, "certificate") {
		t.Fatalf("without -insecure: exit code %d, want 1 and a certificate error; stderr:\n%s", code, stderr)
	}
	stdout, stderr, code := runClient(t, "send secret\nwait\n", "-insecure", url)
	if code != 0 {
		t.Fatalf("with -insecure: exit code %d; stderr:\n%s", code, stderr)
	}
	matchLines(t, "stdout", stdout, `< secret`)
}

// TestHeadersAndProxy: -header and -origin reach the server, through the
// -proxy.
func TestHeadersAndProxy(t *testing.T) {
	url := startHeaderServer(t)
	proxy := wstest.StartProxy(t, nil)
	stdout, stderr, code := runClient(t, "wait\n",
		"-header", "X-Demo: one", "-header", "x-demo:two", "-origin", "http://origin.test",
		"-proxy", "http://"+proxy.Addr, url)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
	}
	matchLines(t, "stdout", stdout, regexp.QuoteMeta(`< X-Demo=[one two] Origin=[http://origin.test]`))
	if got, want := proxy.Targets(), strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/"); len(got) != 1 || got[0] != want {
		t.Fatalf("proxy CONNECT targets = %q, want [%s]", got, want)
	}
}

// TestHeartbeat: a server that stops reading stops answering pings; the
// client's heartbeat notices and the client exits 1.
func TestHeartbeat(t *testing.T) {
	url := startStallingServer(t)
	stdin, w := pipe(t)
	client := extest.Start(t, stdin, extest.Build(t, "."), "-heartbeat=300ms,50ms", url)
	stdin.Close()
	if _, err := io.WriteString(w, "send 1\nsend 2\nsend 3\n"); err != nil {
		t.Fatal(err)
	}
	if code := client.Wait(t); code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", code, client.Stderr())
	}
	stderr := client.Stderr()
	if !strings.Contains(stderr, "the server did not answer a ping within 300ms\n") ||
		!strings.HasSuffix(stderr, "client: heartbeat: peer too slow to answer ping: no pong within 300ms\n") {
		t.Fatalf("stderr does not report the heartbeat's failure and end with its error:\n%s", stderr)
	}
}

// startHeaderServer serves one message per connection naming the X-Demo and
// Origin headers of the handshake.
func startHeaderServer(t *testing.T) string {
	return startServer(t, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		if err := c.SendText(ctx, "X-Demo=["+strings.Join(r.Header.Values("X-Demo"), " ")+"] Origin=["+r.Header.Get("Origin")+"]"); err != nil {
			return err
		}
		_, err = c.Receive(ctx) // until the client closes
		if errors.Is(err, wsconn.ErrConnectionClosed) || ctx.Err() != nil {
			return nil
		}
		return err
	})
}

// startStallingServer accepts and then never reads, so that once the
// connection's queue is full its pings go unanswered.
func startStallingServer(t *testing.T) string {
	return startServer(t, func(ctx context.Context, r *wsconn.Request) error {
		if _, err := r.Accept(ctx, nil); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	})
}

func startServer(t *testing.T, h wsconn.Handler) string {
	t.Helper()
	return wstest.Serve(t, nil, h, &wsconn.ServerOptions{
		CheckOrigin:       func(*http.Request) bool { return true },
		DisconnectTimeout: time.Second,
	}).URL
}

// pipe returns an OS pipe, so that the client reads stdin directly (exec
// would otherwise copy into it with a goroutine that Wait waits for).
// Close r once the process has started; w is closed at the end of the test.
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return r, w
}

// TestInterrupt: Ctrl-C closes the connection with 1001 (going away) and exits 1.
func TestInterrupt(t *testing.T) {
	srv, url := extest.StartServer(t, extest.Build(t, "../server"))
	stdin, _ := pipe(t)
	client := extest.Start(t, stdin, extest.Build(t, "."), url)
	stdin.Close()
	client.WaitStderr(t, regexp.MustCompile(`connected to `))
	client.Signal(t, syscall.SIGINT)
	if code := client.Wait(t); code != 1 || !strings.HasSuffix(client.Stderr(), "client: interrupted\n") {
		t.Fatalf("exit code %d, want 1 and \"interrupted\"; stderr:\n%s", code, client.Stderr())
	}
	srv.WaitStderr(t, regexp.MustCompile(`msg="connection closed" .*code=1001`))
}
