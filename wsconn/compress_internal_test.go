package wsconn

import (
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math"
	"testing"
)

func TestCompressionModeString(t *testing.T) {
	for m, want := range map[CompressionMode]string{
		CompressionDisabled:          "disabled",
		CompressionNoContextTakeover: "no-context-takeover",
		7:                            "CompressionMode(7)",
	} {
		if got := m.String(); got != want {
			t.Errorf("CompressionMode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}

func TestNewCompressionDefaults(t *testing.T) {
	for _, tc := range []struct {
		mode             CompressionMode
		level, threshold int
		want             compression
		err              bool
	}{
		{CompressionNoContextTakeover, 0, 0, compression{CompressionNoContextTakeover, flate.BestSpeed, 512}, false},
		{CompressionNoContextTakeover, 9, -1, compression{CompressionNoContextTakeover, 9, 0}, false},
		{CompressionNoContextTakeover, flate.HuffmanOnly, 100, compression{CompressionNoContextTakeover, flate.HuffmanOnly, 100}, false},
		{CompressionDisabled, 0, 0, compression{CompressionDisabled, flate.BestSpeed, 512}, false},
		{CompressionNoContextTakeover, 10, 0, compression{}, true},
		{CompressionNoContextTakeover, -3, 0, compression{}, true},
		{5, 0, 0, compression{}, true},
	} {
		got, err := newCompression(tc.mode, tc.level, tc.threshold)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("newCompression(%v, %d, %d) = %+v, %v; want %+v, error %t", tc.mode, tc.level, tc.threshold, got, err, tc.want, tc.err)
		}
	}
	c, _ := newCompression(CompressionNoContextTakeover, 0, 0)
	if c.compresses(511) || !c.compresses(512) {
		t.Errorf("threshold 512: compresses(511)=%t compresses(512)=%t, want false, true", c.compresses(511), c.compresses(512))
	}
	all, _ := newCompression(CompressionNoContextTakeover, 0, -1)
	off, _ := newCompression(CompressionDisabled, 0, -1)
	if !all.compresses(0) || off.compresses(1<<20) {
		t.Errorf("negative threshold compresses(0)=%t; disabled compresses(1 MiB)=%t; want true, false", all.compresses(0), off.compresses(1<<20))
	}
}

// TestNegotiateDeflate pins the server's choice among offers (RFC 7692
// §5, §7.1): the first it can honour wins; offers it cannot honour are
// declined, not accepted with their parameters ignored.
func TestNegotiateDeflate(t *testing.T) {
	for _, tc := range []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"permessage-deflate"}, true},
		{[]string{"Permessage-Deflate; Client_Max_Window_Bits"}, true},
		{[]string{"permessage-deflate; client_max_window_bits"}, true}, // what browsers send
		{[]string{"permessage-deflate; client_max_window_bits=10"}, true},
		{[]string{`permessage-deflate; client_max_window_bits="12"`}, true},
		{[]string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, true},
		{[]string{"x-webkit-deflate-frame, permessage-deflate"}, true}, // unknown extensions ignored
		{[]string{"x-unknown", "permessage-deflate"}, true},
		{[]string{"permessage-deflate; server_max_window_bits=10"}, false}, // flate cannot use a smaller window
		{[]string{"permessage-deflate; server_max_window_bits=15"}, false}, // must be echoed; gorilla cannot
		{[]string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, true},
		{[]string{"permessage-deflate; server_max_window_bits=10", "permessage-deflate; client_max_window_bits"}, true},
		{[]string{"permessage-deflate; client_max_window_bits=7"}, false},
		{[]string{"permessage-deflate; client_max_window_bits=16"}, false},
		{[]string{"permessage-deflate; client_max_window_bits=010"}, false},
		{[]string{"permessage-deflate; client_max_window_bits=abc"}, false},
		{[]string{"permessage-deflate; server_no_context_takeover=1"}, false},
		{[]string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, false},
		{[]string{"permessage-deflate; unknown_param"}, false},
		{[]string{"permessage-deflate; unknown_param, permessage-deflate; client_max_window_bits"}, true},
		{[]string{"permessage-deflate;; x"}, false},
		{[]string{`permessage-deflate; client_max_window_bits="1,2"`}, false},
		{[]string{"deflate-frame"}, false},
	} {
		if got := negotiateDeflate(tc.header); got != tc.want {
			t.Errorf("negotiateDeflate(%q) = %t, want %t", tc.header, got, tc.want)
		}
	}
}

// TestCheckDeflateResponse pins the client's check of the response to its
// one offer, deflateResponse (RFC 7692 §7.1: anything not offered or not
// honourable fails the handshake).
func TestCheckDeflateResponse(t *testing.T) {
	for _, tc := range []struct {
		header     []string
		offered    bool
		negotiated bool
		err        bool
	}{
		{nil, false, false, false},
		{nil, true, false, false},
		{[]string{deflateResponse}, true, true, false},
		{[]string{"permessage-deflate;client_no_context_takeover;server_no_context_takeover"}, true, true, false},
		{[]string{deflateResponse + "; server_max_window_bits=12"}, true, true, false}, // python websockets' default
		{[]string{deflateResponse}, false, false, true},
		{[]string{"x-unknown"}, true, false, true},
		{[]string{deflateResponse + ", " + deflateResponse}, true, false, true},
		{[]string{deflateResponse, "x-other"}, true, false, true},
		{[]string{deflateResponse + "; client_max_window_bits=10"}, true, false, true}, // not offered
		{[]string{deflateResponse + "; server_max_window_bits=7"}, true, false, true},
		{[]string{deflateResponse + "; server_max_window_bits"}, true, false, true},
		{[]string{deflateResponse + "; server_no_context_takeover"}, true, false, true},
		{[]string{deflateResponse + "; mystery=1"}, true, false, true},
		{[]string{"permessage-deflate; server_no_context_takeover"}, true, false, true},
		{[]string{"permessage-deflate; =x"}, true, false, true},
		{[]string{"Permessage-Deflate; server_no_context_takeover; client_no_context_takeover"}, true, false, true}, // gorilla ignores it
		{[]string{"permessage-deflate; Server_No_Context_Takeover; client_no_context_takeover"}, true, false, true},
	} {
		got, err := checkDeflateResponse(tc.header, tc.offered)
		if got != tc.negotiated || (err != nil) != tc.err {
			t.Errorf("checkDeflateResponse(%q, %t) = %t, %v; want %t, error %t", tc.header, tc.offered, got, err, tc.negotiated, tc.err)
		}
		if err != nil && !errors.Is(err, ErrHandshake) {
			t.Errorf("checkDeflateResponse(%q): %v does not match ErrHandshake", tc.header, err)
		}
	}
}

func TestParseExtensionsQuoting(t *testing.T) {
	exts, ok := parseExtensions([]string{`a; p="x\"y"; q, b;r=1`, " , c"})
	// `x"y` is not a token once unquoted: that element is dropped.
	if ok || len(exts) != 2 || exts[0].name != "b" || exts[1].name != "c" {
		t.Fatalf("parseExtensions = %+v, %t; want b and c, not ok", exts, ok)
	}
	if p := exts[0].params; len(p) != 1 || p[0] != (extParam{"r", "1", true}) {
		t.Errorf("b's params = %+v", p)
	}
}

// TestMaxDeflated checks the guard's bound against what compress/flate
// makes of incompressible data at every level, so that no valid message
// at the limit is refused for its compressed length.
func TestMaxDeflated(t *testing.T) {
	for _, n := range []int{0, 1, 100, 4096, 65536, 1 << 20} {
		data := make([]byte, n)
		x := uint32(2463534242)
		for i := range data {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			data[i] = byte(x)
		}
		for level := flate.HuffmanOnly; level <= flate.BestCompression; level++ {
			if level == flate.NoCompression {
				continue
			}
			var w countWriter
			fw, _ := flate.NewWriter(&w, level)
			fw.Write(data)
			fw.Flush()
			if int64(w) > maxDeflated(int64(n)) {
				t.Errorf("level %d: %d random bytes deflate to %d > maxDeflated = %d", level, n, w, maxDeflated(int64(n)))
			}
		}
	}
}

type countWriter int64

func (w *countWriter) Write(p []byte) (int, error) { *w += countWriter(len(p)); return len(p), nil }

func TestIsInflateError(t *testing.T) {
	compressed := &frameGuard{state: guardHeader, compressed: true}
	plain := &frameGuard{state: guardHeader}
	cut := &frameGuard{state: guardHeader, compressed: true, connErr: io.ErrUnexpectedEOF} // TLS record cut short
	proxied := &frameGuard{state: guardOff}
	for _, tc := range []struct {
		err  error
		g    *frameGuard
		want bool
	}{
		{flate.CorruptInputError(3), compressed, true},
		{fmt.Errorf("read: %w", flate.CorruptInputError(3)), compressed, true},
		{io.ErrUnexpectedEOF, compressed, true},
		{io.ErrUnexpectedEOF, proxied, true},
		{io.ErrUnexpectedEOF, plain, false}, // not compressed: not inflate's
		{io.ErrUnexpectedEOF, cut, false},   // the transport failed
		{flate.CorruptInputError(3), cut, false},
		{io.EOF, compressed, false},
		{errors.New("connection reset"), compressed, false},
		{fmt.Errorf("net: %w", io.ErrUnexpectedEOF), compressed, false}, // wrapped: the transport's, not flate's
	} {
		if got := isInflateError(tc.err, tc.g); got != tc.want {
			t.Errorf("isInflateError(%v, compressed %t, connErr %v) = %t, want %t", tc.err, tc.g.compressed, tc.g.connErr, got, tc.want)
		}
	}
}

// maxDeflated saturates instead of overflowing for limits near MaxInt64.
func TestMaxDeflatedSaturates(t *testing.T) {
	for _, n := range []int64{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 - 1024, math.MaxInt64 / 512 * 511} {
		if got := maxDeflated(n); got < n {
			t.Errorf("maxDeflated(%d) = %d, want at least n", n, got)
		}
	}
	if got := maxDeflated(math.MaxInt64); got != math.MaxInt64 {
		t.Errorf("maxDeflated(MaxInt64) = %d, want MaxInt64", got)
	}
	if got, want := maxDeflated(1<<20), int64(1<<20+2048+1024); got != want {
		t.Errorf("maxDeflated(1 MiB) = %d, want %d", got, want)
	}
}

func TestGrowBuf(t *testing.T) {
	b := make([]byte, 4096)
	for int64(len(b)) <= 10000 {
		b = growBuf(b, 10000)
		if cap(b) > 10001 {
			t.Fatalf("grew to cap %d past limit+1", cap(b))
		}
		b = b[:cap(b)]
	}
	if len(b) != 10001 {
		t.Errorf("final len %d, want 10001", len(b))
	}
	if u := growBuf(make([]byte, 8192), -1); cap(u) != 16384 {
		t.Errorf("unlimited: cap %d, want 16384", cap(u))
	}
}
