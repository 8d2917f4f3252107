package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Event is one observation a peer printed as a JSON line. Fields a peer did
// not print are zero; Body is nil when the peer cannot see a response body.
type Event struct {
	// Event names what happened: "listening", "open", "pong", "closed",
	// "rejected", "error"; "unparsed" for an output line that was not JSON.
	Event       string  `json:"event"`
	Scenario    string  `json:"scenario,omitempty"`
	Port        int     `json:"port,omitempty"`
	Code        int     `json:"code,omitempty"`
	Reason      string  `json:"reason,omitempty"`
	Payload     string  `json:"payload,omitempty"` // hex
	Subprotocol string  `json:"subprotocol,omitempty"`
	Status      int     `json:"status,omitempty"`
	Header      string  `json:"header,omitempty"` // the X-Wsnursery-Reason response header
	Body        *string `json:"body,omitempty"`
	Detail      string  `json:"detail,omitempty"`
}

// Peer is a running peer program. Its standard output is parsed into events
// as it arrives; its standard error is kept for diagnostics.
type Peer struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr lockedBuffer
	exited chan struct{} // closed once the process has been waited for

	mu      sync.Mutex
	events  []Event // printed and not yet taken by Next
	partial []byte  // an incomplete last output line
	changed chan struct{}
	waitErr error
}

// Start runs the program name with args (and extra environment entries
// env) as a peer. The process runs in its own process group; it is killed
// with that group when ctx ends or Stop gives up waiting. Its standard input
// stays open until Stop, so that a peer can end itself when it closes.
func Start(ctx context.Context, name string, args []string, env []string) (*Peer, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(cmd.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = 2 * time.Second
	p := &Peer{name: name, cmd: cmd, exited: make(chan struct{}), changed: make(chan struct{})}
	cmd.Stdout = (*eventWriter)(p)
	cmd.Stderr = &p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", name, err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", name, err)
	}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		if len(p.partial) > 0 {
			p.appendLocked(p.partial)
			p.partial = nil
		}
		p.notifyLocked()
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// killGroup kills the process group the peer leads, which takes along
// every process it started (Chromium's renderers and helpers).
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// Pid returns the peer's process id, which is also its process group id.
func (p *Peer) Pid() int { return p.cmd.Process.Pid }

// Next returns the first event printed and not yet taken for which match
// reports true (any event when match is nil), waiting for it until ctx ends.
// Events that do not match stay for later calls. It fails once the peer has
// exited without printing a matching event.
func (p *Peer) Next(ctx context.Context, match func(Event) bool) (Event, error) {
	for {
		p.mu.Lock()
		for i, e := range p.events {
			if match == nil || match(e) {
				p.events = append(p.events[:i], p.events[i+1:]...)
				p.mu.Unlock()
				return e, nil
			}
		}
		changed := p.changed
		select {
		case <-p.exited:
			err := p.waitErr
			p.mu.Unlock()
			return Event{}, fmt.Errorf("peer %s exited (%v) without the awaited event; stderr:\n%s", p.name, err, p.Stderr())
		default:
		}
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.exited:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("failed to wait for an event from %s: %w; stderr:\n%s", p.name, context.Cause(ctx), p.Stderr())
		}
	}
}

// Wait waits until the peer exits by itself and returns its exit error
// (nil for status 0). It gives up when ctx ends, leaving the peer running.
func (p *Peer) Wait(ctx context.Context) error {
	select {
	case <-p.exited:
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.waitErr != nil {
			return fmt.Errorf("peer %s failed: %w; stderr:\n%s", p.name, p.waitErr, p.Stderr())
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("failed to wait for %s to exit: %w; stderr:\n%s", p.name, context.Cause(ctx), p.Stderr())
	}
}

// Stop closes the peer's standard input, gives it grace to exit by itself,
// then kills its whole process group, and returns once it has been waited
// for. It is safe to call more than once.
func (p *Peer) Stop(grace time.Duration) {
	p.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
	}
	killGroup(p.cmd) // also reaps stragglers the leader left behind
	<-p.exited
}

// Stderr returns what the peer wrote to standard error so far.
func (p *Peer) Stderr() string { return p.stderr.String() }

// Unconsumed returns the events printed and not taken by Next.
func (p *Peer) Unconsumed() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// eventWriter is the peer's standard output: it parses whole lines.
type eventWriter Peer

func (w *eventWriter) Write(b []byte) (int, error) {
	p := (*Peer)(w)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		p.appendLocked(p.partial[:i])
		p.partial = p.partial[i+1:]
	}
	p.notifyLocked()
	return len(b), nil
}

func (p *Peer) appendLocked(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	var e Event
	if err := json.Unmarshal(line, &e); err != nil || e.Event == "" {
		e = Event{Event: "unparsed", Detail: string(line)}
	}
	p.events = append(p.events, e)
}

func (p *Peer) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 64<<10 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
