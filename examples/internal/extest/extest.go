// Package extest helps the examples' tests build the example programs and
// run them as separate processes.
package extest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wsnursery/wsnursery/internal/wstest"
)

// Timeout bounds every wait in the helpers.
const Timeout = 20 * time.Second

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// Build compiles the main package in the directory dir (relative to the
// test's working directory) once per test binary, and returns the path of
// the executable. Call Cleanup when the tests are over.
func Build(t wstest.TB, dir string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if bin, ok := built[abs]; ok {
		return bin
	}
	if buildDir == "" {
		if buildDir, err = os.MkdirTemp("", "wsnursery-examples-"); err != nil {
			t.Fatalf("%v", err)
		}
	}
	bin := filepath.Join(buildDir, filepath.Base(abs))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", bin, ".")
	cmd.Dir = abs
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	built[abs] = bin
	return bin
}

// Cleanup removes the binaries Build made. It suits goleak.Cleanup.
func Cleanup(int) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// Proc is a running example program whose output is collected.
type Proc struct {
	cmd    *exec.Cmd
	stdout stream
	stderr stream
	done   chan struct{} // closed once the process has exited and its output is read
	err    error         // Wait's result, set before done is closed
}

// stream collects one output of the process.
type stream struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{} // closed and replaced whenever b grows
}

func (s *stream) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *stream) copyFrom(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			s.mu.Lock()
			s.b.WriteString(line)
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// Start runs bin with args; stdin may be nil. Pass an *os.File (such as
// one end of os.Pipe) to keep stdin open: with any other io.Reader, the
// process is not considered exited before the reader is at its end. The
// process is killed at the end of the test if it is still running.
func Start(t wstest.TB, stdin io.Reader, bin string, args ...string) *Proc {
	t.Helper()
	return start(t, false, stdin, bin, args...)
}

// StartMerged is Start with the process's stderr going to the same pipe as
// its stdout, so that Stdout holds both in the order they were written (and
// Stderr nothing).
func StartMerged(t wstest.TB, stdin io.Reader, bin string, args ...string) *Proc {
	t.Helper()
	return start(t, true, stdin, bin, args...)
}

func start(t wstest.TB, merged bool, stdin io.Reader, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.stdout.changed = make(chan struct{})
	p.stderr.changed = make(chan struct{})
	p.cmd.Stdin = stdin
	outPipe, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%v", err)
	}
	var errPipe io.Reader = strings.NewReader("")
	if merged {
		p.cmd.Stderr = p.cmd.Stdout // the pipe's write end
	} else if errPipe, err = p.cmd.StderrPipe(); err != nil {
		t.Fatalf("%v", err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%v", err)
	}
	go func() {
		var wg sync.WaitGroup
		wg.Go(func() { p.stdout.copyFrom(outPipe) })
		p.stderr.copyFrom(errPipe)
		wg.Wait()
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.cmd.Process.Kill()
		<-p.done
		t.Logf("%s was still running and was killed; its stderr:\n%s", filepath.Base(bin), p.Stderr())
	})
	return p
}

// Stdout returns what the process wrote on stdout so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr returns what the process wrote on stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// WaitStdout waits until stdout matches re and returns the submatches, or
// fails the test after Timeout.
func (p *Proc) WaitStdout(t wstest.TB, re *regexp.Regexp) []string {
	t.Helper()
	return p.wait(t, &p.stdout, "stdout", re)
}

// WaitStderr waits until stderr matches re and returns the submatches, or
// fails the test after Timeout.
func (p *Proc) WaitStderr(t wstest.TB, re *regexp.Regexp) []string {
	t.Helper()
	return p.wait(t, &p.stderr, "stderr", re)
}

func (p *Proc) wait(t wstest.TB, s *stream, name string, re *regexp.Regexp) []string {
	t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		m := re.FindStringSubmatch(s.b.String())
		changed := s.changed
		s.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-changed:
		case <-p.done:
			if m := re.FindStringSubmatch(s.String()); m != nil {
				return m
			}
			t.Fatalf("process exited (%v) before its %s matched %q; stdout:\n%s\nstderr:\n%s", p.err, name, re, p.Stdout(), p.Stderr())
		case <-timer.C:
			t.Fatalf("%s did not match %q within %v; stdout:\n%s\nstderr:\n%s", name, re, Timeout, p.Stdout(), p.Stderr())
		}
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(t wstest.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v", err)
	}
}

// Wait waits for the process to exit and returns its exit code, or fails
// the test after Timeout.
func (p *Proc) Wait(t wstest.TB) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(Timeout):
		t.Fatalf("process did not exit within %v; stderr:\n%s", Timeout, p.Stderr())
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("process failed: %v", p.err)
	return -1
}

var listeningRE = regexp.MustCompile(`msg=listening url=(\S+)`)

// StartServer runs the example server binary on a free port of 127.0.0.1
// with the extra args and returns the process and the URL it serves.
func StartServer(t wstest.TB, bin string, args ...string) (*Proc, string) {
	t.Helper()
	p := Start(t, nil, bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	return p, p.WaitStderr(t, listeningRE)[1]
}
