package natsbroker_test

import (
	"context"
	"encoding/binary"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsnursery/wsnursery/internal/natstest"
	"github.com/wsnursery/wsnursery/internal/wstest"
	"github.com/wsnursery/wsnursery/recipes/broadcast"
	"github.com/wsnursery/wsnursery/recipes/broadcast/natsbroker"
	"github.com/wsnursery/wsnursery/wsconn"
)

// Fan-out across nodes. One publisher sends b.N messages of 64 bytes to
// 1,000 WebSocket subscribers, either all on one in-process hub ("local")
// or split 500/500 over two nodes on one NATS server, the publisher on
// node 1 ("nats"). At most `window` messages are in flight: the next goes
// out once every subscriber has the one `window` before it. window=1
// measures the latency of one message alone (publish to the last of 1,000
// receives); window=16 the sustained rate, with no drops (checked).
// Reported: msgs/s published, deliveries/s, and the p50/p99 latency from
// PublishTo to the client's Receive over all deliveries. Sub-benchmarks
// alternate local and nats so that a noisy machine hits both alike.
//
//	go test -run '^$' -bench Fanout -benchtime 1000x -count 5 ./recipes/broadcast/natsbroker
func BenchmarkFanout(b *testing.B) {
	for _, window := range []int{1, 16} {
		w := "/window=" + strconv.Itoa(window)
		b.Run("local"+w, func(b *testing.B) {
			hub := broadcast.NewHub(&broadcast.Options{QueueSize: 4 * window})
			runFanout(b, window, hub, []*broadcast.Hub{hub})
		})
		b.Run("nats"+w, func(b *testing.B) {
			srv := natstest.Start(b)
			hubOpts := &broadcast.Options{QueueSize: 4 * window}
			n1, n2 := startNode(b, srv.URL(), nil, hubOpts), startNode(b, srv.URL(), nil, hubOpts)
			n1.flush(b)
			n2.flush(b)
			runFanout(b, window, n1.broker, []*broadcast.Hub{n1.hub, n2.hub})
			if st := n2.broker.Stats(); st.Dropped != 0 || st.Malformed != 0 {
				b.Fatalf("node 2 Stats = %+v", st)
			}
		})
	}
}

const (
	fanoutSubscribers = 1000
	fanoutSize        = 64
	hopWindow         = 16
)

// runFanout subscribes fanoutSubscribers clients, spread evenly over hubs,
// and publishes through pub.
func runFanout(b *testing.B, window int, pub broadcast.Broker, hubs []*broadcast.Hub) {
	ctx := wstestContext(b)
	urls := make([]string, len(hubs))
	for i, h := range hubs {
		urls[i] = serveHub(b, h, nil, nil)
	}
	n := b.N
	counts := make([]atomic.Int32, n)
	complete := make(chan int, n)
	lat := make([][]time.Duration, fanoutSubscribers)
	var wg sync.WaitGroup
	for i := range fanoutSubscribers {
		c := wstest.Dial(b, ctx, urls[i%len(urls)], nil)
		lat[i] = make([]time.Duration, 0, n)
		wg.Go(func() {
			for range n {
				m, err := c.Receive(ctx)
				now := time.Now()
				if err != nil {
					b.Errorf("Receive: %v", err)
					return
				}
				seq := int(binary.BigEndian.Uint32(m.Data[8:]))
				lat[i] = append(lat[i], now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(m.Data)))))
				if counts[seq].Add(1) == fanoutSubscribers {
					complete <- seq
				}
			}
		})
	}
	for _, h := range hubs { // every client subscribed before the clock starts
		for h.Stats().Subscribers < fanoutSubscribers/len(hubs) {
			time.Sleep(time.Millisecond)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	done := 0
	for i := range n {
		for i-done >= window {
			select {
			case <-complete:
				done++
			case <-ctx.Done():
				b.Fatal(ctx.Err())
			}
		}
		data := make([]byte, fanoutSize)
		binary.BigEndian.PutUint64(data, uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint32(data[8:], uint32(i))
		if err := pub.PublishTo("", wsconn.Message{Type: wsconn.Binary, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for _, h := range hubs {
		if st := h.Stats(); st.Dropped != 0 || st.Evicted != 0 {
			b.Fatalf("hub Stats = %+v: the window should keep every queue short", st)
		}
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(n*fanoutSubscribers)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkNATSHop is what NATS adds to one message: the broker's envelope
// and one trip through a nats-server from one connection to another's
// subscription (both in this process), with the same window of 16.
func BenchmarkNATSHop(b *testing.B) {
	srv := natstest.Start(b)
	pubc, err := nats.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer pubc.Close()
	subc, err := nats.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer subc.Close()
	got := make(chan struct{}, hopWindow)
	sub, err := subc.Subscribe("hop.msg", func(*nats.Msg) { got <- struct{}{} })
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := subc.Flush(); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, fanoutSize)
	b.ReportAllocs()
	b.ResetTimer()
	inflight := 0
	for range b.N {
		if inflight == hopWindow {
			<-got
			inflight--
		}
		env := natsbroker.EncodeMessage("node-1", "", wsconn.Message{Type: wsconn.Binary, Data: payload})
		if err := pubc.Publish("hop.msg", env); err != nil {
			b.Fatal(err)
		}
		inflight++
	}
	for ; inflight > 0; inflight-- {
		<-got
	}
}

// wstestContext bounds a benchmark's waits.
func wstestContext(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	return ctx
}
