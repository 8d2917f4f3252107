// Package natstest runs real NATS servers for the tests of the NATS broker
// and of the chat: embedded in the test process (one server, or a cluster
// joined by routes), or in a child process that a test can SIGKILL. Every
// server listens on 127.0.0.1 only.
//
// It is a module of its own so that nats-server stays out of the main
// module's requirements. Like internal/wstest it does not import package
// testing: the helpers take a [TB].
package natstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Timeout bounds every wait in the helpers.
const Timeout = 20 * time.Second

// TB is the part of TB the helpers use.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Server is an embedded nats-server.
type Server struct {
	t    TB
	opts server.Options
	s    *server.Server
}

// Start runs a server on a free port of 127.0.0.1 until the test ends.
func Start(t TB) *Server { return start(t, "", nil) }

// StartWithPassword is Start for a server that admits only user with
// password. URL does not include them.
func StartWithPassword(t TB, user, password string) *Server {
	t.Helper()
	srv := &Server{t: t, opts: server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, Username: user, Password: password}}
	srv.run()
	t.Cleanup(srv.Shutdown)
	return srv
}

// start runs a server; with a cluster name it also listens for routes and
// dials routes.
func start(t TB, cluster string, routes []*url.URL) *Server {
	t.Helper()
	srv := &Server{t: t, opts: server.Options{
		Host:   "127.0.0.1",
		Port:   -1,
		NoLog:  true,
		NoSigs: true,
	}}
	if cluster != "" {
		srv.opts.Cluster = server.ClusterOpts{Name: cluster, Host: "127.0.0.1", Port: -1}
		srv.opts.Routes = routes
	}
	srv.run()
	t.Cleanup(srv.Shutdown)
	return srv
}

func (srv *Server) run() {
	srv.t.Helper()
	opts := srv.opts // the server keeps the pointer and reads it while running
	s, err := server.NewServer(&opts)
	if err != nil {
		srv.t.Fatalf("failed to create nats-server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(Timeout) {
		s.Shutdown()
		srv.t.Fatalf("nats-server not ready within %v", Timeout)
	}
	srv.s = s
	// From now on the same port: Restart must come back where clients
	// expect it.
	srv.opts.Port = s.Addr().(*net.TCPAddr).Port
	if srv.opts.Cluster.Port != 0 {
		srv.opts.Cluster.Port = s.ClusterAddr().Port
	}
}

// URL returns "nats://127.0.0.1:PORT".
func (srv *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(srv.opts.Port) }

// NumClients returns how many clients are connected to this server.
func (srv *Server) NumClients() int { return srv.s.NumClients() }

// Shutdown stops the server, closing every client's connection. It does
// nothing to a stopped server.
func (srv *Server) Shutdown() {
	if srv.s == nil {
		return
	}
	srv.s.Shutdown()
	srv.s.WaitForShutdown()
	srv.s = nil
}

// Restart starts a stopped server again on the same port.
func (srv *Server) Restart() {
	srv.t.Helper()
	if srv.s != nil {
		srv.t.Fatalf("natstest: Restart of a running server")
	}
	srv.run()
}

// Cluster runs n servers joined by routes (each dials the first; they
// learn of each other from it) and waits until each has a route to every
// other.
func Cluster(t TB, n int) []*Server {
	t.Helper()
	name := "wsnursery-test-" + strconv.Itoa(os.Getpid())
	first := start(t, name, nil)
	seed := []*url.URL{{Scheme: "nats", Host: "127.0.0.1:" + strconv.Itoa(first.opts.Cluster.Port)}}
	servers := []*Server{first}
	for range n - 1 {
		servers = append(servers, start(t, name, seed))
	}
	deadline := time.Now().Add(Timeout)
	for _, srv := range servers {
		for srv.s.NumRoutes() < n-1 {
			if time.Now().After(deadline) {
				t.Fatalf("natstest: cluster of %d not meshed within %v", n, Timeout)
			}
			time.Sleep(10 * time.Millisecond) // nats-server offers no route event to wait on
		}
	}
	return servers
}

// URLs returns the servers' URLs joined by commas, as nats.Connect takes
// them.
func URLs(servers []*Server) string {
	urls := make([]string, len(servers))
	for i, srv := range servers {
		urls[i] = srv.URL()
	}
	return strings.Join(urls, ",")
}

// childEnv names the environment variable that makes a test binary serve
// NATS instead of running tests (see ServeIfChild).
const childEnv = "WSNURSERY_NATSTEST_SERVE"

// parentEnv carries the test process's pid to the child, which exits when
// its parent is no longer that process.
const parentEnv = "WSNURSERY_NATSTEST_PARENT"

// ServeIfChild must be the first call of TestMain in a package that uses
// StartProcess: in the child process it runs the server until killed and
// never returns; in the test process it does nothing.
func ServeIfChild() {
	addr := os.Getenv(childEnv)
	if addr == "" {
		return
	}
	host, port, err := net.SplitHostPort(addr)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || host != "127.0.0.1" {
		fmt.Fprintf(os.Stderr, "natstest: bad %s=%q\n", childEnv, addr)
		os.Exit(2)
	}
	s, err := server.NewServer(&server.Options{Host: host, Port: p, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "natstest:", err)
		os.Exit(1)
	}
	s.Start()
	if !s.ReadyForConnections(Timeout) {
		fmt.Fprintln(os.Stderr, "natstest: server not ready")
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", s.Addr())
	// The parent kills us. Should it die first, Linux kills us too
	// (Pdeathsig, see setDeathSignal); elsewhere, or should that miss, we
	// notice that our parent changed (to init, or to a subreaper) and exit.
	// Polling: no event says that the parent is gone.
	parent, _ := strconv.Atoi(os.Getenv(parentEnv))
	for {
		if ppid := os.Getppid(); ppid != parent || parent == 0 {
			os.Exit(0)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Proc is a nats-server in a child process.
type Proc struct {
	t        TB
	port     int
	cmd      *exec.Cmd
	readDone chan struct{} // closed when the goroutine reading cmd's stdout has returned
}

// StartProcess runs a nats-server in a child process (the test binary
// itself; see ServeIfChild) on port of 127.0.0.1, 0 for a free one, and
// kills it at the end of the test.
func StartProcess(t TB, port int) *Proc {
	t.Helper()
	if port == 0 {
		port = FreePort(t)
	}
	p := &Proc{t: t, port: port}
	p.start()
	t.Cleanup(p.Kill)
	return p
}

func (p *Proc) start() {
	p.t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=127.0.0.1:"+strconv.Itoa(p.port), parentEnv+"="+strconv.Itoa(os.Getpid()))
	setDeathSignal(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		p.t.Fatalf("natstest: %v", err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("natstest: %v", err)
	}
	ready := make(chan error, 1)
	p.readDone = make(chan struct{})
	go func() {
		defer close(p.readDone)
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && !strings.HasPrefix(line, "listening on ") {
			err = fmt.Errorf("unexpected output %q", line)
		}
		ready <- err
		io.Copy(io.Discard, out)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		p.cmd = cmd
		p.Kill()
		p.t.Fatalf("natstest: child nats-server on port %d did not start: %v", p.port, err)
	}
	p.cmd = cmd
}

// URL returns "nats://127.0.0.1:PORT".
func (p *Proc) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(p.port) }

// Kill sends SIGKILL to the server and waits for it to exit. It does
// nothing to a killed server.
func (p *Proc) Kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	// Wait closes the stdout pipe, so the reader must be done with it
	// first: it is, at EOF, once the child has died.
	select {
	case <-p.readDone:
	case <-time.After(Timeout):
		p.t.Fatalf("natstest: the child nats-server's stdout still open %v after SIGKILL", Timeout)
	}
	p.cmd.Wait()
	p.cmd = nil
}

// Restart starts a killed server again on the same port.
func (p *Proc) Restart() {
	p.t.Helper()
	if p.cmd != nil {
		p.t.Fatalf("natstest: Restart of a running server")
	}
	p.start()
}

// FreePort returns a port of 127.0.0.1 that was free a moment ago.
func FreePort(t TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
