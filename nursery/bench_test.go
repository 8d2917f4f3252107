package nursery_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/wsnursery/wsnursery/nursery"
	"golang.org/x/sync/errgroup"
)

// The cost of the nursery's bookkeeping: N trivial tasks started and waited
// for, compared with a bare sync.WaitGroup and with an errgroup that has a
// context, which is the closest thing in the standard toolbox. Each variant
// builds its task function once per group, so that only the per-task cost
// of the mechanism itself is measured.

var benchSizes = []int{1, 10, 100, 1000}

func trivial(context.Context) error { return nil }

func BenchmarkSpawn(b *testing.B) {
	ctx := context.Background()
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("impl=nursery/tasks=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				err := nursery.Run(ctx, func(ctx context.Context, nu *nursery.Nursery) error {
					for range n {
						nu.Go(trivial)
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("impl=waitgroup/tasks=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var wg sync.WaitGroup
				task := func() { _ = trivial(ctx) }
				for range n {
					wg.Go(task)
				}
				wg.Wait()
			}
		})
		b.Run(fmt.Sprintf("impl=errgroup/tasks=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g, gctx := errgroup.WithContext(ctx)
				task := func() error { return trivial(gctx) }
				for range n {
					g.Go(task)
				}
				if err := g.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The same with a limit of 8 running tasks, where Go waits for slots.
func BenchmarkSpawnLimited(b *testing.B) {
	ctx := context.Background()
	const limit = 8
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("impl=nursery/tasks=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				err := nursery.Run(ctx, func(ctx context.Context, nu *nursery.Nursery) error {
					nu.SetLimit(limit)
					for range n {
						nu.Go(trivial)
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("impl=errgroup/tasks=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g, gctx := errgroup.WithContext(ctx)
				g.SetLimit(limit)
				task := func() error { return trivial(gctx) }
				for range n {
					g.Go(task)
				}
				if err := g.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
