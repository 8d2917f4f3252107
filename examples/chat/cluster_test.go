package main_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"context"
	"github.com/wsnursery/wsnursery/examples/internal/extest"
	"github.com/wsnursery/wsnursery/internal/natstest"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/recipes/jsonmsg"
	"github.com/wsnursery/wsnursery/wsconn"
)

// The cluster tests run each chat node as its own process (the chat
// binary, built once), against real NATS servers.

var (
	openRE      = regexp.MustCompile(`msg="chat room open" url=(\S+)`)
	sharedRE    = regexp.MustCompile(`msg="room shared over NATS" node=(\S+)`)
	connectedRE = regexp.MustCompile(`msg="(re)?connected to NATS"`)
)

// chatNode is a chat process.
type chatNode struct {
	proc *extest.Proc
	base string // http://127.0.0.1:PORT
	id   string // its NATS node id
}

// startNode runs a chat process with -nats urls and waits until it serves.
func startNode(t *testing.T, urls string) *chatNode {
	t.Helper()
	bin := extest.Build(t, ".")
	p := extest.Start(t, nil, bin, "-addr", "127.0.0.1:0", "-nats", urls)
	return &chatNode{proc: p, base: p.WaitStderr(t, openRE)[1], id: p.WaitStderr(t, sharedRE)[1]}
}

// seen waits until n has heard from other, so that other's users are in
// n's lists.
func (n *chatNode) seen(t *testing.T, other *chatNode) {
	t.Helper()
	n.proc.WaitStderr(t, regexp.MustCompile(`msg="another node appeared" node=\S+ peer=`+regexp.QuoteMeta(other.id)))
}

// joinNode connects a user to a node; its welcome must list users.
func joinNode(t *testing.T, n *chatNode, name string, users ...string) *wsconn.Conn {
	t.Helper()
	c := join(t, trimSlash(n.base), name)
	expectEvent(t, c, event{Kind: "welcome", Name: name, Users: users})
	expectEvent(t, c, event{Kind: "join", Name: name, Users: users})
	return c
}

func trimSlash(s string) string {
	if len(s) > 0 && s[len(s)-1] == '/' {
		return s[:len(s)-1]
	}
	return s
}

// nextFrom skips events until a message from `from`, and returns its text.
func nextFrom(t *testing.T, ctx context.Context, c *wsconn.Conn, from string) (string, error) {
	t.Helper()
	for {
		ev, err := jsonmsg.Receive[event](ctx, c, nil)
		if err != nil {
			return "", err
		}
		if ev.Kind == "message" && ev.Name == from {
			return ev.Text, nil
		}
	}
}

// crossWithin has `from` say probes every 100 ms until `to` (on another
// node) receives one of them from `name`, failing the test after limit.
// Each call's probes carry a prefix of their own, so a late probe of an
// earlier call does not count. It returns how long it took, and the other
// texts `to` received from `name` before the probe (late probes left out).
func crossWithin(t *testing.T, from *wsconn.Conn, name string, to *wsconn.Conn, limit time.Duration) (time.Duration, []string) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	prefix := "probe " + strconv.FormatInt(probes.Add(1), 10) + " "
	type result struct {
		others []string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		var r result
		for {
			text, err := nextFrom(t, ctx, to, name)
			if err != nil {
				r.err = err
				break
			}
			if strings.HasPrefix(text, prefix) {
				break
			}
			if !strings.HasPrefix(text, "probe ") {
				r.others = append(r.others, text)
			}
		}
		got <- r
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		say(t, from, map[string]string{"text": prefix + strconv.Itoa(i)})
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatalf("nothing from %s across nodes within %v: %v", name, limit, r.err)
			}
			return time.Since(start), r.others
		case <-tick.C:
		}
	}
}

// probes numbers crossWithin's calls.
var probes atomic.Int64

// TestClusterTwoNodes: a user who joins on node 2 is announced on node 1
// with the users of both nodes; messages go both ways; a user who leaves
// on node 1 leaves node 2's list.
func TestClusterTwoNodes(t *testing.T) {
	srv := natstest.Start(t)
	n1 := startNode(t, srv.URL())
	alice := joinNode(t, n1, "alice", "alice")
	n2 := startNode(t, srv.URL())
	n2.seen(t, n1)
	bob := joinNode(t, n2, "bob", "alice", "bob")
	expectEvent(t, alice, event{Kind: "join", Name: "bob", Users: []string{"alice", "bob"}})
	alice2 := join(t, trimSlash(n2.base), "alice") // made unique over both nodes
	expectEvent(t, alice2, event{Kind: "welcome", Name: "alice-2", Users: []string{"alice", "alice-2", "bob"}})
	expectEvent(t, alice2, event{Kind: "join", Name: "alice-2", Users: []string{"alice", "alice-2", "bob"}})
	expectEvent(t, alice, event{Kind: "join", Name: "alice-2", Users: []string{"alice", "alice-2", "bob"}})
	expectEvent(t, bob, event{Kind: "join", Name: "alice-2", Users: []string{"alice", "alice-2", "bob"}})

	say(t, alice, map[string]string{"text": "hello from node 1"})
	for _, c := range []*wsconn.Conn{alice, bob, alice2} {
		expectEvent(t, c, event{Kind: "message", Name: "alice", Text: "hello from node 1"})
	}
	say(t, bob, map[string]string{"text": "hello from node 2"})
	for _, c := range []*wsconn.Conn{alice, bob, alice2} {
		expectEvent(t, c, event{Kind: "message", Name: "bob", Text: "hello from node 2"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := alice2.Close(ctx, wsconn.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wsconn.Conn{alice, bob} {
		expectEvent(t, c, event{Kind: "leave", Name: "alice-2", Users: []string{"alice", "bob"}})
	}
}

// TestClusterNodeKilled: a node SIGKILLed drops out of the others' lists
// within 15 s, and its users are announced as having left; a node stopped
// with SIGTERM closes its users with 1001 and leaves at once.
func TestClusterNodeKilled(t *testing.T) {
	srv := natstest.Start(t)
	n1 := startNode(t, srv.URL())
	alice := joinNode(t, n1, "alice", "alice")
	n2 := startNode(t, srv.URL())
	n2.seen(t, n1)
	joinNode(t, n2, "bob", "alice", "bob")
	expectEvent(t, alice, event{Kind: "join", Name: "bob", Users: []string{"alice", "bob"}})
	n3 := startNode(t, srv.URL())
	n3.seen(t, n1)
	n3.seen(t, n2) // carol's welcome lists bob only once node 3 has heard node 2
	carol := joinNode(t, n3, "carol", "alice", "bob", "carol")
	expectEvent(t, alice, event{Kind: "join", Name: "carol", Users: []string{"alice", "bob", "carol"}})

	start := time.Now()
	n2.proc.Signal(t, syscall.SIGKILL)
	expectEvent(t, alice, event{Kind: "leave", Name: "bob", Users: []string{"alice", "carol"}})
	expectEvent(t, carol, event{Kind: "leave", Name: "bob", Users: []string{"alice", "carol"}})
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("bob left the lists %v after his node was killed, want within 15s", d)
	} else {
		t.Logf("bob left the other nodes' lists %v after SIGKILL", d.Round(time.Millisecond))
	}

	n3.proc.Signal(t, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if r := wstest.ReceiveClose(t, ctx, carol); r.Code != wsconn.StatusGoingAway {
		t.Fatalf("carol closed with %v, want 1001", r)
	}
	if code := n3.proc.Wait(t); code != 0 {
		t.Fatalf("node 3 exited with %d after SIGTERM", code)
	}
	expectEvent(t, alice, event{Kind: "leave", Name: "carol", Users: []string{"alice"}})
}

// TestClusterNATSKilled: NATS SIGKILLed and restarted on the same port;
// the users of one node keep talking throughout, and messages cross nodes
// again within 10 s of the restart.
func TestClusterNATSKilled(t *testing.T) {
	nats := natstest.StartProcess(t, 0)
	n1 := startNode(t, nats.URL())
	alice := joinNode(t, n1, "alice", "alice")
	carol := join(t, trimSlash(n1.base), "carol")
	n2 := startNode(t, nats.URL())
	n2.seen(t, n1)
	bob := join(t, trimSlash(n2.base), "bob")
	crossWithin(t, alice, "alice", bob, 10*time.Second)

	nats.Kill()
	n1.proc.WaitStderr(t, regexp.MustCompile(`msg="disconnected from NATS`))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i := range 5 { // local traffic does not wait for NATS
		text := fmt.Sprintf("while NATS is down %d", i)
		say(t, alice, map[string]string{"text": text})
		if got, err := nextFrom(t, ctx, carol, "alice"); err != nil || got != text {
			for err == nil && got != text && len(got) > 5 && got[:5] == "probe" { // late probes
				got, err = nextFrom(t, ctx, carol, "alice")
			}
			if err != nil || got != text {
				t.Fatalf("carol got %q, %v; want %q", got, err, text)
			}
		}
	}
	nats.Restart()
	d, during := crossWithin(t, alice, "alice", bob, 10*time.Second)
	t.Logf("messages crossed nodes again %v after NATS restarted; bob got %q of what alice said meanwhile", d.Round(time.Millisecond), during)
	// What node 1 published while NATS was down is lost, or reaches node 2
	// late: in order, each at most once, nothing else.
	next := 0
	for _, text := range during {
		var i int
		if _, err := fmt.Sscanf(text, "while NATS is down %d", &i); err != nil || i < next || i >= 5 {
			t.Fatalf("bob got %q before the probe, want an in-order subset of what alice said while NATS was down", during)
		}
		next = i + 1
	}
	crossWithin(t, bob, "bob", alice, 10*time.Second)
}

// TestClusterFailover: three NATS servers with routes; killing the one
// node 1 is connected to stops its cross-node traffic for at most 10 s.
func TestClusterFailover(t *testing.T) {
	servers := natstest.Cluster(t, 3)
	urls := natstest.URLs(servers)
	n1 := startNode(t, urls)
	var victim *natstest.Server
	for _, s := range servers {
		if s.NumClients() == 1 {
			victim = s
		}
	}
	if victim == nil {
		t.Fatal("node 1's server not found")
	}
	alice := join(t, trimSlash(n1.base), "alice")
	n2 := startNode(t, urls)
	n2.seen(t, n1)
	bob := join(t, trimSlash(n2.base), "bob")
	crossWithin(t, alice, "alice", bob, 10*time.Second)
	crossWithin(t, bob, "bob", alice, 10*time.Second)

	victim.Shutdown()
	d1, _ := crossWithin(t, alice, "alice", bob, 10*time.Second)
	d2, _ := crossWithin(t, bob, "bob", alice, 10*time.Second)
	t.Logf("after node 1's server died: node 1 → 2 in %v, 2 → 1 in %v", d1.Round(time.Millisecond), d2.Round(time.Millisecond))
}

// TestClusterNATSUnreachableAtStart: the chat starts without NATS, serves
// its users, logs a warning, and joins the others when NATS comes up.
func TestClusterNATSUnreachableAtStart(t *testing.T) {
	port := natstest.FreePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	n1 := startNode(t, url)
	n1.proc.WaitStderr(t, regexp.MustCompile(`level=WARN msg="NATS unreachable`))
	alice := joinNode(t, n1, "alice", "alice")
	say(t, alice, map[string]string{"text": "anyone?"})
	expectEvent(t, alice, event{Kind: "message", Name: "alice", Text: "anyone?"})

	nats := natstest.StartProcess(t, port)
	n1.proc.WaitStderr(t, connectedRE)
	n2 := startNode(t, nats.URL())
	n2.seen(t, n1)
	bob := joinNode(t, n2, "bob", "alice", "bob")
	expectEvent(t, alice, event{Kind: "join", Name: "bob", Users: []string{"alice", "bob"}})
	crossWithin(t, alice, "alice", bob, 10*time.Second)
}

// The flags: -nats-creds needs -nats; a missing credentials file is an
// error at start.
func TestClusterFlags(t *testing.T) {
	bin := extest.Build(t, ".")
	p := extest.Start(t, nil, bin, "-nats-creds", "x.creds")
	if code := p.Wait(t); code != 2 {
		t.Fatalf("-nats-creds without -nats: exit %d, want 2", code)
	}
	p = extest.Start(t, nil, bin, "-addr", "127.0.0.1:0", "-nats", "nats://127.0.0.1:1", "-nats-creds", "/nonexistent.creds")
	if code := p.Wait(t); code != 1 || !strings.Contains(p.Stderr(), "failed to read the NATS credentials") {
		t.Fatalf("missing credentials file: exit %d, stderr %q; want 1 and a message", code, p.Stderr())
	}
}

// TestClusterLongOutage: with NATS down for longer than the presence
// expiry, each node announces the other's users as gone, and as back once
// NATS is.
func TestClusterLongOutage(t *testing.T) {
	nats := natstest.StartProcess(t, 0)
	n1 := startNode(t, nats.URL())
	alice := joinNode(t, n1, "alice", "alice")
	n2 := startNode(t, nats.URL())
	n2.seen(t, n1)
	bob := joinNode(t, n2, "bob", "alice", "bob")
	expectEvent(t, alice, event{Kind: "join", Name: "bob", Users: []string{"alice", "bob"}})

	nats.Kill()
	expectEvent(t, alice, event{Kind: "leave", Name: "bob", Users: []string{"alice"}})
	expectEvent(t, bob, event{Kind: "leave", Name: "alice", Users: []string{"bob"}})
	nats.Restart()
	start := time.Now()
	expectEvent(t, alice, event{Kind: "join", Name: "bob", Users: []string{"alice", "bob"}})
	expectEvent(t, bob, event{Kind: "join", Name: "alice", Users: []string{"alice", "bob"}})
	t.Logf("users announced again %v after NATS restarted", time.Since(start).Round(time.Millisecond))
}

// TestClusterURLCredentials: what nats.go accepts in the URL works, here a
// user and password; with a wrong password the chat still serves its own
// users and says why it is alone.
func TestClusterURLCredentials(t *testing.T) {
	srv := natstest.StartWithPassword(t, "chat", "s3cret")
	withPassword := func(pw string) string {
		return strings.Replace(srv.URL(), "nats://", "nats://chat:"+pw+"@", 1)
	}
	n1 := startNode(t, withPassword("s3cret"))
	alice := joinNode(t, n1, "alice", "alice")
	n2 := startNode(t, withPassword("s3cret"))
	n2.seen(t, n1)
	bob := joinNode(t, n2, "bob", "alice", "bob")
	expectEvent(t, alice, event{Kind: "join", Name: "bob", Users: []string{"alice", "bob"}})
	crossWithin(t, bob, "bob", alice, 10*time.Second)

	n3 := startNode(t, withPassword("wrong"))
	n3.proc.WaitStderr(t, regexp.MustCompile(`level=WARN msg="NATS unreachable: serving local users only, and retrying" servers=nats://REDACTED@127\.0\.0\.1:`))
	if strings.Contains(n3.proc.Stderr(), "wrong") {
		t.Fatalf("the password is in the log:\n%s", n3.proc.Stderr())
	}
	joinNode(t, n3, "carol", "carol") // alone, but serving
}
