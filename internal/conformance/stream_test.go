package conformance_test

import (
	"context"
	"io"
	"strings"

	"github.com/wsnursery/wsnursery/wsconn"
)

// The streamed runs: wsconn's application echoes with Reader and Writer
// instead of Receive and Send. Every fragmentation (5.x) and UTF-8 (6.x)
// case runs that way too, with ".S" after its id; the "S" cases of their
// own carry messages over 64 KiB, which wsconn streams rather than reads
// ahead, so that the stream path itself meets fragments, pings between
// them and invalid text (failing with 1007 as soon as it arrives, as
// Autobahn's strict 6.4.x cases ask).

// appKey carries, in a case's context, the application setup runs.
type appKey struct{}

// appFor returns the application of the case whose context is ctx.
func appFor(ctx context.Context) func(context.Context, *wsconn.Conn) appResult {
	if app, ok := ctx.Value(appKey{}).(func(context.Context, *wsconn.Conn) appResult); ok {
		return app
	}
	return echoLoop
}

// streamEcho is echoLoop streaming: each message is read with Reader and
// written back through a Writer as it arrives, until Reader fails.
func streamEcho(ctx context.Context, c *wsconn.Conn) appResult {
	var res appResult
	for {
		typ, r, err := c.Reader(ctx)
		if err != nil {
			res.err = err
			break
		}
		w, err := c.Writer(ctx, typ)
		if err != nil {
			continue // closing has started: the next Reader says why
		}
		// A failed copy means the connection is failing (or closing):
		// the next Reader says why.
		io.Copy(w, r)
		w.Close()
	}
	select {
	case <-c.Done():
		res.done = true
	case <-ctx.Done():
	}
	res.reason, res.set = c.CloseReason()
	return res
}

// streamedCases returns a streamed copy of every 5.x and 6.x case in cs,
// then the streamed cases of their own.
func streamedCases(cs []wsCase) []wsCase {
	var out []wsCase
	for _, c := range cs {
		if strings.HasPrefix(c.id, "5.") || strings.HasPrefix(c.id, "6.") {
			c.id += ".S"
			c.desc += ", streamed"
			c.streamed = true
			out = append(out, c)
		}
	}
	streamed := func(c wsCase) wsCase { c.streamed = true; return c }
	const big = 100_000 // over the 64 KiB that wsconn reads ahead
	text := textOf(2 * big)
	bin := binOf(2 * big)
	out = append(out,
		streamed(echo("5.S1", "text of 200 kB in 2 fragments", func(p *peer) {
			p.write(splitFrames(opText, text, big)...)
			p.expectMessage(opText, text)
		})),
		streamed(chopped(echo("5.S2", "text of 200 kB in 2 fragments, in 997-byte pieces", func(p *peer) {
			p.write(splitFrames(opText, text, big)...)
			p.expectMessage(opText, text)
		}), 997)),
		streamed(echo("5.S3", "binary of 200 kB in 5 fragments with 2 pings between them", func(p *peer) {
			fs := splitFrames(opBinary, bin, len(bin)/5)
			p.write(fs[0], fs[1], pingFrame([]byte("pongme 1!")), fs[2], pingFrame([]byte("pongme 2!")), fs[3], fs[4])
			p.expectMessageAndPongs(opBinary, bin, []byte("pongme 1!"), []byte("pongme 2!"))
		})),
		streamed(echo("5.S4", "binary of 200 kB in 3 fragments, the middle one empty", func(p *peer) {
			p.write(fragment(opBinary, bin[:big]), fragment(opCont, nil), frame{fin: true, op: opCont, payload: bin[big:]})
			p.expectMessage(opBinary, bin)
		})),
		streamed(fail("5.S5", "a new text frame inside a fragmented text message of 100 kB", 1002, func(p *peer) {
			p.write(fragment(opText, text[:big]), frame{fin: true, op: opText, payload: []byte("fragment2")})
		})),
		streamed(echo("6.S1", "valid UTF-8 of 200 kB in one frame", echoMsg(opText, text))),
		streamed(echo("6.S2", "valid UTF-8 of 200 kB in 997-byte fragments (splits inside characters)", func(p *peer) {
			p.write(splitFrames(opText, text, 997)...)
			p.expectMessage(opText, text)
		})),
		streamed(fail("6.S3", "100 kB of valid UTF-8, then a surrogate, in one frame", 1007, func(p *peer) {
			p.write(dataFrame(opText, append(text[:big:big], "\xed\xa0\x80edited"...)))
		})),
	)
	// Autobahn's 6.4.1–6.4.4 with a 100 kB valid start: the invalid bytes
	// come, the rest of the message is withheld, and wsconn must fail at
	// once.
	start := string(text[:big])
	out = append(out,
		streamed(fail("6.S4", "6.4.1 after 100 kB: 3 fragments, the 2nd invalid, the 3rd withheld", 1007, strict641(start))),
		streamed(fail("6.S5", "6.4.2 after 100 kB: invalid at the 2nd fragment's first byte, the 3rd withheld", 1007, strict642(start))),
		streamed(fail("6.S6", "6.4.3 after 100 kB: one frame, sent up to its invalid bytes", 1007, strict643(start))),
		streamed(fail("6.S7", "6.4.4 after 100 kB: one frame, sent up to its first invalid byte", 1007, strict644(start))),
	)
	return out
}

// strictCases are Autobahn's 6.4.x, run by Receive and (as 6.4.x.S) by
// Reader: the message becomes invalid, the peer withholds the rest, and
// wsconn must fail with 1007 without waiting for the message's end.
func strictCases() []wsCase {
	return []wsCase{
		fail("6.4.1", "3 fragments, the 2nd invalid (U+110000), the 3rd withheld", 1007, strict641("")),
		fail("6.4.2", "3 fragments, invalid at the 2nd's first byte, the 3rd withheld", 1007, strict642("")),
		fail("6.4.3", "one frame, sent up to its invalid bytes", 1007, strict643("")),
		fail("6.4.4", "one frame, sent up to its first invalid byte", 1007, strict644("")),
	}
}

const (
	kosme   = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" // κόσμε
	tooHigh = "\xf4\x90\x80\x80"                             // U+110000: past Unicode
	edited  = "\x65\x64\x69\x74\x65\x64"                     // "edited"
)

func strict641(start string) func(p *peer) {
	return func(p *peer) {
		p.write(fragment(opText, []byte(start+kosme)), fragment(opCont, []byte(tooHigh)))
	}
}

func strict642(start string) func(p *peer) {
	return func(p *peer) {
		p.write(fragment(opText, []byte(start+kosme+tooHigh[:1])), fragment(opCont, []byte(tooHigh[1:2])))
	}
}

// strict643 writes one frame carrying start, κόσμε, U+110000 and more,
// but only up to the end of the invalid bytes.
func strict643(start string) func(p *peer) {
	return func(p *peer) { p.writePartial(opText, start+kosme+tooHigh+edited, len(start+kosme+tooHigh)) }
}

func strict644(start string) func(p *peer) {
	return func(p *peer) { p.writePartial(opText, start+kosme+tooHigh+edited, len(start+kosme)+2) }
}

// writePartial writes the header of one final frame with payload and only
// its first n payload bytes.
func (p *peer) writePartial(op byte, payload string, n int) {
	p.t.Helper()
	b := appendFrame(nil, dataFrame(op, []byte(payload)), p.client)
	p.writeRaw(b[:len(b)-len(payload)+n])
}

// expectMessageAndPongs is expectMessage where wsconn may send the pongs
// (in order) between the message's fragments: a streamed echo starts
// before the message has arrived.
func (p *peer) expectMessageAndPongs(op byte, payload []byte, pongs ...[]byte) {
	p.t.Helper()
	var got []byte
	first, fin := true, false
	for !fin || len(pongs) > 0 {
		f := p.nextFrame()
		switch {
		case f.op == opPong:
			if len(pongs) == 0 || string(f.payload) != string(pongs[0]) {
				p.t.Fatalf("unexpected pong %q", f.payload)
			}
			pongs = pongs[1:]
		case fin:
			p.t.Fatalf("want a pong after the message, got %v", f)
		case first && f.op != op, !first && f.op != opCont:
			p.t.Fatalf("want a fragment of a message with op=%#x, got %v", op, f)
		default:
			first, fin = false, f.fin
			got = append(got, f.payload...)
		}
	}
	if string(got) != string(payload) {
		p.t.Fatalf("echoed message differs: got %s, want %s", short(got), short(payload))
	}
}
