package jsonmsg_test

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/wsnursery/wsnursery/recipes/jsonmsg"
	"github.com/wsnursery/wsnursery/wsconn"
)

type Request struct {
	Op   string `json:"op"`
	A, B int
}

type Reply struct {
	Result int    `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
}

// A JSON request/reply server: a request that does not decode gets an error
// reply and the connection carries on.
func Example() {
	calc := func(ctx context.Context, r *wsconn.Request) error {
		c, err := r.Accept(ctx, nil)
		if err != nil {
			return err
		}
		opts := &jsonmsg.Options{MaxSize: 4 << 10, DisallowUnknownFields: true}
		for {
			req, err := jsonmsg.Receive[Request](ctx, c, opts)
			var bad *jsonmsg.DecodeError
			switch {
			case errors.As(err, &bad):
				err = jsonmsg.Send(ctx, c, Reply{Error: bad.Err.Error()}, nil)
			case err != nil:
				return nil // the connection closed
			case req.Op == "add":
				err = jsonmsg.Send(ctx, c, Reply{Result: req.A + req.B}, nil)
			default:
				err = jsonmsg.Send(ctx, c, Reply{Error: "unknown op " + req.Op}, nil)
			}
			if err != nil {
				return err
			}
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- wsconn.NewServer(calc, nil).Serve(ctx, ln) }()
	defer func() { stop(); <-served }()

	err = wsconn.Open(ctx, "ws://"+ln.Addr().String()+"/", nil, func(ctx context.Context, c *wsconn.Conn) error {
		for _, req := range []any{
			Request{Op: "add", A: 2, B: 3},
			map[string]any{"op": "add", "C": 1},
		} {
			if err := jsonmsg.Send(ctx, c, req, nil); err != nil {
				return err
			}
			reply, err := jsonmsg.Receive[Reply](ctx, c, nil)
			if err != nil {
				return err
			}
			fmt.Printf("%+v\n", reply)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// {Result:5 Error:}
	// {Result:0 Error:json: unknown field "C"}
}
