package wsconn_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/wsnursery/wsnursery/wsconn"
)

// closePeer is a raw peer that reports the Close frame it receives and
// answers it with the frame from echo (nil: no answer, keep reading).
func closePeer(t *testing.T, echo func(code int, text string) []byte) (url string, got chan *websocket.CloseError) {
	got = make(chan *websocket.CloseError, 1)
	url = rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.SetCloseHandler(func(code int, text string) error {
			got <- &websocket.CloseError{Code: code, Text: text}
			if b := echo(code, text); b != nil {
				ws.WriteControl(websocket.CloseMessage, b, time.Now().Add(5*time.Second))
			}
			return nil
		})
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	})
	return url, got
}

// Close sends its frame, waits for the peer's, and ends with what the peer
// echoed; CloseReason is set as soon as closing starts.
func TestCloseHandshake(t *testing.T) {
	release := make(chan struct{})
	url, got := closePeer(t, func(int, string) []byte {
		<-release
		return websocket.FormatCloseMessage(4002, "your turn")
	})
	c := dial(t, url, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	errc := make(chan error)
	go func() { errc <- c.Close(ctx, 4001, "mine") }()
	if ce := <-got; ce.Code != 4001 || ce.Text != "mine" {
		t.Fatalf("peer saw %v", ce)
	}
	if r := closeReason(t, c); r != (wsconn.CloseReason{Code: 4001, Reason: "mine"}) {
		t.Fatalf("CloseReason while closing = %v", r)
	}
	select {
	case err := <-errc:
		t.Fatalf("Close returned %v before the peer answered", err)
	case <-c.Done():
		t.Fatal("Done before the peer answered")
	default:
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	if r := closeReason(t, c); r != (wsconn.CloseReason{Code: 4002, Reason: "your turn"}) {
		t.Fatalf("final CloseReason = %v, want the peer's echo", r)
	}
	// Idempotent.
	if err := c.Close(ctx, 1000, ""); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func TestConcurrentCloseCalls(t *testing.T) {
	c := dial(t, serve(t, nil, echo, nil), nil)
	ctx := ctxTimeout(t, 10*time.Second)
	errc := make(chan error)
	for range 5 {
		go func() { errc <- c.Close(ctx, wsconn.StatusGoingAway, "bye") }()
	}
	for range 5 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	<-c.Done()
}

// The wait for the peer's Close is bounded by DisconnectTimeout and by ctx.
func TestCloseBoundedWait(t *testing.T) {
	for _, bound := range []string{"DisconnectTimeout", "ctx"} {
		t.Run(bound, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ln := newPipeListener()
				hold := make(chan struct{})
				url := rawPeer(t, ln, func(ws *websocket.Conn) {
					ws.SetCloseHandler(func(int, string) error { return nil }) // never answers
					ws.ReadMessage()                                           // returns at our Close frame
					<-hold                                                     // and keeps TCP open
				})
				t.Cleanup(func() { close(hold) })
				c, err := wsconn.Dial(context.Background(), url, &wsconn.DialOptions{
					NetDialContext: ln.Dial, DisconnectTimeout: 3 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				ctx, want, wantErr := context.Background(), 3*time.Second, wsconn.ErrDisconnectionTimeout
				if bound == "ctx" {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Second)
					defer cancel()
					want, wantErr = time.Second, context.DeadlineExceeded
				}
				start := time.Now()
				err = c.Close(ctx, 1000, "")
				if !errors.Is(err, wantErr) {
					t.Fatalf("Close = %v, want %v", err, wantErr)
				}
				if d := time.Since(start); d != want {
					t.Fatalf("Close took %v, want %v", d, want)
				}
				select {
				case <-c.Done():
				default:
					t.Fatal("Done not closed after Close returned")
				}
			})
		})
	}
}

// When the peer closes first we echo its code and reason, and the server
// closes TCP right after.
func TestPeerClosesFirst(t *testing.T) {
	handlerErr := make(chan error, 1)
	url := serve(t, nil, func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		_, err = c.Receive(ctx)
		handlerErr <- err
		return nil
	}, nil)
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	echoed := make(chan *websocket.CloseError, 1)
	ws.SetCloseHandler(func(code int, text string) error {
		echoed <- &websocket.CloseError{Code: code, Text: text}
		return nil
	})
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4003, "see you"), time.Now().Add(5*time.Second))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("read a message after Close")
	}
	if ce := <-echoed; ce.Code != 4003 || ce.Text != "see you" {
		t.Fatalf("echo = %v, want 4003 \"see you\"", ce)
	}
	wantClosed(t, <-handlerErr, 4003, "see you")
	ws.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := ws.NetConn().Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the handshake the server's TCP gave %d bytes, %v; want EOF", n, err)
	}
}

// Codes that never go on the wire become 1000; codes that may not be sent
// are an error and leave the connection open; reasons are cut to 123 bytes.
func TestCloseCodesAndReasons(t *testing.T) {
	for _, code := range []wsconn.StatusCode{1005, 1006, 1015} {
		url, got := closePeer(t, func(code int, text string) []byte { return websocket.FormatCloseMessage(code, text) })
		c := dial(t, url, nil)
		if err := c.Close(ctxTimeout(t, 10*time.Second), code, "x"); err != nil {
			t.Fatal(err)
		}
		if ce := <-got; ce.Code != 1000 {
			t.Fatalf("Close(%d) sent %d, want 1000", code, ce.Code)
		}
	}
	c := dial(t, serve(t, nil, echo, nil), nil)
	ctx := ctxTimeout(t, 10*time.Second)
	for _, code := range []wsconn.StatusCode{0, 999, 1004, 1016, 2000, 2999, 5000} {
		if err := c.Close(ctx, code, ""); err == nil {
			t.Fatalf("Close(%d) accepted", code)
		}
	}
	if err := c.SendText(ctx, "open"); err != nil {
		t.Fatalf("connection unusable after refused Close: %v", err)
	}

	url, got := closePeer(t, func(code int, text string) []byte { return websocket.FormatCloseMessage(code, text) })
	c = dial(t, url, nil)
	long := strings.Repeat("é", 100) // 200 bytes
	if err := c.Close(ctx, 4000, long); err != nil {
		t.Fatal(err)
	}
	ce := <-got
	if len(ce.Text) != 122 || !utf8.ValidString(ce.Text) || !strings.HasPrefix(long, ce.Text) {
		t.Fatalf("reason sent: %d bytes (valid UTF-8: %v), want the first 61 runes (122 bytes)", len(ce.Text), utf8.ValidString(ce.Text))
	}
}

// Close completes while the reader is blocked on a full queue.
func TestCloseWithFullQueue(t *testing.T) {
	got := make(chan *websocket.CloseError, 1)
	flood := rawPeer(t, nil, func(ws *websocket.Conn) {
		for range 10 {
			ws.WriteMessage(websocket.TextMessage, []byte("flood"))
		}
		ws.SetCloseHandler(func(code int, text string) error {
			got <- &websocket.CloseError{Code: code, Text: text}
			ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(5*time.Second))
			return nil
		})
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	})
	c := dial(t, flood, &wsconn.DialOptions{MessageQueueSize: 1})
	ctx := ctxTimeout(t, 10*time.Second)
	if err := c.Close(ctx, 4000, "enough"); err != nil {
		t.Fatal(err)
	}
	if ce := <-got; ce.Code != 4000 {
		t.Fatalf("peer saw %v", ce)
	}
	if r := closeReason(t, c); r.Code != 4000 {
		t.Fatalf("CloseReason = %v, want the echoed 4000", r)
	}
}

// A ping that arrives after we sent Close is not an error.
func TestPingAfterOurCloseIsHarmless(t *testing.T) {
	url := rawPeer(t, nil, func(ws *websocket.Conn) {
		ws.SetCloseHandler(func(code int, text string) error {
			ws.WriteControl(websocket.PingMessage, []byte("late"), time.Now().Add(5*time.Second))
			ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, "ok"), time.Now().Add(5*time.Second))
			return nil
		})
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	})
	c := dial(t, url, nil)
	if err := c.Close(ctxTimeout(t, 10*time.Second), 4000, "closing"); err != nil {
		t.Fatal(err)
	}
	if r := closeReason(t, c); r != (wsconn.CloseReason{Code: 4000, Reason: "ok"}) {
		t.Fatalf("CloseReason = %v", r)
	}
}

// blockingHandler is a debug slog handler that holds the goroutine logging
// msg until release is closed, after reporting it on held.
type blockingHandler struct {
	msg     string
	held    chan struct{}
	release chan struct{}
}

func (h *blockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *blockingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.held <- struct{}{}
		<-h.release
	}
	return nil
}
func (h *blockingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *blockingHandler) WithGroup(string) slog.Handler      { return h }

// The peer's Close frame and a local Close race: whichever wins, the code
// the peer sent is recorded and the peer sees its own code echoed. The
// reader is held right after it took the peer's frame (inside its debug
// trace) while the local Close runs; the peer's frame must already count.
func TestPeerCloseRacesLocalClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ln := newPipeListener()
		got := make(chan int, 2)
		url := rawPeer(t, ln, func(ws *websocket.Conn) {
			ws.SetCloseHandler(func(code int, _ string) error { got <- code; return nil })
			if err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4003, "peer"), time.Now().Add(time.Second)); err != nil {
				t.Errorf("peer: write Close: %v", err)
			}
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		})
		h := &blockingHandler{msg: "websocket close received", held: make(chan struct{}), release: make(chan struct{})}
		c, err := wsconn.Dial(context.Background(), url, &wsconn.DialOptions{NetDialContext: ln.Dial, Logger: slog.New(h)})
		if err != nil {
			t.Fatal(err)
		}
		<-h.held // the reader has taken the peer's Close frame
		closed := make(chan error, 1)
		go func() { closed <- c.Close(context.Background(), 4001, "local") }()
		synctest.Wait() // Close has done all it can before the reader goes on
		close(h.release)
		if err := <-closed; err != nil {
			t.Fatalf("Close = %v", err)
		}
		<-c.Done()
		if r, _ := c.CloseReason(); r != (wsconn.CloseReason{Code: 4003, Reason: "peer"}) {
			t.Errorf("CloseReason = %v, want the peer's 4003 \"peer\"", r)
		}
		if code := <-got; code != 4003 {
			t.Errorf("peer received Close %d, want its own 4003 echoed", code)
		}
	})
}
