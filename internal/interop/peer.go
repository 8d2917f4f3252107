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

// Events collects observations and hands them out by kind: a peer's output
// lines, or a browser page's reports. The zero value is not usable; use
// NewEvents.
type Events struct {
	mu      sync.Mutex
	events  []Event // added and not yet taken by Next
	changed chan struct{}
	ended   error // non-nil once no more events will come
}

// NewEvents returns an empty, open collection.
func NewEvents() *Events { return &Events{changed: make(chan struct{})} }

// Add records e and wakes Next callers.
func (s *Events) Add(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	s.notifyLocked()
}

// End says no more events will come, because of why: Next then fails
// instead of waiting when nothing matches.
func (s *Events) End(why error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended == nil {
		s.ended = why
		s.notifyLocked()
	}
}

// Next returns the first event added and not yet taken for which match
// reports true (any event when match is nil), waiting for it until ctx ends
// or End is called. Events that do not match stay for later calls.
func (s *Events) Next(ctx context.Context, match func(Event) bool) (Event, error) {
	for {
		s.mu.Lock()
		for i, e := range s.events {
			if match == nil || match(e) {
				s.events = append(s.events[:i], s.events[i+1:]...)
				s.mu.Unlock()
				return e, nil
			}
		}
		changed, ended := s.changed, s.ended
		s.mu.Unlock()
		if ended != nil {
			return Event{}, fmt.Errorf("no awaited event: %w", ended)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("failed to wait for an event: %w", context.Cause(ctx))
		}
	}
}

// Unconsumed returns the events added and not taken by Next.
func (s *Events) Unconsumed() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

func (s *Events) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Peer is a running peer program. Its standard output is parsed into events
// as it arrives; its standard error is kept for diagnostics.
type Peer struct {
	*Events
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr lockedBuffer
	exited chan struct{} // closed once the process has been waited for

	mu      sync.Mutex
	partial []byte // an incomplete last output line
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
	p := &Peer{Events: NewEvents(), name: name, cmd: cmd, exited: make(chan struct{})}
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
			p.addLine(p.partial)
			p.partial = nil
		}
		p.mu.Unlock()
		p.End(fmt.Errorf("peer %s exited (%v); stderr:\n%s", name, exitStatus(err), p.Stderr()))
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

// Next is Events.Next; its error carries the peer's standard error.
func (p *Peer) Next(ctx context.Context, match func(Event) bool) (Event, error) {
	e, err := p.Events.Next(ctx, match)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w; %s stderr so far:\n%s", err, p.name, p.Stderr())
	}
	return e, err
}

func exitStatus(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
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
		p.addLine(p.partial[:i])
		p.partial = p.partial[i+1:]
	}
	return len(b), nil
}

// addLine parses one output line into an event.
func (p *Peer) addLine(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	var e Event
	if err := json.Unmarshal(line, &e); err != nil || e.Event == "" {
		e = Event{Event: "unparsed", Detail: string(line)}
	}
	p.Add(e)
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
