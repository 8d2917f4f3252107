package main_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
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

func dial(t *testing.T, url string, opts *wsconn.DialOptions) *wsconn.Conn {
	t.Helper()
	return wstest.Dial(t, context.Background(), url, opts)
}

func echo(t *testing.T, c *wsconn.Conn, m wsconn.Message) {
	t.Helper()
	ctx := wstest.Context(t, 0)
	if err := c.Send(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := c.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != m.Type || string(got.Data) != string(m.Data) {
		t.Fatalf("echo = %v %q, want %v %q", got.Type, got.Data, m.Type, m.Data)
	}
}

// receiveClosed receives until the connection reports its close, and
// returns the reason.
func receiveClosed(t *testing.T, c *wsconn.Conn) wsconn.CloseReason {
	t.Helper()
	return wstest.ReceiveClose(t, wstest.Context(t, 0), c)
}

// TestGracefulShutdown: SIGTERM or SIGINT closes every client with 1001
// and the server exits 0.
func TestGracefulShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			srv, url := extest.StartServer(t, extest.Build(t, "."))
			a, b := dial(t, url, nil), dial(t, url+"b?x=1", nil)
			echo(t, a, wsconn.Message{Type: wsconn.Text, Data: []byte("hello")})
			echo(t, b, wsconn.Message{Type: wsconn.Binary, Data: []byte{0, 1, 2, 255}})
			srv.Signal(t, sig)
			want := wsconn.CloseReason{Code: wsconn.StatusGoingAway, Reason: "server shutting down"}
			for _, c := range []*wsconn.Conn{a, b} {
				if got := receiveClosed(t, c); got != want {
					t.Errorf("client saw %v, want %v", got, want)
				}
			}
			if code := srv.Wait(t); code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, srv.Stderr())
			}
			log := srv.Stderr()
			for _, re := range []string{
				`msg=listening url=ws://127\.0\.0\.1:\d+/ heartbeat=false\n`,
				`msg="connection opened" remote=127\.0\.0\.1:\d+ path=/ subprotocol=""\n`,
				`msg="connection opened" remote=127\.0\.0\.1:\d+ path="/b\?x=1" subprotocol=""\n`,
				`msg="shutting down: closing connections with 1001 \(going away\)" open=2\n`,
				`msg="connection closed" remote=\S+ messages=1 duration=\S+ code=1001 reason="server shutting down"\n(.|\n)*msg="connection closed" remote=\S+ messages=1 duration=\S+ code=1001 reason="server shutting down"\n`,
				`msg="server stopped"\n$`,
			} {
				if !regexp.MustCompile(re).MatchString(log) {
					t.Errorf("log does not match %q:\n%s", re, log)
				}
			}
		})
	}
}

// TestHeartbeatDropsStalledClient: a client that stops reading stops
// answering pings once its queue is full; the server's heartbeat drops it.
func TestHeartbeatDropsStalledClient(t *testing.T) {
	srv, url := extest.StartServer(t, extest.Build(t, "."), "-heartbeat=1s,20ms") // a 1 s timeout: a loaded CI machine can delay a healthy pong past 200 ms
	c := dial(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), extest.Timeout)
	defer cancel()
	for _, s := range []string{"1", "2", "3"} { // the echoes fill the queue and block the reader
		if err := c.SendText(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	srv.WaitStderr(t, regexp.MustCompile(`level=WARN msg="client stopped answering pings; dropping it" remote=\S+ messages=3 duration=\S+ code=1011`))
	// The queued echoes, then the Close frame the server sent before
	// dropping the connection.
	if got := receiveClosed(t, c); got != (wsconn.CloseReason{Code: wsconn.StatusInternalError, Reason: "ping timeout"}) {
		t.Errorf("the dropped client saw %v, want 1011 \"ping timeout\"", got)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("the dropped connection is not done")
	}
}

func TestMaxMessageSize(t *testing.T) {
	_, url := extest.StartServer(t, extest.Build(t, "."), "-max-message-size=10")
	c := dial(t, url, nil)
	echo(t, c, wsconn.Message{Type: wsconn.Text, Data: []byte("0123456789")})
	ctx, cancel := context.WithTimeout(context.Background(), extest.Timeout)
	defer cancel()
	if err := c.SendText(ctx, "0123456789+"); err != nil {
		t.Fatal(err)
	}
	if got := receiveClosed(t, c); got.Code != wsconn.StatusMessageTooBig {
		t.Fatalf("closed with %v, want 1009", got)
	}
}

func TestTLS(t *testing.T) {
	certFile, keyFile := extest.SelfSigned(t)
	_, url := extest.StartServer(t, extest.Build(t, "."), "-tls-cert", certFile, "-tls-key", keyFile)
	if !strings.HasPrefix(url, "wss://127.0.0.1:") {
		t.Fatalf("URL %q, want wss://127.0.0.1:…", url)
	}
	pemData, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemData)
	c := dial(t, url, &wsconn.DialOptions{TLSConfig: &tls.Config{RootCAs: roots}})
	echo(t, c, wsconn.Message{Type: wsconn.Text, Data: []byte("over TLS")})
}

func TestBadArguments(t *testing.T) {
	bin := extest.Build(t, ".")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-heartbeat=fast"}, 2, `invalid boolean value "fast" for -heartbeat: want "TIMEOUT,INTERVAL"`},
		{[]string{"-tls-cert", "x.pem"}, 2, "-tls-cert and -tls-key go together"},
		{[]string{"-max-message-size=0"}, 2, "-max-message-size must be positive"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"-addr", busy.Addr().String()}, 1, "server: failed to listen: "},
		{[]string{"-addr", "127.0.0.1:0", "-tls-cert", "missing.pem", "-tls-key", "missing.pem"}, 1, "server: failed to load TLS certificate: "},
	} {
		p := extest.Start(t, nil, bin, tc.args...)
		if code := p.Wait(t); code != tc.code || !strings.Contains(p.Stderr(), tc.want) {
			t.Errorf("server %q: exit code %d, stderr:\n%s\nwant code %d and %q", tc.args, code, p.Stderr(), tc.code, tc.want)
		}
	}
}

// TestShutdownWithoutClients: a signal stops an idle server promptly.
func TestShutdownWithoutClients(t *testing.T) {
	srv, _ := extest.StartServer(t, extest.Build(t, "."))
	start := time.Now()
	srv.Signal(t, syscall.SIGTERM)
	if code := srv.Wait(t); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, srv.Stderr())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
}
