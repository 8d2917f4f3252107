package conformance_test

import (
	"bytes"
	"compress/flate"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/wsnursery/wsnursery/internal/pipenet"
	"github.com/wsnursery/wsnursery/wsconn"
)

// maxFuzzDeflated caps the compressed payload of FuzzDeflateMessage below
// what wsconn's frame guard allows for a compressed message at fuzzLimit
// (fuzzLimit + fuzzLimit/512 + 1 KiB), so that only the inflate path
// decides.
const maxFuzzDeflated = 2048

// predictInflate is the reference for one compressed message whose payload
// is p (RFC 7692 §7.2.2: append 00 00 ff ff and inflate): the message an
// endpoint must deliver, or the code it must fail with. Inflated bytes are
// counted as they come, so 1009 wins when the limit is passed before the
// data turns out corrupt.
func predictInflate(p []byte, text bool, limit int) ([]byte, int) {
	fr := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	defer fr.Close()
	var out []byte
	chunk := make([]byte, 512)
	for {
		n, err := fr.Read(chunk)
		out = append(out, chunk[:n]...)
		if len(out) > limit {
			return nil, 1009
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 1007
		}
	}
	if text && !utf8.Valid(out) {
		return nil, 1007
	}
	return out, 0
}

// FuzzDeflateMessage sends arbitrary bytes as the payload of a compressed
// message (RSV1 on the first of fragments of cut+1 bytes) to a server with
// compression on, MaxMessageSize fuzzLimit, and compares the outcome with
// predictInflate: the inflated message echoed (compressed or not), or the
// connection failed with 1009 (too big once inflated) or 1007 (not deflate
// data, or not UTF-8 text), never a hang or a panic. Its seed corpus
// (testdata/fuzz/FuzzDeflateMessage) holds stored, fixed, dynamic and
// Huffman-only blocks, a BFINAL block followed by garbage, corrupt and
// truncated data, and bombs.
func FuzzDeflateMessage(f *testing.F) {
	ln := pipenet.Listen()
	es := startEchoServerMode(f, ln, wsconn.CompressionNoContextTakeover)
	f.Fuzz(func(t *testing.T, payload []byte, text bool, cut uint8) {
		if len(payload) > maxFuzzDeflated {
			payload = payload[:maxFuzzDeflated]
		}
		op := opBinary
		if text {
			op = opText
		}
		want, code := predictInflate(payload, text, fuzzLimit)
		p, results, ctx := pipePeerExt(t, es, ln, browserOffer)
		fs := splitFrames(op, payload, int(cut)+1)
		fs[0].rsv = 4
		p.write(fs...)
		if code != 0 {
			p.expectClose(closeWant{code: code})
			p.write(closeFrame(code, ""))
			p.expectEOF()
			checkApp(t, waitApp(t, ctx, results), closeWant{code: code})
			return
		}
		p.expectMessage(op, want)
		p.write(closeFrame(1000, ""))
		p.expectClose(closeWant{code: 1000, reason: str("")})
		p.expectEOF()
		checkApp(t, waitApp(t, ctx, results), closeWant{code: 1000, reason: str("")})
	})
}
