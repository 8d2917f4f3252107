package conformance_test

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"strconv"
	"time"
)

// The permessage-deflate cases (RFC 7692), in the spirit of the Autobahn
// TestSuite's 12.x (compressed echo at many sizes) and 13.x (negotiated
// parameters), with our additions for fragmentation, RSV1 misuse, corrupt
// data and decompression bombs. wsconn runs with compression on (default
// threshold 512 and level); the raw peer offers or answers the extension.

// browserOffer is what Chromium, Node ws and python websockets offer.
const browserOffer = "permessage-deflate; client_max_window_bits"

// plainAnswer is the answer of a server that honours wsconn's offer.
const plainAnswer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// threshold is wsconn's default CompressionThreshold.
const threshold = 512

// deflateBytes compresses data as one message: the sync-flushed stream
// without its final 00 00 ff ff (RFC 7692 §7.2.1). An empty message is the
// single byte 00 (§7.2.3.6).
func deflateBytes(data []byte) []byte {
	if len(data) == 0 {
		return []byte{0}
	}
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	fw.Write(data)
	fw.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// inflate reverses deflateBytes (§7.2.2), reading at most maxReadPayload.
func inflate(p []byte) ([]byte, error) {
	fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	defer fr.Close()
	return io.ReadAll(io.LimitReader(fr, maxReadPayload))
}

// compressedFrame is a final data frame carrying data compressed.
func compressedFrame(op byte, data []byte) frame {
	return frame{fin: true, rsv: 4, op: op, payload: deflateBytes(data)}
}

// compressedFrames compresses data and cuts the result into n fragments:
// RSV1 on the first only (§6.1).
func compressedFrames(op byte, data []byte, n int) []frame {
	c := deflateBytes(data)
	fs := splitFrames(op, c, (len(c)+n-1)/n)
	fs[0].rsv = 4
	return fs
}

// echoCompressed sends data compressed in frames fragments and expects it
// back, compressed exactly when it reaches wsconn's threshold.
func echoCompressed(op byte, data []byte, frames int) func(p *peer) {
	return func(p *peer) {
		p.write(compressedFrames(op, data, frames)...)
		p.expectMessage(op, data)
		if want := len(data) >= threshold; p.inflated != want {
			p.t.Errorf("wsconn echoed %d bytes with RSV1=%t, want %t (threshold %d)", len(data), p.inflated, want, threshold)
		}
	}
}

// jsonOf returns n bytes of JSON-like text, as an API would send.
func jsonOf(n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, `{"id":%d,"user":"user-%d","tags":["a","b"],"ok":%t},`, i, i%97, i%3 == 0)
	}
	return b[:n]
}

// randomOf returns n bytes that do not compress.
func randomOf(n int) []byte {
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// deflated marks c as a permessage-deflate case with the usual offer and
// answer, unless it names its own.
func deflated(c wsCase) wsCase {
	if c.offer == "" {
		c.offer = browserOffer
	}
	if c.response == "" {
		c.response = plainAnswer
	}
	return c
}

// maxDeflatedLimit mirrors wsconn's bound on a compressed message's frame
// lengths for MaxMessageSize limit: limit + limit/512 + 1 KiB.
func maxDeflatedLimit(n int64) int64 { return n + n/512 + 1024 }

func deflateCases() []wsCase {
	var cs []wsCase
	add := func(c ...wsCase) {
		for _, x := range c {
			cs = append(cs, deflated(x))
		}
	}
	sizes := []int{16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072}
	for i, n := range sizes {
		add(echo("12.1."+strconv.Itoa(i+1), fmt.Sprintf("compressed text (JSON), %d bytes", n), echoCompressed(opText, jsonOf(n), 1)))
	}
	for i, n := range sizes {
		add(echo("12.2."+strconv.Itoa(i+1), fmt.Sprintf("compressed binary, %d bytes", n), echoCompressed(opBinary, binOf(n), 1)))
	}
	add(echo("12.3.1", "compressed random bytes, 65536 (deflate expands them)", echoCompressed(opBinary, randomOf(65536), 1)))
	big := echo("12.4.1", "compressed text, 1 MiB", echoCompressed(opText, jsonOf(1<<20), 1))
	big.timeout = 60 * time.Second // deflate on both sides under -race on a loaded machine takes 10 s and more
	add(big)

	add(echo("12.E1", "uncompressed messages (RSV1 clear) on a compressed connection", func(p *peer) {
		p.write(dataFrame(opText, jsonOf(4096)))
		p.expectMessage(opText, jsonOf(4096))
		echoMsg(opBinary, binOf(100))(p)
	}))
	add(echo("12.E2", "an empty compressed message (the single byte 00)", echoCompressed(opText, nil, 1)))
	add(echo("12.E3", "compressed text of 64 KiB in 7 fragments", echoCompressed(opText, jsonOf(65536), 7)))
	add(chopped(echo("12.E4", "compressed text in 3 fragments, one byte at a time", echoCompressed(opText, jsonOf(2000), 3)), 1))
	add(echo("12.E5", "compressed text in 4 fragments with a ping between each", func(p *peer) {
		data := jsonOf(8192)
		fs := compressedFrames(opText, data, 4)
		var out []frame
		for i, f := range fs {
			out = append(out, f)
			if i < len(fs)-1 {
				out = append(out, pingFrame([]byte("ping "+strconv.Itoa(i))))
			}
		}
		p.write(out...)
		for i := range len(fs) - 1 {
			p.expectFrame(opPong, []byte("ping "+strconv.Itoa(i)))
		}
		p.expectMessage(opText, data)
	}))
	c := peerClose("12.E6", "a compressed fragment, then close: the close is answered", closePayload(1000, ""))
	c.send = func(p *peer) {
		fs := compressedFrames(opText, jsonOf(4096), 2)
		p.write(fs[0], closeFrame(1000, ""))
	}
	add(c)

	rsv1 := func(f frame) frame { f.rsv = 4; return f }
	add(fail("12.E7", "RSV1 on a continuation frame", 1002, func(p *peer) {
		fs := compressedFrames(opText, jsonOf(4096), 2)
		fs[1].rsv = 4
		p.write(fs...)
	}))
	add(fail("12.E8", "RSV1 on a continuation of an uncompressed message", 1002, func(p *peer) {
		p.write(fragment(opText, []byte("frag1")), rsv1(frame{fin: true, op: opCont, payload: []byte("frag2")}))
	}))
	add(fail("12.E9", "RSV1 on a ping", 1002, func(p *peer) { p.write(rsv1(pingFrame([]byte("ping")))) }))
	add(fail("12.E10", "RSV1 on a pong", 1002, func(p *peer) { p.write(rsv1(pongFrame(nil))) }))
	add(fail("12.E11", "RSV1 on a close", 1002, func(p *peer) { p.write(rsv1(closeFrame(1000, ""))) }))
	add(fail("12.E12", "RSV2 on a compressed message", 1002, func(p *peer) {
		f := compressedFrame(opText, jsonOf(100))
		f.rsv = 6
		p.write(f)
	}))
	add(fail("12.E13", "corrupt deflate data (a block of the reserved type 11)", 1007, func(p *peer) {
		p.write(frame{fin: true, rsv: 4, op: opBinary, payload: []byte{0x07, 0x00, 0x12, 0x34}})
	}))
	add(fail("12.E14", "deflate data cut short mid-block", 1007, func(p *peer) {
		c := deflateBytes(jsonOf(4096))
		p.write(frame{fin: true, rsv: 4, op: opText, payload: c[:len(c)/2]})
	}))
	add(fail("12.E15", "compressed text that inflates to invalid UTF-8", 1007, func(p *peer) {
		p.write(compressedFrame(opText, []byte("κόσμε\xed\xa0\x80edited")))
	}))

	// Limits: MaxMessageSize 64 KiB counts inflated bytes.
	over := closeWant{code: 1009, reasonHas: strconv.Itoa(limit)}
	tooBig := func(id, desc string, send func(p *peer)) wsCase {
		return withMax(wsCase{id: id, desc: desc, send: send, wire: over, api: over}, limit)
	}
	add(withMax(echo("12.E16", "compressed text inflating to exactly MaxMessageSize", echoCompressed(opText, jsonOf(limit), 1)), limit))
	add(tooBig("12.E17", "compressed text inflating to MaxMessageSize+1", func(p *peer) {
		p.write(compressedFrame(opText, jsonOf(limit+1)))
	}))
	add(withMax(echo("12.E18", "random bytes of MaxMessageSize, longer than it compressed", echoCompressed(opBinary, randomOf(limit), 1)), limit))
	c = tooBig("12.E19", "a 64 KiB frame inflating to 64 MiB (a bomb): 1009 within 2 s", func(p *peer) {
		mib := append(deflateBytes(make([]byte, 1<<20)), 0, 0, 0xff, 0xff)
		bomb := bytes.TrimSuffix(bytes.Repeat(mib, 64), []byte{0, 0, 0xff, 0xff})
		p.write(frame{fin: true, rsv: 4, op: opBinary, payload: bomb})
	})
	c.timeout = 2 * time.Second
	add(c)
	c = tooBig("12.E20", "compressed frame header announcing more than MaxMessageSize can deflate to: 1009 within 2 s", func(p *peer) {
		p.writeRaw(appendHeader(nil, true, 4, opBinary, p.client, uint64(maxDeflatedLimit(limit))+1))
	})
	c.timeout = 2 * time.Second
	add(c)

	add(echo("12.E21", "50 compressed messages in a row, of alternating sizes (each inflates on its own)", func(p *peer) {
		for i := range 50 {
			data := jsonOf(100 + (i%5)*700)
			p.write(compressedFrame(opText, data))
			p.expectMessage(opText, data)
			if want := len(data) >= threshold; p.inflated != want {
				p.t.Errorf("message %d: %d bytes echoed with RSV1=%t, want %t", i, len(data), p.inflated, want)
			}
		}
	}))

	// 13.x: what is negotiated. The server role varies the raw client's
	// offer, the client role the raw server's answer.
	offers := []struct{ offer, desc string }{
		{"permessage-deflate", "no parameters"},
		{"permessage-deflate; client_no_context_takeover", "client_no_context_takeover"},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover", "both no_context_takeover parameters"},
		{"permessage-deflate; client_max_window_bits=9", "client_max_window_bits=9"},
		{"permessage-deflate; server_max_window_bits=9, permessage-deflate", "server_max_window_bits=9 (declined), then a plain offer"},
		{"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", "an unknown extension, then the browsers' offer"},
	}
	for i, o := range offers {
		c := echo(fmt.Sprintf("13.1.%d", i+1), "offer: "+o.desc, echoCompressed(opText, jsonOf(4096), 1))
		c.offer, c.serverOnly = o.offer, true
		add(c)
	}
	answers := []struct{ answer, desc string }{
		{plainAnswer + "; server_max_window_bits=9", "server_max_window_bits=9 added by the server"},
		{"permessage-deflate;client_no_context_takeover;server_no_context_takeover", "the parameters in another order, no spaces"},
	}
	for i, a := range answers {
		c := echo(fmt.Sprintf("13.2.%d", i+1), "answer: "+a.desc, echoCompressed(opText, textOf(4096), 1))
		c.response, c.clientOnly = a.answer, true
		add(c)
	}
	return cs
}
