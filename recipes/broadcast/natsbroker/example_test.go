package natsbroker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/wsnursery/wsnursery/recipes/broadcast"
	"github.com/wsnursery/wsnursery/recipes/broadcast/natsbroker"
)

// Two nodes on one NATS: a member who joins on one is present on both.
// (The example runs against NATS on 127.0.0.1:4222, `go run
// github.com/nats-io/nats-server/v2@v2.15.3`; it has no Output line, so
// go test compiles it without running it.)
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var brokers []*natsbroker.Broker
	for range 2 {
		nc, err := natsbroker.Dial("nats://127.0.0.1:4222")
		if err != nil {
			fmt.Println(err)
			return
		}
		defer nc.Close()
		b, err := natsbroker.New(broadcast.NewHub(nil), nc, &natsbroker.Options{Prefix: "example"})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer b.Close(ctx)
		brokers = append(brokers, b)
	}
	defer brokers[0].Join("lobby", "alice")()
	for len(brokers[1].Members("lobby")) == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println(brokers[1].Members("lobby"))
}
