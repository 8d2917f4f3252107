// Package nursery provides structured concurrency: a scope that owns every
// goroutine started in it and does not end until all of them have returned.
//
// The model is Python trio's nursery. [Run] opens a nursery, calls its body
// with a context and a [*Nursery], and returns only once the body and every
// task started with [Nursery.Go] or [Start] have returned. No goroutine
// started through the nursery outlives Run, so a function that uses one
// cannot leak work into its caller, and a caller that cancels its context can
// rely on the work being over once Run has returned.
//
// # Failure
//
// The body and the tasks share one context. The first of them to return a
// non-nil error cancels it, with that error as the cause: every other task
// sees ctx.Done() close and [context.Cause] report the error, and Run returns
// the very same error value. Errors returned after the nursery has been
// cancelled are taken to be consequences of the cancellation (typically
// ctx.Err() or a wrapped form of it) and are discarded, so they never displace
// the error that started the shutdown. This matches
// [golang.org/x/sync/errgroup], which reports only the first error, with one
// difference: [Nursery.Cancel] and the cancellation of the parent context
// count as "firsts" too, so Run's result always agrees with the cause the
// tasks were cancelled with. [Run] lists the rules.
//
// # Panics
//
// A panic in a task is not allowed to kill the process from a goroutine that
// the caller cannot see. It is recovered, the nursery is cancelled, the other
// tasks are waited for, and then Run panics in its caller's goroutine with a
// [*PanicError] that carries the original value and the stack of the
// goroutine that panicked. A panic is never discarded, even when the nursery
// had already failed for another reason.
//
// # Starting services
//
// [Start] is trio's nursery.start: it runs a task in the nursery and waits
// until the task reports, by calling started, that it is ready — a server
// that is listening, say, with the address it listens on. The task keeps
// running in the nursery afterwards.
//
// # Limiting concurrency
//
// [Nursery.SetLimit] and [Nursery.TryGo] work as errgroup's do: with a limit
// of n, at most n tasks run at once, Go waits for a free slot and TryGo
// starts a task only if one is free. The one difference is cancellation: a
// Go waiting for a slot stops waiting once the nursery is cancelled and
// starts its task at once, over the limit, with the cancelled context, so
// that every function passed to Go runs and no Go waits on tasks that may be
// waiting themselves. Tasks that start tasks should use TryGo for that.
//
// # Example
//
//	err := nursery.Run(ctx, func(ctx context.Context, n *nursery.Nursery) error {
//		for _, url := range urls {
//			n.Go(func(ctx context.Context) error {
//				return fetch(ctx, url) // the first error cancels the other fetches
//			})
//		}
//		return nil
//	})
//	// Every fetch has returned here; err is the first failure, if any.
package nursery
