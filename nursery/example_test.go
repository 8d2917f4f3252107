package nursery_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/wsnursery/wsnursery/nursery"
)

// The first task to fail cancels the others, and Run returns its error once
// every task has returned.
func Example() {
	errDisk := errors.New("disk full")
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		n.Go(func(ctx context.Context) error {
			<-ctx.Done() // a long-running job, stopped by the failure below
			fmt.Println("job stopped:", context.Cause(ctx))
			return ctx.Err() // echoes the cancellation: not a failure
		})
		n.Go(func(ctx context.Context) error {
			return errDisk
		})
		return nil
	})
	fmt.Println("Run:", err, err == errDisk)
	// Output:
	// job stopped: disk full
	// Run: disk full true
}

func ExampleRun() {
	var mu sync.Mutex
	var squares []int
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		for i := 1; i <= 4; i++ {
			n.Go(func(ctx context.Context) error {
				mu.Lock()
				defer mu.Unlock()
				squares = append(squares, i*i)
				return nil
			})
		}
		return nil
	})
	// Run has waited for every task: squares is complete.
	slices.Sort(squares)
	fmt.Println(squares, err)
	// Output: [1 4 9 16] <nil>
}

// Tasks can start tasks of their own in the same nursery; Run waits for all
// of them.
func ExampleNursery_Go() {
	var mu sync.Mutex
	var visited []string
	var walk func(n *nursery.Nursery, path string, depth int)
	walk = func(n *nursery.Nursery, path string, depth int) {
		n.Go(func(ctx context.Context) error {
			mu.Lock()
			visited = append(visited, path)
			mu.Unlock()
			if depth > 0 {
				walk(n, path+"/a", depth-1)
				walk(n, path+"/b", depth-1)
			}
			return nil
		})
	}
	nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		walk(n, "root", 2)
		return nil
	})
	slices.Sort(visited)
	fmt.Println(visited)
	// Output: [root root/a root/a/a root/a/b root/b root/b/a root/b/b]
}

// Start a server, learn its address, and dial it: Start returns once the
// listener exists, so the client cannot dial too early.
func ExampleStart() {
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		addr, err := nursery.Start(n, func(ctx context.Context, started func(net.Addr)) error {
			var lc net.ListenConfig
			ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
			if err != nil {
				return err // Start returns this: the server never started
			}
			defer ln.Close()
			stop := context.AfterFunc(ctx, func() { ln.Close() })
			defer stop()

			started(ln.Addr())

			for {
				conn, err := ln.Accept()
				if err != nil {
					// After Cancel this is a consequence of the
					// cancellation, and the nursery discards it.
					return err
				}
				n.Go(func(ctx context.Context) error {
					defer conn.Close()
					_, err := io.WriteString(conn, "hello from the server\n")
					return err
				})
			}
		})
		if err != nil {
			return err
		}

		var d net.Dialer
		conn, err := d.DialContext(ctx, addr.Network(), addr.String())
		if err != nil {
			return err
		}
		defer conn.Close()
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return err
		}
		fmt.Print(line)

		n.Cancel(nil) // done: stop the server
		return nil
	})
	fmt.Println("Run:", err)
	// Output:
	// hello from the server
	// Run: <nil>
}

// Cancel stops every task. Tasks returning because of it are not failures:
// with a nil cause Run returns nil, otherwise the cause.
func ExampleNursery_Cancel() {
	errShutdown := errors.New("shutting down")
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		for range 3 {
			n.Go(func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			})
		}
		n.Cancel(errShutdown)
		return nil
	})
	fmt.Println("Run:", err)
	// Output: Run: shutting down
}

// A panic in a task reaches the caller of Run, after the other tasks have
// been cancelled and have returned.
func ExamplePanicError() {
	defer func() {
		pe := recover().(*nursery.PanicError)
		fmt.Println("recovered:", pe.Value)
	}()
	nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		n.Go(func(ctx context.Context) error {
			<-ctx.Done()
			fmt.Println("sibling cancelled")
			return nil
		})
		n.Go(func(ctx context.Context) error {
			var m map[string]int
			m["x"] = 1 // panics: assignment to entry in nil map
			return nil
		})
		return nil
	})
	// Output:
	// sibling cancelled
	// recovered: assignment to entry in nil map
}

// At most two downloads at a time: Go waits for a free slot.
func ExampleNursery_SetLimit() {
	var mu sync.Mutex
	running, most := 0, 0
	download := func(ctx context.Context) error {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(time.Millisecond) // the work
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	}
	err := nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		n.SetLimit(2)
		for range 6 {
			n.Go(download)
		}
		return nil
	})
	fmt.Println(err, most <= 2)
	// Output: <nil> true
}

// TryGo starts a task only if a slot is free; a walk that may not exceed
// the limit does the work itself when refused, so that tasks never wait on
// one another for slots.
func ExampleNursery_TryGo() {
	var mu sync.Mutex
	var visited []string
	var walk func(ctx context.Context, n *nursery.Nursery, path string, depth int) error
	walk = func(ctx context.Context, n *nursery.Nursery, path string, depth int) error {
		mu.Lock()
		visited = append(visited, path)
		mu.Unlock()
		if depth == 0 {
			return nil
		}
		for _, child := range []string{"/a", "/b"} {
			task := func(ctx context.Context) error { return walk(ctx, n, path+child, depth-1) }
			if !n.TryGo(task) {
				if err := task(ctx); err != nil { // no free slot: walk it here
					return err
				}
			}
		}
		return nil
	}
	nursery.Run(context.Background(), func(ctx context.Context, n *nursery.Nursery) error {
		n.SetLimit(2)
		return walk(ctx, n, "root", 2)
	})
	slices.Sort(visited)
	fmt.Println(visited)
	// Output: [root root/a root/a/a root/a/b root/b root/b/a root/b/b]
}
