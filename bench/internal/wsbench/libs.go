package wsbench

import (
	"fmt"
	"strings"

	"github.com/wsnursery/wsnursery/wsconn"
)

// Kind is a library under test.
type Kind int

// The libraries.
const (
	KindGorilla Kind = iota + 1
	KindCoder
	KindGWS
	KindWsconn
	KindTCP
)

// Lib is one library, or a variant of wsconn with non-default options,
// under the name it has in tables and benchmark names.
type Lib struct {
	Name string
	Kind Kind
	// QueueSize is wsconn's MessageQueueSize on both sides (0: default).
	QueueSize int
	// BackgroundCtx makes wsconn's Send use context.Background() on both
	// sides, so no context.AfterFunc is registered per message.
	BackgroundCtx bool
	// Pump makes gorilla read on a goroutine of its own that hands each
	// message over a channel, on both sides: wsconn's architecture without
	// wsconn, to price the hand-off alone.
	Pump bool
	// ClientPump is Pump on the client side only.
	ClientPump bool
	// WriteBuffer sets gorilla's WriteBufferSize, with a WriteBufferPool
	// (as wsconn uses), on both sides.
	WriteBuffer int
}

// Baseline is the library every ratio is taken against.
const Baseline = "gorilla"

// Libs returns the libraries of the main table, baseline first.
func Libs() []Lib {
	return []Lib{
		{Name: "gorilla", Kind: KindGorilla},
		{Name: "wsconn", Kind: KindWsconn},
		{Name: "coder", Kind: KindCoder},
		{Name: "gws", Kind: KindGWS},
		{Name: "tcp", Kind: KindTCP},
	}
}

// Variants returns wsconn with non-default options, used to measure
// optimisation proposals.
func Variants() []Lib {
	return []Lib{
		{Name: "wsconn-q16", Kind: KindWsconn, QueueSize: 16},
		{Name: "wsconn-bgctx", Kind: KindWsconn, BackgroundCtx: true},
		{Name: "gorilla-pump", Kind: KindGorilla, Pump: true},
		{Name: "gorilla-cpump", Kind: KindGorilla, ClientPump: true},
		{Name: "gorilla-wb64k", Kind: KindGorilla, WriteBuffer: 64 << 10},
	}
}

// AllLibs returns Libs and Variants.
func AllLibs() []Lib { return append(Libs(), Variants()...) }

// LookupLibs resolves a comma-separated list of names.
func LookupLibs(names string) ([]Lib, error) {
	var out []Lib
	for name := range strings.SplitSeq(names, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		found := false
		for _, l := range AllLibs() {
			if l.Name == name {
				out = append(out, l)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown library %q", name)
		}
	}
	return out, nil
}

func (l Lib) dialOptions() *wsconn.DialOptions {
	if l.QueueSize == 0 {
		return nil
	}
	return &wsconn.DialOptions{MessageQueueSize: l.QueueSize}
}

func (l Lib) serverOptions() *wsconn.ServerOptions {
	if l.QueueSize == 0 {
		return nil
	}
	return &wsconn.ServerOptions{MessageQueueSize: l.QueueSize}
}

// HasPing reports whether the library has WebSocket pings.
func (l Lib) HasPing() bool { return l.Kind != KindTCP }
