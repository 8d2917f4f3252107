package nursery_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wsnursery/wsnursery/nursery"
)

// gauge counts the tasks running at once and remembers the most.
type gauge struct {
	mu        sync.Mutex
	now, most int
	started   int
}

func (g *gauge) enter() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now++
	g.started++
	g.most = max(g.most, g.now)
}

func (g *gauge) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now--
}

func (g *gauge) read() (now, most, started int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.now, g.most, g.started
}

// held is a task that counts itself in g and returns once release is
// closed, ignoring its context (so that the limit, not a cancellation,
// decides when it ends).
func held(g *gauge, release <-chan struct{}) func(context.Context) error {
	return func(context.Context) error {
		g.enter()
		defer g.leave()
		<-release
		return nil
	}
}

func TestSetLimitBoundsRunningTasks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g gauge
		releases := make([]chan struct{}, 10)
		for i := range releases {
			releases[i] = make(chan struct{})
		}
		var spawned atomic.Int32 // Go calls that have returned
		done := make(chan error, 1)
		go func() {
			done <- nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
				n.SetLimit(3)
				for _, r := range releases {
					n.Go(held(&g, r))
					spawned.Add(1)
				}
				return nil
			})
		}()
		synctest.Wait()
		if now, _, _ := g.read(); now != 3 || spawned.Load() != 3 {
			t.Fatalf("at the limit: %d tasks running and %d Go calls returned, want 3 and 3 (the 4th Go blocks)", now, spawned.Load())
		}
		// Each task that returns lets exactly one more start.
		for i := range releases {
			close(releases[i])
			synctest.Wait()
			wantSpawned := min(i+4, 10)
			if got := int(spawned.Load()); got != wantSpawned {
				t.Fatalf("after %d tasks returned: %d Go calls returned, want %d", i+1, got, wantSpawned)
			}
		}
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if _, most, started := g.read(); most != 3 || started != 10 {
			t.Errorf("%d tasks ran, at most %d at once; want 10, at most 3", started, most)
		}
	})
}

func TestTryGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g gauge
		release := make(chan struct{})
		var got []bool
		err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.SetLimit(2)
			for range 3 {
				got = append(got, n.TryGo(held(&g, release)))
			}
			synctest.Wait() // both tasks are running
			close(release)
			synctest.Wait() // both tasks have returned
			got = append(got, n.TryGo(held(&g, release)))
			return nil
		})
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
		if want := []bool{true, true, false, true}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("TryGo reported %v, want %v", got, want)
		}
		if _, most, started := g.read(); started != 3 || most != 2 {
			t.Errorf("%d tasks started, at most %d at once; want 3, at most 2", started, most)
		}
	})
}

func TestTryGoWithoutLimit(t *testing.T) {
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		for i := range 100 {
			if !n.TryGo(func(context.Context) error { return nil }) {
				return fmt.Errorf("TryGo %d refused without a limit", i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSetLimitZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Second, cancel)
		var ran atomic.Bool
		start := time.Now()
		err := nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
			n.SetLimit(0)
			if n.TryGo(func(context.Context) error { ran.Store(true); return nil }) {
				return errors.New("TryGo started a task under a limit of zero")
			}
			// Go waits until the nursery is cancelled, then starts the task.
			n.Go(func(ctx context.Context) error {
				if ctx.Err() == nil {
					return errors.New("the task started before the cancellation")
				}
				ran.Store(true)
				return nil
			})
			return nil
		})
		if err != context.Canceled {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("Go returned after %v, want 1s, at the cancellation", d)
		}
		if !ran.Load() {
			t.Error("the task passed to Go never ran")
		}
	})
}

func TestSetLimitNegativeRemovesLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g gauge
		release := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
				n.SetLimit(1)
				n.SetLimit(-1)
				for range 5 {
					n.Go(held(&g, release))
				}
				return nil
			})
		}()
		synctest.Wait()
		if now, _, _ := g.read(); now != 5 {
			t.Errorf("%d tasks running, want all 5", now)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestSetLimitPanicsWhileTasksRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var fromBody, fromTask any
		var taskDone sync.WaitGroup
		taskDone.Add(1)
		err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.Go(func(context.Context) error {
				defer taskDone.Done()
				fromTask = recovered(func() { n.SetLimit(1) })
				<-release
				return nil
			})
			synctest.Wait()
			fromBody = recovered(func() { n.SetLimit(2) })
			close(release)
			taskDone.Wait()
			synctest.Wait() // the task's goroutine has finished
			// With no task left, the limit may change again.
			if v := recovered(func() { n.SetLimit(1) }); v != nil {
				return fmt.Errorf("SetLimit with no task running panicked: %v", v)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for who, v := range map[string]any{"body": fromBody, "task": fromTask} {
			if e, ok := v.(error); !ok || !strings.Contains(e.Error(), "SetLimit called while 1 tasks are running") {
				t.Errorf("SetLimit from the %s while a task runs: panicked with %v, want the SetLimit error", who, v)
			}
		}
	})
}

// A Go waiting for a slot when the nursery is cancelled stops waiting and
// starts its task at once, over the limit, with the cancelled context; the
// task holding the slot is still running.
func TestGoWaitingForSlotWhenCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g gauge
		release := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(time.Second, cancel)
		var late error
		err := nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
			n.SetLimit(1)
			n.Go(held(&g, release)) // ignores the cancellation until released
			n.Go(func(ctx context.Context) error {
				g.enter()
				defer g.leave()
				late = ctx.Err()
				return nil
			})
			synctest.Wait() // the second task has run
			close(release)
			return nil
		})
		if err != context.Canceled {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
		if late != context.Canceled {
			t.Errorf("the task started after the wait saw ctx.Err() = %v, want context.Canceled", late)
		}
		if _, most, started := g.read(); most != 2 || started != 2 {
			t.Errorf("%d tasks ran, at most %d at once; want 2, both at once (over the limit)", started, most)
		}
		// TryGo, on the other hand, keeps to the limit after a cancellation:
		// checked in TestTryGoKeepsLimitWhenCancelled.
	})
}

func TestTryGoKeepsLimitWhenCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var g gauge
		var ok bool
		err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.SetLimit(1)
			n.Go(held(&g, release))
			n.Cancel(nil)
			ok = n.TryGo(held(&g, release))
			close(release)
			return nil
		})
		if err != nil {
			t.Errorf("Run = %v, want nil after Cancel(nil)", err)
		}
		if ok {
			t.Error("TryGo started a task over the limit of a cancelled nursery")
		}
	})
}

// A failing task gives its slot back only after its error has cancelled the
// nursery: the task that was waiting for the slot starts with the failure
// as its context's cause, never with a live context. (Many rounds: were the
// slot given back first, the waiting task would win that race in some.)
func TestSlotFreedAfterFailureIsRecorded(t *testing.T) {
	for range 2000 {
		var cause error
		err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
			n.SetLimit(1)
			n.Go(func(context.Context) error { return errA })
			n.Go(func(ctx context.Context) error {
				cause = context.Cause(ctx)
				return nil
			})
			return nil
		})
		if err != errA {
			t.Fatalf("Run = %v, want errA", err)
		}
		if cause != errA {
			t.Fatalf("the waiting task started with cause %v, want errA", cause)
		}
	}
}

// Tasks that start tasks deadlock at the limit until the nursery is
// cancelled, when every waiting Go goes ahead (see Go). A recursive walk
// with a limit uses TryGo and does the work inline when it is refused.
func TestNestedGoAtLimitEndsWithCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var children atomic.Int32
		start := time.Now()
		err := nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
			n.SetLimit(2)
			for range 2 {
				n.Go(func(ctx context.Context) error {
					// Both slots are held by tasks like this one.
					n.Go(func(ctx context.Context) error { children.Add(1); return nil })
					return nil
				})
			}
			return nil
		})
		if err != context.DeadlineExceeded {
			t.Errorf("Run = %v, want the parent's deadline", err)
		}
		if d := time.Since(start); d != time.Minute {
			t.Errorf("Run returned after %v, want 1m, at the deadline", d)
		}
		if children.Load() != 2 {
			t.Errorf("%d children ran, want 2", children.Load())
		}
	})
}

func TestStartCountsAgainstLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var g gauge
		var startReturned atomic.Bool
		done := make(chan error, 1)
		go func() {
			done <- nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
				n.SetLimit(1)
				n.Go(held(&g, release))
				v, err := nursery.Start(n, func(ctx context.Context, started func(int)) error {
					started(42)
					return nil
				})
				startReturned.Store(true)
				if v != 42 || err != nil {
					return fmt.Errorf("Start = %v, %v", v, err)
				}
				return nil
			})
		}()
		synctest.Wait()
		if startReturned.Load() {
			t.Fatal("Start ran its task while the limit was reached")
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !startReturned.Load() {
			t.Fatal("Start did not return")
		}
	})
}
