package main_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	main "github.com/wsnursery/wsnursery/examples/chat"
	"github.com/wsnursery/wsnursery/examples/internal/extest"
	"github.com/wsnursery/wsnursery/internal/natstest"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/recipes/broadcast/natsbroker"
	"github.com/wsnursery/wsnursery/recipes/jsonmsg"
	"github.com/wsnursery/wsnursery/wsconn"
)

func TestMain(m *testing.M) {
	natstest.ServeIfChild() // the child nats-server of the cluster tests
	goleak.VerifyTestMain(m, goleak.Cleanup(extest.Cleanup))
}

const timeout = 20 * time.Second

// startChat serves the chat on a free port of 127.0.0.1 until the end of
// the test and returns its base URL ("http://127.0.0.1:PORT").
func startChat(t *testing.T, onReport func(main.Report)) string {
	t.Helper()
	return startChatWith(t, func(ctx context.Context, ln net.Listener) error { return main.Serve(ctx, ln, onReport) })
}

// startChatWith is startChat with serve as the server.
func startChatWith(t *testing.T, serve func(context.Context, net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(timeout):
			t.Errorf("Serve did not return within %v of the shutdown", timeout)
		}
	})
	return "http://" + ln.Addr().String()
}

type event struct {
	Kind  string   `json:"kind"`
	Name  string   `json:"name"`
	Text  string   `json:"text"`
	Users []string `json:"users"`
}

func join(t *testing.T, base, name string) *wsconn.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := wsconn.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?name="+url.QueryEscape(name), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c.Close(ctx, wsconn.StatusNormalClosure, "")
	})
	return c
}

func next(t *testing.T, c *wsconn.Conn) event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ev, err := jsonmsg.Receive[event](ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func expectEvent(t *testing.T, c *wsconn.Conn, want event) {
	t.Helper()
	got := next(t, c)
	if got.Kind != want.Kind || got.Name != want.Name || got.Text != want.Text || !slices.Equal(got.Users, want.Users) {
		t.Fatalf("event = %+v, want %+v", got, want)
	}
}

func say(t *testing.T, c *wsconn.Conn, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := jsonmsg.Send(ctx, c, v, nil); err != nil {
		t.Fatal(err)
	}
}

// TestProtocol drives the chat with Go clients: welcome, join, messages to
// everyone, unique names, bad input ignored, leave, shutdown with 1001.
func TestProtocol(t *testing.T) {
	base := startChat(t, nil)
	alice := join(t, base, "alice")
	expectEvent(t, alice, event{Kind: "welcome", Name: "alice", Users: []string{"alice"}})
	expectEvent(t, alice, event{Kind: "join", Name: "alice", Users: []string{"alice"}})

	bob := join(t, base, "b<o>b") // cleaned up to "bob"
	expectEvent(t, bob, event{Kind: "welcome", Name: "bob", Users: []string{"alice", "bob"}})
	expectEvent(t, bob, event{Kind: "join", Name: "bob", Users: []string{"alice", "bob"}})
	expectEvent(t, alice, event{Kind: "join", Name: "bob", Users: []string{"alice", "bob"}})

	alice2 := join(t, base, "alice")
	expectEvent(t, alice2, event{Kind: "welcome", Name: "alice-2", Users: []string{"alice", "alice-2", "bob"}})
	for _, c := range []*wsconn.Conn{alice, bob, alice2} {
		expectEvent(t, c, event{Kind: "join", Name: "alice-2", Users: []string{"alice", "alice-2", "bob"}})
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := bob.SendText(ctx, "not json"); err != nil { // ignored
		t.Fatal(err)
	}
	say(t, bob, map[string]string{"text": "  "}) // blank: ignored
	say(t, bob, map[string]string{"text": " hello everyone "})
	for _, c := range []*wsconn.Conn{alice, bob, alice2} {
		expectEvent(t, c, event{Kind: "message", Name: "bob", Text: "hello everyone"})
	}

	if err := alice2.Close(ctx, wsconn.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wsconn.Conn{alice, bob} {
		expectEvent(t, c, event{Kind: "leave", Name: "alice-2", Users: []string{"alice", "bob"}})
	}
}

// TestShutdown: stopping the server closes the browsers' connections with
// 1001.
func TestShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- main.Serve(ctx, ln, nil) }()
	c := join(t, "http://"+ln.Addr().String(), "carol")
	expectEvent(t, c, event{Kind: "welcome", Name: "carol", Users: []string{"carol"}})
	cancel()
	rctx, rcancel := context.WithTimeout(context.Background(), timeout)
	defer rcancel()
	if r := wstest.ReceiveClose(t, rctx, c); r.Code != wsconn.StatusGoingAway {
		t.Fatalf("closed with %v, want 1001", r)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-rctx.Done():
		t.Fatal("Serve did not return")
	}
}

// TestPage: the embedded page is served; the test endpoint is not, unless
// enabled.
func TestPage(t *testing.T) {
	base := startChat(t, nil)
	for path, want := range map[string]string{
		"/":         "<title>wsnursery chat</title>",
		"/chat.js":  `new WebSocket(`,
		"/chat.css": "#log",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, body lacks %q", path, resp.Status, want)
		}
	}
	resp, err := http.Post(base+"/test/report", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		t.Errorf("POST /test/report: %s without the test option", resp.Status)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestTwoBrowsers: two headless Chromium pages chat through the server.
// Each says hello once the other is online and reports, through the
// test-only endpoint, the message it received from the other.
func TestTwoBrowsers(t *testing.T) {
	chromium := findChromium(t)
	reports := make(chan main.Report, 4)
	base := startChat(t, func(r main.Report) { reports <- r })
	startBrowser(t, chromium, base+"/?name=alice&say=hi+from+alice&expect=bob")
	startBrowser(t, chromium, base+"/?name=bob&say=hi+from+bob&expect=alice")
	waitReports(t, reports)
}

// TestTwoBrowsersTwoNodes: the same page, unchanged, with each browser on
// its own node of a cluster over NATS: each sees the other online and gets
// the other's message.
func TestTwoBrowsersTwoNodes(t *testing.T) {
	chromium := findChromium(t)
	srv := natstest.Start(t)
	reports := make(chan main.Report, 4)
	var bases []string
	for range 2 {
		nc, err := natsbroker.Dial(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close) // after the chat's own cleanup (LIFO)
		bases = append(bases, startChatWith(t, func(ctx context.Context, ln net.Listener) error {
			return main.ServeNATS(ctx, ln, nc, func(r main.Report) { reports <- r })
		}))
	}
	startBrowser(t, chromium, bases[0]+"/?name=alice&say=hi+from+alice&expect=bob")
	startBrowser(t, chromium, bases[1]+"/?name=bob&say=hi+from+bob&expect=alice")
	waitReports(t, reports)
}

// waitReports waits for alice's and bob's reports of each other's message.
func waitReports(t *testing.T, reports <-chan main.Report) {
	t.Helper()
	want := map[string]main.Report{
		"alice": {Name: "alice", From: "bob", Text: "hi from bob"},
		"bob":   {Name: "bob", From: "alice", Text: "hi from alice"},
	}
	start := time.Now()
	deadline := time.After(60 * time.Second) // two browsers starting on a busy machine
	for len(want) > 0 {
		select {
		case r := <-reports:
			w, ok := want[r.Name]
			if !ok || r != w {
				t.Fatalf("unexpected report %+v (still waiting for %v)", r, want)
			}
			t.Logf("%v: report %+v", time.Since(start).Round(time.Millisecond), r)
			delete(want, r.Name)
		case <-deadline:
			t.Fatalf("no report from %v within 60s", want)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// findChromium returns the browser's path, or skips the test (fails it when
// WSNURSERY_REQUIRE_PEERS=1).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("WSNURSERY_REQUIRE_PEERS") == "1" {
		t.Fatal("chromium not found and WSNURSERY_REQUIRE_PEERS=1 (install the chromium package)")
	}
	t.Skip("chromium not found; install the chromium package to run this test")
	return ""
}

// startBrowser opens url in a headless Chromium with a fresh profile; its
// whole process tree is killed at the end of the test.
func startBrowser(t *testing.T, chromium, url string) {
	t.Helper()
	dir := t.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), url)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, to kill the tree
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("chromium output for %s:\n%s", url, tail(b, 3000))
			}
		}
	})
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
