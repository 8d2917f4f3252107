package nursery_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsnursery/wsnursery/nursery"
	"go.uber.org/goleak"
)

var (
	errA = errors.New("task A failed")
	errB = errors.New("task B failed")
)

// recovered calls f and returns what it panicked with, or nil.
func recovered(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

// mustPanicError calls f and returns the *nursery.PanicError it panicked with.
func mustPanicError(t *testing.T, f func()) *nursery.PanicError {
	t.Helper()
	v := recovered(f)
	pe, ok := v.(*nursery.PanicError)
	if !ok {
		t.Fatalf("panicked with %T %#v, want *nursery.PanicError", v, v)
	}
	return pe
}

// waitAndEcho is a task that blocks until the nursery is cancelled, stores
// the cause it saw, and returns ctx.Err(), as a well-behaved task does.
func waitAndEcho(cause *error) func(context.Context) error {
	return func(ctx context.Context) error {
		<-ctx.Done()
		*cause = context.Cause(ctx)
		return ctx.Err()
	}
}

func TestRunWaitsForTasksAndTheirChildren(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		releaseChildren := make(chan struct{})
		releaseGrandchildren := make(chan struct{})
		var finished atomic.Int32
		done := make(chan error, 1)
		go func() {
			done <- nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
				for range 3 {
					n.Go(func(ctx context.Context) error {
						<-releaseChildren
						n.Go(func(ctx context.Context) error {
							<-releaseGrandchildren
							finished.Add(1)
							return nil
						})
						finished.Add(1)
						return nil
					})
				}
				return nil // the body is done long before its tasks
			})
		}()

		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Run returned %v while its tasks were blocked", err)
		default:
		}

		close(releaseChildren)
		synctest.Wait()
		if got := finished.Load(); got != 3 {
			t.Fatalf("%d tasks finished, want the 3 children", got)
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned %v while grandchildren were blocked", err)
		default:
		}

		close(releaseGrandchildren)
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if got := finished.Load(); got != 6 {
			t.Fatalf("%d tasks finished before Run returned, want 6", got)
		}
	})
}

func TestNoGoroutineOutlivesRun(t *testing.T) {
	// goleak catches helper goroutines that the nursery might leave behind;
	// the counter catches tasks still running when Run returns.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var returned atomic.Int32
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		for range 50 {
			n.Go(func(ctx context.Context) error {
				defer returned.Add(1)
				n.Go(func(ctx context.Context) error {
					defer returned.Add(1)
					<-ctx.Done()
					return ctx.Err()
				})
				<-ctx.Done()
				return ctx.Err()
			})
		}
		n.Cancel(nil)
		return nil
	})
	if got := returned.Load(); got != 100 {
		t.Errorf("%d of 100 tasks had returned when Run returned", got)
	}
	if err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestFirstFailureCancelsSiblings(t *testing.T) {
	// However a sibling reacts to the cancellation, what it returns does not
	// displace the failure.
	echoes := map[string]func(ctx context.Context) error{
		"ctx.Err":       func(ctx context.Context) error { return ctx.Err() },
		"Cause":         func(ctx context.Context) error { return context.Cause(ctx) },
		"wrapped Err":   func(ctx context.Context) error { return fmt.Errorf("reading: %w", ctx.Err()) },
		"nil":           func(ctx context.Context) error { return nil },
		"other failure": func(ctx context.Context) error { return errB },
	}
	for name, echo := range echoes {
		for _, failer := range []string{"task", "body"} {
			t.Run(name+"/"+failer, func(t *testing.T) {
				causes := make([]error, 3)
				err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
					var ready sync.WaitGroup
					for i := range causes {
						ready.Add(1)
						n.Go(func(ctx context.Context) error {
							ready.Done()
							<-ctx.Done()
							causes[i] = context.Cause(ctx)
							return echo(ctx)
						})
					}
					ready.Wait()
					if failer == "body" {
						return errA
					}
					n.Go(func(ctx context.Context) error { return errA })
					return nil
				})
				if err != errA {
					t.Errorf("Run = %v, want errA itself", err)
				}
				for i, c := range causes {
					if c != errA {
						t.Errorf("sibling %d saw cause %v, want errA", i, c)
					}
				}
			})
		}
	}
}

func TestFirstFailureWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(ctx context.Context) error {
				time.Sleep(2 * time.Second) // ignores ctx, then fails on its own
				return errB
			})
			n.Go(func(ctx context.Context) error {
				time.Sleep(time.Second)
				return errA
			})
			return nil
		})
		if err != errA {
			t.Errorf("Run = %v, want errA, the first failure", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("Run returned after %v, want 2s: it must wait for the slow task", d)
		}
	})
}

// Whichever of many simultaneous failures wins, Run reports the one the
// tasks were cancelled with.
func TestConcurrentFailuresAgreeWithCause(t *testing.T) {
	for range 200 {
		var seen error
		err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			gate := make(chan struct{})
			n.Go(waitAndEcho(&seen))
			for i := range 8 {
				n.Go(func(ctx context.Context) error {
					<-gate
					return fmt.Errorf("failure %d", i)
				})
			}
			close(gate)
			<-ctx.Done()
			return fmt.Errorf("body: %w", context.Cause(ctx))
		})
		if err == nil || err != seen {
			t.Fatalf("Run = %v, but the tasks saw cause %v", err, seen)
		}
	}
}

func explode() { panic("boom") }

func TestTaskPanic(t *testing.T) {
	var siblingCause error
	siblingDone := false
	pe := mustPanicError(t, func() {
		nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(ctx context.Context) error {
				<-ctx.Done()
				siblingCause = context.Cause(ctx)
				siblingDone = true
				return ctx.Err()
			})
			n.Go(func(ctx context.Context) error {
				explode()
				return nil
			})
			return nil
		})
	})
	if pe.Value != "boom" {
		t.Errorf("Value = %#v, want \"boom\"", pe.Value)
	}
	if !strings.Contains(string(pe.Stack), "nursery_test.explode") {
		t.Errorf("Stack does not show the panicking function:\n%s", pe.Stack)
	}
	if !siblingDone {
		t.Error("Run panicked before the sibling task returned")
	}
	if siblingCause != pe {
		t.Errorf("sibling saw cause %v, want the *PanicError", siblingCause)
	}
	if msg := pe.Error(); !strings.Contains(msg, "boom") || !strings.Contains(msg, "nursery_test.explode") {
		t.Errorf("Error() = %q, want the value and the stack", msg)
	}
	if pe.Unwrap() != nil {
		t.Errorf("Unwrap() = %v for a non-error value, want nil", pe.Unwrap())
	}
}

func TestBodyPanic(t *testing.T) {
	siblingDone := false
	pe := mustPanicError(t, func() {
		nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(ctx context.Context) error {
				<-ctx.Done()
				siblingDone = true
				return ctx.Err()
			})
			explode()
			return nil
		})
	})
	if !siblingDone {
		t.Error("Run panicked before the task returned")
	}
	if pe.Value != "boom" || !strings.Contains(string(pe.Stack), "nursery_test.explode") {
		t.Errorf("PanicError{%#v, %s}, want boom and the body's stack", pe.Value, pe.Stack)
	}
}

func TestPanicWithErrorUnwraps(t *testing.T) {
	pe := mustPanicError(t, func() {
		nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(ctx context.Context) error { panic(errA) })
			return nil
		})
	})
	if !errors.Is(pe, errA) || pe.Unwrap() != errA {
		t.Errorf("PanicError wrapping errA: errors.Is = false, Unwrap = %v", pe.Unwrap())
	}
}

func TestPanicIsNotHiddenByEarlierFailure(t *testing.T) {
	pe := mustPanicError(t, func() {
		nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(ctx context.Context) error {
				<-ctx.Done() // only errA can get us here
				panic("late")
			})
			n.Go(func(ctx context.Context) error { return errA })
			return nil
		})
	})
	if pe.Value != "late" {
		t.Errorf("Value = %#v, want \"late\"", pe.Value)
	}
}

func TestFirstPanicIsReported(t *testing.T) {
	pe := mustPanicError(t, func() {
		nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(ctx context.Context) error {
				<-ctx.Done() // only the first panic can get us here
				panic("second")
			})
			n.Go(func(ctx context.Context) error { panic("first") })
			return nil
		})
	})
	if pe.Value != "first" {
		t.Errorf("Value = %#v, want \"first\"", pe.Value)
	}
}

func TestTaskGoexit(t *testing.T) {
	// In a bubble, so that a nursery left waiting on the cancelled sibling
	// fails as a deadlock at once.
	synctest.Test(t, func(t *testing.T) {
		var seen error
		err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(waitAndEcho(&seen))
			n.Go(func(ctx context.Context) error {
				runtime.Goexit()
				return nil
			})
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "Goexit") {
			t.Fatalf("Run = %v, want an error about runtime.Goexit", err)
		}
		if seen != err {
			t.Errorf("sibling saw cause %v, want %v", seen, err)
		}
	})
}

func TestBodyGoexitStillWaitsForTasks(t *testing.T) {
	taskDone := make(chan struct{})
	runReturned := false
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(ctx context.Context) error {
				<-ctx.Done()
				close(taskDone)
				return nil
			})
			runtime.Goexit()
			return nil
		})
		runReturned = true
	}()
	<-finished
	if runReturned {
		t.Fatal("Run returned normally after its body called runtime.Goexit")
	}
	select {
	case <-taskDone:
	default:
		t.Fatal("the goroutine running Run exited before the task returned")
	}
}

func TestParentCancelled(t *testing.T) {
	errParent := errors.New("parent gave up")
	parent, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	causes := make([]error, 3)
	err := nursery.Run(parent, func(ctx context.Context, n *nursery.Nursery) error {
		var ready sync.WaitGroup
		for i := range causes {
			ready.Add(1)
			n.Go(func(ctx context.Context) error {
				ready.Done()
				<-ctx.Done()
				causes[i] = context.Cause(ctx)
				return context.Cause(ctx)
			})
		}
		ready.Wait()
		cancel(errParent)
		return nil
	})
	// The tasks echoed the parent's cause, but Run reports its Err().
	if err != parent.Err() || !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want the parent's Err(), context.Canceled", err)
	}
	for i, c := range causes {
		if c != errParent {
			t.Errorf("task %d saw cause %v, want the parent's cause", i, c)
		}
	}
}

func TestParentDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		parent, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := nursery.Run(parent, func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			})
			return nil
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("Run returned after %v, want 5s", d)
		}
	})
}

func TestParentCancelledEvenIfTasksReturnNil(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := nursery.Run(parent, func(ctx context.Context, n *nursery.Nursery) error {
		ran = true
		return nil
	})
	if !ran {
		t.Error("body did not run")
	}
	if err != context.Canceled {
		t.Errorf("Run = %v, want context.Canceled from the parent", err)
	}
}

func TestFailureBeforeParentCancelWins(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := nursery.Run(parent, func(ctx context.Context, n *nursery.Nursery) error {
		n.Go(func(ctx context.Context) error {
			<-ctx.Done()
			cancel() // the parent is cancelled while the nursery shuts down
			return ctx.Err()
		})
		n.Go(func(ctx context.Context) error { return errA })
		return nil
	})
	if err != errA {
		t.Errorf("Run = %v, want errA", err)
	}
}

func TestFailureAfterParentCancelIsDiscarded(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := nursery.Run(parent, func(ctx context.Context, n *nursery.Nursery) error {
		n.Go(func(ctx context.Context) error {
			<-ctx.Done()
			return errB // e.g. a connection error caused by the shutdown
		})
		cancel()
		return nil
	})
	if err != context.Canceled {
		t.Errorf("Run = %v, want the parent's context.Canceled", err)
	}
}

func TestCancel(t *testing.T) {
	errStop := errors.New("stop")
	tests := []struct {
		name      string
		cause     error
		wantCause error
		wantErr   error
	}{
		{"nil", nil, context.Canceled, nil},
		{"cause", errStop, errStop, errStop},
	}
	echoes := map[string]func(ctx context.Context) error{
		"ctx.Err":        func(ctx context.Context) error { return ctx.Err() },
		"Cause":          func(ctx context.Context) error { return context.Cause(ctx) },
		"nil":            func(ctx context.Context) error { return nil },
		"shutdown error": func(ctx context.Context) error { return errB },
	}
	for _, tt := range tests {
		for name, echo := range echoes {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				causes := make([]error, 3)
				err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
					for i := range causes {
						n.Go(func(ctx context.Context) error {
							<-ctx.Done()
							causes[i] = context.Cause(ctx)
							return echo(ctx)
						})
					}
					n.Cancel(tt.cause)
					return echo(ctx)
				})
				if err != tt.wantErr {
					t.Errorf("Run = %v, want %v", err, tt.wantErr)
				}
				for i, c := range causes {
					if c != tt.wantCause {
						t.Errorf("task %d saw cause %v, want %v", i, c, tt.wantCause)
					}
				}
			})
		}
	}
}

func TestCancelFromTaskAndLaterGo(t *testing.T) {
	errStop := errors.New("stop")
	var late error
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		n.Go(func(ctx context.Context) error {
			n.Cancel(errStop)
			n.Go(func(ctx context.Context) error {
				late = ctx.Err() // started after Cancel: already cancelled
				return nil
			})
			return nil
		})
		return nil
	})
	if err != errStop {
		t.Errorf("Run = %v, want errStop", err)
	}
	if late != context.Canceled {
		t.Errorf("task started after Cancel saw ctx.Err() = %v, want context.Canceled", late)
	}
}

func TestFailureBeforeCancelWins(t *testing.T) {
	var seen error
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		n.Go(waitAndEcho(&seen))
		n.Go(func(ctx context.Context) error { return errA })
		<-ctx.Done()
		n.Cancel(errors.New("too late"))
		n.Cancel(nil)
		return nil
	})
	if err != errA || seen != errA {
		t.Errorf("Run = %v, cause seen = %v, want errA for both", err, seen)
	}
}

func TestCancelBeforeParentWins(t *testing.T) {
	errStop := errors.New("stop")
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := nursery.Run(parent, func(ctx context.Context, n *nursery.Nursery) error {
		n.Cancel(errStop)
		cancel()
		return ctx.Err()
	})
	if err != errStop {
		t.Errorf("Run = %v, want errStop", err)
	}
}

func TestAfterRunReturned(t *testing.T) {
	var saved *nursery.Nursery
	if err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		saved = n
		return nil
	}); err != nil {
		t.Fatalf("Run = %v", err)
	}

	saved.Cancel(errA) // a no-op, not a panic

	v := recovered(func() { saved.Go(func(ctx context.Context) error { return nil }) })
	if msg, _ := v.(string); !strings.Contains(msg, "Go called after Run returned") {
		t.Errorf("Go after Run panicked with %#v, want a message saying Go was called after Run returned", v)
	}
	v = recovered(func() {
		nursery.Start(saved, func(ctx context.Context, started func(int)) error { return nil })
	})
	if msg, _ := v.(string); !strings.Contains(msg, "after Run returned") {
		t.Errorf("Start after Run panicked with %#v, want the same message", v)
	}
}

func TestStartReturnsStartedValueAndTaskKeepsRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		taskDone := make(chan struct{})
		err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			v, err := nursery.Start(n, func(ctx context.Context, started func(int)) error {
				defer close(taskDone)
				time.Sleep(3 * time.Second) // setting up
				started(42)
				started(43) // ignored
				<-ctx.Done()
				return ctx.Err()
			})
			if v != 42 || err != nil {
				t.Errorf("Start = %v, %v; want 42, nil", v, err)
			}
			if d := time.Since(start); d != 3*time.Second {
				t.Errorf("Start returned after %v, want 3s, when started was called", d)
			}
			synctest.Wait()
			select {
			case <-taskDone:
				t.Error("the task stopped when Start returned")
			default:
			}
			n.Cancel(nil)
			return nil
		})
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		select {
		case <-taskDone:
		default:
			t.Error("Run returned before the started task")
		}
	})
}

func TestStartTaskFailsBeforeStarted(t *testing.T) {
	tests := []struct {
		name string
		ret  error
		want error
	}{
		{"error", errA, errA},
		{"nil", nil, nursery.ErrNotStarted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var siblingErr error
			err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
				v, err := nursery.Start(n, func(ctx context.Context, started func(string)) error {
					return tt.ret
				})
				if v != "" || err != tt.want {
					t.Errorf("Start = %q, %v; want \"\", %v", v, err, tt.want)
				}
				n.Go(func(ctx context.Context) error {
					siblingErr = ctx.Err()
					return nil
				})
				return nil // the caller of Start chooses to carry on
			})
			if err != nil {
				t.Errorf("Run = %v; an error before started must go to Start's caller, not the nursery", err)
			}
			if siblingErr != nil {
				t.Errorf("a later task saw ctx.Err() = %v, want nil", siblingErr)
			}
		})
	}
}

func TestStartedTaskFailureFailsNursery(t *testing.T) {
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		_, err := nursery.Start(n, func(ctx context.Context, started func(int)) error {
			started(1)
			return errA
		})
		if err != nil {
			t.Errorf("Start = %v, want nil", err)
		}
		<-ctx.Done()
		return ctx.Err()
	})
	if err != errA {
		t.Errorf("Run = %v, want errA from the started task", err)
	}
}

func TestStartReturnsWhenNurseryCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		release := make(chan struct{})
		err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(ctx context.Context) error {
				time.Sleep(time.Second)
				return errA
			})
			startedFn := make(chan func(int), 1)
			v, err := nursery.Start(n, func(ctx context.Context, started func(int)) error {
				startedFn <- started
				<-release // deaf to cancellation for a while
				return ctx.Err()
			})
			if v != 0 || err != errA {
				t.Errorf("Start = %v, %v; want 0 and the cancellation cause errA", v, err)
			}
			if d := time.Since(start); d != time.Second {
				t.Errorf("Start returned after %v, want 1s, when the nursery was cancelled", d)
			}
			(<-startedFn)(7) // too late: a no-op
			close(release)
			return err
		})
		if err != errA {
			t.Errorf("Run = %v, want errA", err)
		}
	})
}

// errList is an error type whose values cannot be compared with ==.
type errList []error

func (l errList) Error() string { return fmt.Sprintf("%d errors", len(l)) }

func TestUncomparableError(t *testing.T) {
	var seen error
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		n.Go(waitAndEcho(&seen))
		n.Go(func(ctx context.Context) error { return errList{errA, errB} })
		return nil
	})
	if l, ok := err.(errList); !ok || len(l) != 2 || l[0] != errA {
		t.Errorf("Run = %#v, want the errList", err)
	}
	if l, ok := seen.(errList); !ok || len(l) != 2 {
		t.Errorf("sibling saw cause %#v, want the errList", seen)
	}
}
