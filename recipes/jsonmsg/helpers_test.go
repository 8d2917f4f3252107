package jsonmsg_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsnursery/wsnursery/wsconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pair returns the two ends of a connection over 127.0.0.1; both are closed
// when the test ends. The server end's reader is left to the test.
func pair(t *testing.T, ctx context.Context, opts *wsconn.ServerOptions) (client, server *wsconn.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan *wsconn.Conn, 1)
	srv := wsconn.NewServer(func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		conns <- c
		<-ctx.Done() // the connection closed, or the server shut down
		return nil
	}, opts)
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want context.Canceled", err)
		}
	})
	client, err = wsconn.Dial(ctx, "ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		client.Close(cctx, wsconn.StatusNormalClosure, "")
	})
	select {
	case server = <-conns:
	case <-ctx.Done():
		t.Fatal("server never accepted")
	}
	return client, server
}
