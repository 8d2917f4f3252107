package wstest_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/wsconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var _ wstest.TB = (*testing.T)(nil)
var _ wstest.TB = (*testing.B)(nil)
var _ wstest.TB = (*testing.F)(nil)

// roundTrip checks that c echoes a text message.
func roundTrip(t *testing.T, ctx context.Context, c *wsconn.Conn) {
	t.Helper()
	if err := c.SendText(ctx, "are you there?"); err != nil {
		t.Fatalf("SendText: %v", err)
	}
	m, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if m.Type != wsconn.Text || string(m.Data) != "are you there?" {
		t.Fatalf("Receive = %v %q, want the echo", m.Type, m.Data)
	}
}

func TestServeEchoDial(t *testing.T) {
	ctx := wstest.Context(t, 0)
	s := wstest.Serve(t, nil, wstest.Echo, nil)
	if !strings.HasPrefix(s.URL, "ws://127.0.0.1:") || !strings.HasSuffix(s.URL, "/") {
		t.Fatalf("URL = %q, want ws://127.0.0.1:PORT/", s.URL)
	}
	c := wstest.Dial(t, ctx, s.URL, nil)
	roundTrip(t, ctx, c)
	// Stop closes the open connection with 1001 and is idempotent (the
	// cleanup calls it again).
	s.Stop()
	if r := wstest.ReceiveClose(t, ctx, c); r.Code != wsconn.StatusGoingAway {
		t.Fatalf("after Stop the client saw %v, want 1001", r)
	}
}

func TestPair(t *testing.T) {
	ctx := wstest.Context(t, 0)
	client, server := wstest.Pair(t, ctx, nil)
	if err := server.SendText(ctx, "from the server"); err != nil {
		t.Fatal(err)
	}
	m, err := client.Receive(ctx)
	if err != nil || string(m.Data) != "from the server" {
		t.Fatalf("client Receive = %q, %v", m.Data, err)
	}
	if err := client.Close(ctx, wsconn.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	_, err = server.Receive(ctx)
	wstest.WantClosed(t, err, wsconn.StatusNormalClosure, "bye")
}

func proxyVia(scheme string, user *url.Userinfo, addr string) func(*http.Request) (*url.URL, error) {
	return func(*http.Request) (*url.URL, error) {
		return &url.URL{Scheme: scheme, User: user, Host: addr}, nil
	}
}

func TestHTTPConnectProxy(t *testing.T) {
	ctx := wstest.Context(t, 0)
	s := wstest.Serve(t, nil, wstest.Echo, nil)

	t.Run("to the target", func(t *testing.T) {
		p := wstest.StartProxy(t, nil)
		c := wstest.Dial(t, ctx, s.URL, &wsconn.DialOptions{Proxy: proxyVia("http", nil, p.Addr)})
		roundTrip(t, ctx, c)
		if got := p.Targets(); !slices.Equal(got, []string{s.Addr}) {
			t.Errorf("Targets = %q, want [%s]", got, s.Addr)
		}
	})
	t.Run("only loopback targets", func(t *testing.T) {
		p := wstest.StartProxy(t, nil)
		_, err := wsconn.Dial(ctx, "ws://ws.test/", &wsconn.DialOptions{Proxy: proxyVia("http", nil, p.Addr)})
		if err == nil || !strings.Contains(err.Error(), "Forbidden") {
			t.Errorf("Dial to ws.test through the proxy = %v, want a 403 refusal", err)
		}
	})
	t.Run("credentials", func(t *testing.T) {
		p := wstest.StartProxy(t, &wstest.ProxyOptions{User: "alice", Password: "s3cret pw", Upstream: s.Addr})
		c := wstest.Dial(t, ctx, "ws://ws.test:8080/", &wsconn.DialOptions{
			Proxy: proxyVia("http", url.UserPassword("alice", "s3cret pw"), p.Addr),
		})
		roundTrip(t, ctx, c)
		_, err := wsconn.Dial(ctx, "ws://ws.test:8080/", &wsconn.DialOptions{
			Proxy: proxyVia("http", url.UserPassword("alice", "wrong"), p.Addr),
		})
		if err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required") {
			t.Errorf("Dial with the wrong password = %v, want a 407 refusal", err)
		}
		if got := p.Targets(); !slices.Equal(got, []string{"ws.test:8080", "ws.test:8080"}) {
			t.Errorf("Targets = %q, want ws.test:8080 twice", got)
		}
	})
}

func TestSOCKS5Proxy(t *testing.T) {
	ctx := wstest.Context(t, 0)
	s := wstest.Serve(t, nil, wstest.Echo, nil)
	p := wstest.StartProxy(t, &wstest.ProxyOptions{SOCKS5: true, Upstream: s.Addr})
	c := wstest.Dial(t, ctx, "ws://ws.test/", &wsconn.DialOptions{Proxy: proxyVia("socks5", nil, p.Addr)})
	roundTrip(t, ctx, c)
	if got := p.Targets(); !slices.Equal(got, []string{"ws.test:80"}) {
		t.Errorf("Targets = %q, want [ws.test:80]", got)
	}
}
