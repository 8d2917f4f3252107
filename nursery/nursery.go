package nursery

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// ErrNotStarted is returned by [Start] when its task returns nil without
// having called started.
var ErrNotStarted = errors.New("nursery: task returned without calling started")

// errGoexit is the failure recorded for a task that ends by runtime.Goexit
// (for example t.FailNow called from a task), so that its siblings are
// cancelled rather than left for Run to wait on.
var errGoexit = errors.New("nursery: task called runtime.Goexit")

// A Nursery is the scope created by [Run], valid until Run returns. Its
// methods are safe for concurrent use and are meant to be called by the body
// and the tasks. A goroutine outside the nursery may call them too, but a Go
// that races with the last task's return either starts a task, which Run
// then waits for, or panics as a Go after Run.
type Nursery struct {
	parent context.Context
	ctx    context.Context // passed to the body and to every task
	cancel context.CancelCauseFunc

	// live counts the body and the running tasks. Zero is final: nothing is
	// left inside the nursery to call Go, so Go refuses to leave zero, and
	// the goroutine that reaches it closes done, which Run waits for.
	//
	// errgroup.Group would do this with a WaitGroup, but then a Go racing
	// with the last task's return could add to the WaitGroup after Wait had
	// returned, and its task would outlive Run; guarding the WaitGroup with
	// mu instead made spawning twice as slow. Nor is errgroup.WithContext
	// used for cancellation: its first-error slot knows nothing of Cancel or
	// of the parent's cancellation, so Run could report one error while the
	// tasks were cancelled with another. Every cancellation made by the
	// nursery goes through settleLocked.
	live atomic.Int64
	done chan struct{}

	// sem limits the number of running tasks; nil means no limit. It is
	// set by SetLimit, only while no task runs.
	sem atomic.Pointer[semaphore]

	mu       sync.Mutex
	settled  bool        // the outcome below is final
	err      error       // Run's result once settled
	panicked *PanicError // first recovered panic; overrides err
}

// Run opens a nursery, calls body with it in the calling goroutine, and
// returns after body and every task started in the nursery have returned.
//
// The ctx passed to body and to the tasks is derived from ctx. It is
// cancelled by the first of these events, which also fixes Run's result:
//
//   - body or a task returns a non-nil error: Run returns that error, and it
//     is the context's cause (a task ending by runtime.Goexit counts as
//     returning an error);
//   - body or a task panics: Run panics with a [*PanicError];
//   - [Nursery.Cancel] is called: Run returns its cause, or nil for a nil
//     cause;
//   - ctx is cancelled: Run returns ctx.Err().
//
// Errors returned after the nursery has been cancelled are taken to be
// consequences of the cancellation and discarded, whatever they are:
// ctx.Err(), the cause, or the error of a connection that the cancellation
// closed.
//
// When the parent is cancelled Run reports ctx.Err() rather than
// context.Cause(ctx), so that errors.Is(err, context.Canceled) and
// errors.Is(err, context.DeadlineExceeded) work as they do for any other
// context-aware function; tasks can still read the parent's cause with
// context.Cause. The parent's cancellation is reported even if every task
// returned nil afterwards, since they ran, at least partly, under a
// cancelled context.
//
// Panics are recovered, and once every goroutine of the nursery has returned
// Run panics with a *PanicError for the first of them, whatever the outcome
// was otherwise.
func Run(ctx context.Context, body func(ctx context.Context, n *Nursery) error) error {
	n := &Nursery{parent: ctx, done: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancelCause(ctx)
	n.live.Store(1) // the body

	returned := false
	defer func() {
		if !returned {
			// body called runtime.Goexit. The goroutine is going away, but the
			// tasks must still not outlive Run.
			n.finish()
		}
	}()
	n.run(func(ctx context.Context) error { return body(ctx, n) }, nil)
	returned = true
	return n.finish()
}

// finish waits for the tasks and works out Run's result.
func (n *Nursery) finish() error {
	<-n.done
	n.mu.Lock()
	err, p := n.err, n.panicked
	if !n.settled && n.ctx.Err() != nil {
		// Nothing in the nursery cancelled it, so the parent did.
		err = n.parent.Err()
	}
	n.mu.Unlock()
	n.cancel(nil) // release the context's resources
	if p != nil {
		panic(p)
	}
	return err
}

// Go starts fn in a new goroutine as a task of the nursery, passing it the
// nursery's context. It may be called by the body and by tasks, so tasks can
// start further tasks. A task started after the nursery has been cancelled
// still runs, with an already cancelled context.
//
// If a limit is set (see [Nursery.SetLimit]) and that many tasks are
// running, Go blocks until one of them returns, or until the nursery is
// cancelled: from then on Go no longer waits, and starts fn at once even
// over the limit, with the cancelled context. The limit bounds the work of a
// nursery that is running; once it is cancelled every task is meant to
// return promptly, and a Go that kept waiting could wait forever on tasks
// that are themselves waiting in Go. So every fn passed to Go runs, and no
// Go outlasts the nursery's cancellation.
//
// Go panics if called after Run has returned.
func (n *Nursery) Go(fn func(ctx context.Context) error) {
	sem := n.sem.Load()
	held := false
	if sem != nil {
		select {
		case sem.slots <- struct{}{}:
			held = true
		case <-n.ctx.Done():
			// Cancelled (perhaps long ago): try for a slot, but do not wait.
			held = sem.try()
		}
	}
	n.start(fn, sem, held)
}

// TryGo starts fn as [Nursery.Go] does, but only if that does not mean
// waiting: if a limit is set and reached, it returns false without starting
// fn. It reports whether fn was started. Unlike Go, TryGo keeps to the
// limit after the nursery has been cancelled.
//
// TryGo panics if it would start fn after Run has returned.
func (n *Nursery) TryGo(fn func(ctx context.Context) error) bool {
	sem := n.sem.Load()
	if sem != nil && !sem.try() {
		return false
	}
	n.start(fn, sem, sem != nil)
	return true
}

// SetLimit limits the number of tasks of the nursery running at once to
// limit; a negative limit, the default, removes the limit. With a limit of
// zero Go blocks until the nursery is cancelled and TryGo never starts a
// task. The body is not a task and does not count; a task started by
// [Start] counts like any other.
//
// As with errgroup.Group.SetLimit, the limit may not change while tasks
// run: SetLimit panics if any task of the nursery is running. The usual
// place to call it is the start of the body.
func (n *Nursery) SetLimit(limit int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if tasks := n.live.Load() - 1; tasks > 0 {
		panic(fmt.Errorf("nursery: SetLimit called while %d tasks are running", tasks))
	}
	if limit < 0 {
		n.sem.Store(nil)
		return
	}
	n.sem.Store(&semaphore{slots: make(chan struct{}, limit)})
}

// semaphore holds one token per running task that counts against the limit.
type semaphore struct{ slots chan struct{} }

func (s *semaphore) try() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *semaphore) release() { <-s.slots }

// start runs fn as a task; held says it holds a slot of sem, which the task
// gives back when it returns.
func (n *Nursery) start(fn func(ctx context.Context) error, sem *semaphore, held bool) {
	for {
		live := n.live.Load()
		if live == 0 {
			if held {
				sem.release()
			}
			panic("nursery: Go called after Run returned")
		}
		if n.live.CompareAndSwap(live, live+1) {
			break
		}
	}
	if !held {
		sem = nil
	}
	go n.run(fn, sem)
}

// Cancel cancels the nursery's context with cause, or with
// [context.Canceled] if cause is nil. Tasks that then return, with whatever
// error, are not failures: Run returns nil for a nil cause and cause itself
// otherwise.
//
// Cancel does nothing if the nursery has already been cancelled — by a
// failure, a panic, an earlier Cancel or its parent — whose outcome stands,
// or if Run has returned.
func (n *Nursery) Cancel(cause error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.live.Load() == 0 {
		return // Run has returned, or is about to with its result decided
	}
	if cause == nil {
		n.settleLocked(nil, context.Canceled)
	} else {
		n.settleLocked(cause, cause)
	}
}

// settleLocked makes result the outcome of Run and cancels the nursery with
// cause, unless the outcome is already fixed. n.mu must be held.
//
// The parent's cancellation does not pass through here, so it is detected:
// if the context is done although nothing settled it, the parent got there
// first, and Run will report the parent.
func (n *Nursery) settleLocked(result, cause error) {
	if n.settled {
		return
	}
	n.settled = true
	if n.ctx.Err() == nil {
		n.cancel(cause)
		// The parent may have been cancelled between the check and the
		// cancel. If it has not been, or the cause stuck anyway, this event
		// came first. (errors.Is rather than ==, which panics for errors of
		// uncomparable types; for those a tie goes to the parent.)
		if n.parent.Err() == nil || errors.Is(context.Cause(n.ctx), cause) {
			n.err = result
			return
		}
	}
	n.err = n.parent.Err()
}

// run calls fn as the body or a task: it records fn's error, recovers a
// panic, and does the bookkeeping for Go. A task that holds a slot of sem
// gives it back once its failure, if any, has cancelled the nursery, so
// that a task waiting for the slot starts with the nursery's context
// already cancelled.
func (n *Nursery) run(fn func(ctx context.Context) error, sem *semaphore) {
	var err error
	returned := false
	defer func() {
		var p *PanicError
		if !returned {
			if v := recover(); v != nil {
				p = &PanicError{Value: v, Stack: debug.Stack()}
			} else {
				err = errGoexit
			}
		}
		if p != nil || err != nil {
			n.mu.Lock()
			if p != nil {
				if n.panicked == nil {
					n.panicked = p
				}
				err = p
			}
			n.settleLocked(err, err)
			n.mu.Unlock()
		}
		if sem != nil {
			sem.release()
		}
		if n.live.Add(-1) == 0 {
			close(n.done)
		}
	}()
	err = fn(n.ctx)
	returned = true
}

// Start runs fn as a task of the nursery and waits for it to call started.
// It returns the value fn passed to started, and fn goes on running in the
// nursery. This is how a task that needs setting up — a server that must be
// listening before clients dial it — tells its starter that it is ready, and
// hands back what the starter needs, such as the address.
//
// If fn returns before calling started, Start returns fn's error, or
// [ErrNotStarted] if that was nil; that error belongs to the caller of Start
// and does not by itself fail the nursery. Once started has been called, fn
// is an ordinary task and its error fails the nursery as any other would.
//
// If the nursery is cancelled while Start is waiting, Start returns at once
// with the cause of the cancellation, and fn, still a task of the nursery, is
// left to notice the cancellation and return.
//
// With a limit set (see [Nursery.SetLimit]), fn counts as a task, and Start
// first waits for a free slot as Go does.
//
// Only the first call to started counts; later calls, and calls after Start
// has returned, do nothing. started never blocks.
func Start[T any](n *Nursery, fn func(ctx context.Context, started func(T)) error) (T, error) {
	s := &startup[T]{ready: make(chan struct{})}
	n.Go(func(ctx context.Context) error {
		err := fn(ctx, s.started)
		if s.exited(err) {
			return nil // Start's caller gets the error instead
		}
		return err
	})
	select {
	case <-s.ready:
	case <-n.ctx.Done():
		if s.abandon() {
			var zero T
			return zero, context.Cause(n.ctx)
		}
		// fn settled the startup at the same moment; its result wins.
	}
	return s.val, s.err
}

// startup is the handshake between Start and its task. The first of started,
// exited and abandon moves it out of waiting; the others then do nothing.
type startup[T any] struct {
	mu    sync.Mutex
	done  bool          // no longer waiting
	ready chan struct{} // closed by started or exited
	val   T
	err   error
}

func (s *startup[T]) started(v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	s.done = true
	s.val = v
	close(s.ready)
}

// exited reports whether fn returned before started, in which case err is
// now Start's to return.
func (s *startup[T]) exited(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return false
	}
	s.done = true
	if err == nil {
		err = ErrNotStarted
	}
	s.err = err
	close(s.ready)
	return true
}

// abandon reports whether Start gave up before fn settled the startup.
func (s *startup[T]) abandon() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return false
	}
	s.done = true
	return true
}

// A PanicError is what [Run] panics with when the body or a task panicked.
type PanicError struct {
	// Value is the value the goroutine panicked with.
	Value any
	// Stack is the stack of the goroutine that panicked, taken when the
	// panic was recovered, as printed by [runtime/debug.Stack].
	Stack []byte
}

// Error reports the panic value followed by the stack of the goroutine that
// panicked. The stack is included because when Run re-panics, the runtime
// prints Error and the stack of Run's caller: without it the crash report
// would not say where the panic happened.
func (p *PanicError) Error() string {
	return fmt.Sprintf("nursery: panic: %v\n\n%s", p.Value, p.Stack)
}

// Unwrap returns Value if it is an error, so that errors.Is and errors.As see
// through the PanicError, and nil otherwise.
func (p *PanicError) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}
