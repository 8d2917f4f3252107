package wsbench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"
)

// Helper processes: the benchmark binary (test binary or cmd/compare)
// re-executes itself with RoleEnv set to run a server or an idle client, so
// that client and server never share a process. Such a child exits when its
// stdin closes, hence also when the parent dies.
const (
	RoleEnv = "WSBENCH_ROLE"
	// ServerCPUProfileEnv names a file the server process writes a CPU
	// profile to; ServerMemProfileEnv one for an allocation profile.
	ServerCPUProfileEnv = "WSBENCH_SERVER_CPUPROFILE"
	ServerMemProfileEnv = "WSBENCH_SERVER_MEMPROFILE"
	// ServerTraceEnv names a file the server process writes an execution
	// trace to (runtime/trace), for `go tool trace`.
	ServerTraceEnv = "WSBENCH_SERVER_TRACE"

	roleServer = "server"
	roleIdle   = "idle"

	// maxChildLife bounds every helper, whatever its parent does.
	maxChildLife = 15 * time.Minute
)

// RunRole runs the helper role named by RoleEnv, if any, and reports
// whether it did; the caller must then exit. Call it first thing in main or
// TestMain.
func RunRole() bool {
	if os.Getenv(IdleHeapDirEnv) != "" {
		runtime.MemProfileRate = 1
	}
	switch os.Getenv(RoleEnv) {
	case roleServer:
		if err := serverMain(); err != nil {
			fmt.Fprintln(os.Stderr, "wsbench server:", err)
			os.Exit(1)
		}
		return true
	case roleIdle:
		if err := idleMain(); err != nil {
			fmt.Fprintln(os.Stderr, "wsbench idle client:", err)
			os.Exit(1)
		}
		return true
	}
	return false
}

func serverMain() error {
	RaiseFDLimit()
	for _, rec := range []struct {
		env   string
		start func(io.Writer) error
		stop  func()
	}{
		{ServerCPUProfileEnv, pprof.StartCPUProfile, pprof.StopCPUProfile},
		{ServerTraceEnv, trace.Start, trace.Stop},
	} {
		path := os.Getenv(rec.env)
		if path == "" {
			continue
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := rec.start(f); err != nil {
			return err
		}
		defer rec.stop()
	}
	s, err := StartServers(AllLibs())
	if err != nil {
		return err
	}
	if err := json.NewEncoder(os.Stdout).Encode(s.Addrs); err != nil {
		return err
	}
	waitStdinEOF(os.Stdin, maxChildLife)
	if path := os.Getenv(ServerMemProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	// Connections are dropped with the process; no need to wait for them.
	return nil
}

// child is a running helper process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	done   chan error
}

func startChild(role string, env ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("failed to find own executable: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), RoleEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s process: %w", role, err)
	}
	c := &child{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(out), done: make(chan error, 1)}
	return c, nil
}

// readJSON reads one JSON line from the child's stdout into v, bounded by
// timeout.
func (c *child) readJSON(v any, timeout time.Duration) error {
	type result struct {
		line []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := c.stdout.ReadBytes('\n')
		ch <- result{line, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return fmt.Errorf("failed to read from helper: %w", r.err)
		}
		return json.Unmarshal(r.line, v)
	case <-time.After(timeout):
		c.kill()
		<-ch
		return fmt.Errorf("helper did not answer within %v", timeout)
	}
}

func (c *child) kill() {
	c.cmd.Process.Kill()
}

// stop closes stdin and waits for the child, killing it after timeout.
func (c *child) stop(timeout time.Duration) error {
	c.stdin.Close()
	go func() { c.done <- c.cmd.Wait() }()
	select {
	case err := <-c.done:
		return err
	case <-time.After(timeout):
		c.kill()
		return <-c.done
	}
}

// ServerProc is a server process running every library's server.
type ServerProc struct {
	c     *child
	Addrs map[string]string
	http  *http.Client
}

// StartServer starts a server process; env adds variables (e.g. the
// profile ones).
func StartServer(env ...string) (*ServerProc, error) {
	c, err := startChild(roleServer, env...)
	if err != nil {
		return nil, err
	}
	s := &ServerProc{c: c, http: &http.Client{Timeout: 30 * time.Second}}
	if err := c.readJSON(&s.Addrs, 30*time.Second); err != nil {
		c.stop(time.Second)
		return nil, fmt.Errorf("failed to start server: %w", err)
	}
	return s, nil
}

// Stats asks the server process for a snapshot.
func (s *ServerProc) Stats(ctx context.Context, gc bool) (Stats, error) {
	q := ""
	if gc {
		q = "?gc=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addrs["control"]+"/stats"+q, nil)
	if err != nil {
		return Stats{}, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return Stats{}, fmt.Errorf("failed to get server stats: %w", err)
	}
	defer resp.Body.Close()
	var st Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return Stats{}, fmt.Errorf("failed to decode server stats: %w", err)
	}
	return st, nil
}

// heapProfile saves the server's heap profile to path.
func (s *ServerProc) heapProfile(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addrs["control"]+"/heap", nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("failed to get the server's heap profile: %w", err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// Stop ends the server process.
func (s *ServerProc) Stop() error {
	s.http.CloseIdleConnections()
	return s.c.stop(10 * time.Second)
}
