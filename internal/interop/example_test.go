package interop_test

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/wsnursery/wsnursery/internal/interop"
	"github.com/wsnursery/wsnursery/wsconn"
)

// Run a peer program and read the events it prints.
func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := interop.Start(ctx, "/bin/sh", []string{"-c", `echo '{"event":"listening","port":4242}'; cat`}, nil)
	if err != nil {
		panic(err)
	}
	defer p.Stop(time.Second)
	e, err := p.Next(ctx, func(e interop.Event) bool { return e.Event == "listening" })
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Event, e.Port)
	// Output: listening 4242
}

func ExamplePayload() {
	text := interop.Payload(wsconn.Text, 126, 0)
	fmt.Println(len(text), utf8.Valid(text))
	// Output: 126 true
}
