package heartbeat_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/heartbeat"
	"github.com/wsnursery/wsnursery/internal/pipenet"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/nursery"
	"github.com/wsnursery/wsnursery/wsconn"
)

// The heartbeat recipe end to end, on virtual time: wsconn connections over
// in-memory pipes, supervised by a nursery.

const (
	hbTimeout  = time.Second
	hbInterval = 2 * time.Second
)

// pipeServer serves h on an in-memory listener until the test ends (and
// checks how Serve ended) and returns dial options that reach it.
func pipeServer(t *testing.T, h wsconn.Handler) *wsconn.DialOptions {
	ln := pipenet.Listen()
	wstest.Serve(t, ln, h, nil)
	return &wsconn.DialOptions{NetDialContext: ln.Dial}
}

// The client's peer stops reading (its queue is full and nobody receives),
// so pings go unanswered: the heartbeat fails with ErrTooSlow within
// timeout+interval, that error cancels the reader and the producer, and Open
// returns it without waiting out the 60 s disconnect timeout.
func TestSupervisionPeerStopsAnswering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := pipeServer(t, func(ctx context.Context, r *wsconn.Request) error {
			if _, err := r.Accept(ctx, nil); err != nil {
				return err
			}
			<-ctx.Done() // accepts, never receives
			return nil
		})
		var mu sync.Mutex
		causes := map[string]error{}
		record := func(task string, ctx context.Context) {
			mu.Lock()
			defer mu.Unlock()
			causes[task] = context.Cause(ctx)
		}
		start := time.Now()
		err := wsconn.Open(context.Background(), "ws://pipe/", opts, func(ctx context.Context, c *wsconn.Conn) error {
			return nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
				n.Go(func(ctx context.Context) error {
					return heartbeat.Run(ctx, c, &heartbeat.Options{Timeout: hbTimeout, Interval: hbInterval})
				})
				n.Go(func(ctx context.Context) error {
					_, err := c.Receive(ctx)
					record("reader", ctx)
					return err
				})
				n.Go(func(ctx context.Context) error {
					for {
						if err := c.SendText(ctx, "tick"); err != nil {
							record("producer", ctx)
							return err
						}
						time.Sleep(100 * time.Millisecond)
					}
				})
				return nil
			})
		})
		elapsed := time.Since(start)
		if !errors.Is(err, heartbeat.ErrTooSlow) || errors.Is(err, wsconn.ErrConnectionClosed) {
			t.Fatalf("Open = %v, want ErrTooSlow", err)
		}
		if elapsed > hbTimeout+hbInterval {
			t.Fatalf("detected after %v, want within %v", elapsed, hbTimeout+hbInterval)
		}
		for _, task := range []string{"reader", "producer"} {
			if !errors.Is(causes[task], heartbeat.ErrTooSlow) {
				t.Errorf("%s cancelled with %v, want ErrTooSlow", task, causes[task])
			}
		}
		t.Logf("peer stopped answering: Open returned after %v: %v", elapsed, err)
	})
}

// The peer closes with 1001: the heartbeat and its siblings are cancelled
// with the close error as cause, and Open reports the close.
func TestSupervisionPeerCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := pipeServer(t, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			time.Sleep(5 * time.Second)
			return c.Close(ctx, wsconn.StatusGoingAway, "restarting")
		})
		var hbCause error
		start := time.Now()
		err := wsconn.Open(context.Background(), "ws://pipe/", opts, func(ctx context.Context, c *wsconn.Conn) error {
			return nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
				n.Go(func(ctx context.Context) error {
					err := heartbeat.Run(ctx, c, &heartbeat.Options{Timeout: hbTimeout, Interval: hbInterval})
					hbCause = context.Cause(ctx)
					return err
				})
				n.Go(func(ctx context.Context) error {
					for {
						if _, err := c.Receive(ctx); err != nil {
							return err
						}
					}
				})
				return nil
			})
		})
		var closed *wsconn.ConnectionClosedError
		if !errors.As(err, &closed) || closed.Reason.Code != wsconn.StatusGoingAway || closed.Reason.Reason != "restarting" {
			t.Fatalf("Open = %v, want the 1001 close", err)
		}
		if !errors.As(hbCause, &closed) || closed.Reason.Code != wsconn.StatusGoingAway {
			t.Fatalf("heartbeat cancelled with %v, want the 1001 close", hbCause)
		}
		if elapsed := time.Since(start); elapsed != 5*time.Second {
			t.Fatalf("Open returned after %v, want at the close (5s)", elapsed)
		}
	})
}

// A ping waiting when the peer closes returns the close error at once, not
// at the end of its timeout.
func TestSupervisionPeerClosesDuringPing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := pipenet.Listen()
		up := websocket.Upgrader{}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer ws.NetConn().Close()
			ws.SetPingHandler(func(string) error { return nil }) // a peer that never answers pings
			go func() {
				time.Sleep(5 * time.Second)
				ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1001, "restarting"), time.Now().Add(time.Second))
			}()
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		})}
		served := make(chan struct{})
		go func() { hs.Serve(ln); close(served) }()
		defer func() { hs.Close(); <-served }()

		c, err := wsconn.Dial(context.Background(), "ws://pipe/", &wsconn.DialOptions{NetDialContext: ln.Dial})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background(), wsconn.StatusNormalClosure, "")
		start := time.Now()
		err = heartbeat.Run(context.Background(), c, &heartbeat.Options{Timeout: time.Minute, Interval: hbInterval})
		var closed *wsconn.ConnectionClosedError
		if !errors.As(err, &closed) || closed.Reason.Code != wsconn.StatusGoingAway || errors.Is(err, heartbeat.ErrTooSlow) {
			t.Fatalf("heartbeat = %v, want the 1001 close", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Fatalf("heartbeat returned after %v, want at the close (5s)", d)
		}
	})
}

// On the server: a handler's heartbeat drops a client that stopped
// reading within timeout+interval, and the handler returns.
func TestSupervisionServerDropsDeadClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handlerErr := make(chan error, 1)
		var detected time.Duration
		start := time.Now()
		opts := pipeServer(t, func(ctx context.Context, r *wsconn.Request) error {
			c, err := r.Accept(ctx, nil)
			if err != nil {
				return err
			}
			err = nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
				n.Go(func(ctx context.Context) error {
					return heartbeat.Run(ctx, c, &heartbeat.Options{Timeout: hbTimeout, Interval: hbInterval})
				})
				n.Go(func(ctx context.Context) error { // pushes updates to the client
					for {
						if err := c.SendText(ctx, "update"); err != nil {
							return err
						}
						time.Sleep(100 * time.Millisecond)
					}
				})
				return nil
			})
			detected = time.Since(start)
			handlerErr <- err
			return err
		})
		opts.MessageQueueSize = 1
		c, err := wsconn.Dial(context.Background(), "ws://pipe/", opts) // never receives
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background(), wsconn.StatusNormalClosure, "")
		if err := <-handlerErr; !errors.Is(err, heartbeat.ErrTooSlow) {
			t.Fatalf("handler = %v, want ErrTooSlow", err)
		}
		if detected > hbTimeout+hbInterval {
			t.Fatalf("dead client detected after %v, want within %v", detected, hbTimeout+hbInterval)
		}
		// The client's own reader is parked on its full queue, so only its
		// Close (deferred) notices that the server has gone.
	})
}
