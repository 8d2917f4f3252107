package natsbroker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wsnursery/wsnursery/recipes/broadcast"
	"github.com/wsnursery/wsnursery/recipes/broadcast/natsbroker"
	"github.com/wsnursery/wsnursery/wsconn"
)

// Two nodes on one NATS (here an embedded nats-server; in production, the
// URLs of a cluster): a member who joins on one is present on both, and a
// message published on one reaches the other's hub.
func Example() {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		fmt.Println("nats-server not ready")
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var brokers []*natsbroker.Broker
	for range 2 {
		nc, err := natsbroker.Dial(ns.ClientURL())
		if err != nil {
			fmt.Println(err)
			return
		}
		defer nc.Close()
		hub := broadcast.NewHub(nil)
		b, err := natsbroker.New(hub, nc, &natsbroker.Options{Prefix: "example"})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer b.Close(ctx)
		if err := nc.Flush(); err != nil { // the subscription is in place
			fmt.Println(err)
			return
		}
		brokers = append(brokers, b)
	}

	defer brokers[0].Join("lobby", "alice")()
	for len(brokers[1].Members("lobby")) == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond) // presence travels over NATS
	}
	fmt.Println("node 2 sees", brokers[1].Members("lobby"))

	if err := brokers[1].PublishTo("lobby", wsconn.Message{Type: wsconn.Text, Data: []byte("hi")}); err != nil {
		fmt.Println(err)
	}
	for brokers[0].Stats().Received == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("node 1 received", brokers[0].Stats().Received, "message from node 2")
	// Output:
	// node 2 sees [alice]
	// node 1 received 1 message from node 2
}
