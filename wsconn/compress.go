package wsconn

import (
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// CompressionMode selects permessage-deflate compression (RFC 7692).
type CompressionMode int

const (
	// CompressionDisabled negotiates no compression: the default.
	CompressionDisabled CompressionMode = iota
	// CompressionNoContextTakeover negotiates permessage-deflate with
	// server_no_context_takeover and client_no_context_takeover: every
	// message is compressed on its own, so no flate state outlives a
	// message and an idle connection holds none.
	CompressionNoContextTakeover
)

// String returns "disabled", "no-context-takeover" or "CompressionMode(n)".
func (m CompressionMode) String() string {
	switch m {
	case CompressionDisabled:
		return "disabled"
	case CompressionNoContextTakeover:
		return "no-context-takeover"
	}
	return "CompressionMode(" + strconv.Itoa(int(m)) + ")"
}

// Defaults of the compression options.
const (
	// DefaultCompressionLevel is flate.BestSpeed, gorilla's default too.
	DefaultCompressionLevel = flate.BestSpeed
	// DefaultCompressionThreshold is the size below which a data message
	// goes out uncompressed: deflate rarely pays for itself on less.
	DefaultCompressionThreshold = 512
)

// compression is what a connection uses of the compression options.
type compression struct {
	mode      CompressionMode // negotiated; CompressionDisabled until then
	level     int
	threshold int // messages of at least this many bytes are compressed
}

// newCompression resolves the options' zero values and checks them.
func newCompression(mode CompressionMode, level, threshold int) (compression, error) {
	switch mode {
	case CompressionDisabled, CompressionNoContextTakeover:
	default:
		return compression{}, fmt.Errorf("invalid compression mode %v", mode)
	}
	switch {
	case level == 0:
		level = DefaultCompressionLevel
	case level < flate.HuffmanOnly || level > flate.BestCompression:
		return compression{}, fmt.Errorf("invalid compression level %d (want %d to %d)", level, flate.HuffmanOnly, flate.BestCompression)
	}
	switch {
	case threshold == 0:
		threshold = DefaultCompressionThreshold
	case threshold < 0:
		threshold = 0
	}
	return compression{mode: mode, level: level, threshold: threshold}, nil
}

// compresses reports whether a data message of n bytes goes out compressed.
func (c compression) compresses(n int) bool {
	return c.mode != CompressionDisabled && n >= c.threshold
}

const deflateName = "permessage-deflate"

// deflateResponse is the only answer gorilla's Upgrader sends, and the only
// offer its Dialer makes; gorilla writes both itself.
const deflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// extension is one element of a Sec-WebSocket-Extensions header.
type extension struct {
	name   string
	params []extParam
}

type extParam struct {
	name, value string
	hasValue    bool
}

// parseExtensions parses Sec-WebSocket-Extensions header values (RFC 6455
// §9.1): a comma-separated list of extension tokens, each followed by
// ";"-separated parameters with an optional token or quoted-string value.
// An element that does not parse is returned with ok false in its place,
// so that a server can decline it while honouring the others, and a
// client can refuse the whole response.
func parseExtensions(values []string) (exts []extension, ok bool) {
	ok = true
	for _, v := range values {
		for _, elem := range splitOutsideQuotes(v, ',') {
			if strings.TrimSpace(elem) == "" {
				continue // empty list elements are allowed (RFC 9110 §5.6.1)
			}
			e, good := parseExtension(elem)
			if !good {
				ok = false
				continue
			}
			exts = append(exts, e)
		}
	}
	return exts, ok
}

func parseExtension(s string) (extension, bool) {
	parts := splitOutsideQuotes(s, ';')
	name := strings.TrimSpace(parts[0])
	if !isToken(name) {
		return extension{}, false
	}
	e := extension{name: name}
	for _, p := range parts[1:] {
		k, v, hasValue := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if !isToken(k) {
			return extension{}, false
		}
		param := extParam{name: k, hasValue: hasValue}
		if hasValue {
			v = strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = unquote(v[1 : len(v)-1])
			}
			// §9.1: a quoted value must still be a token once unquoted.
			if !isToken(v) {
				return extension{}, false
			}
			param.value = v
		}
		e.params = append(e.params, param)
	}
	return e, true
}

// splitOutsideQuotes splits s at sep, except inside quoted strings.
func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	quoted, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func unquote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isToken reports whether s is a non-empty HTTP token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// windowBits parses a max_window_bits value: 8 to 15 (RFC 7692 §7.1.2).
func windowBits(v string) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n >= 8 && n <= 15 && v[0] != '+' && v[0] != '0'
}

// acceptOffer reports whether the server can honour one permessage-deflate
// offer (RFC 7692 §7.1) with gorilla's fixed response, deflateResponse.
// It declines an offer with an unknown, repeated or malformed parameter,
// and one with server_max_window_bits: compress/flate always deflates with
// a 32 KiB window, so a smaller one cannot be promised, and accepting even
// 15 requires echoing the parameter (§7.1.2.1), which gorilla's response
// cannot. client_max_window_bits, with or without a value, only says what
// the client may use: the inflater reads any window, so it is accepted and
// left out of the response (§7.1.2.2 allows that). Names are compared
// without regard to case: gorilla sees only the offer's name, rewritten.
func acceptOffer(e extension) bool {
	if !strings.EqualFold(e.name, deflateName) {
		return false
	}
	seen := map[string]bool{}
	for _, p := range e.params {
		name := strings.ToLower(p.name)
		if seen[name] {
			return false
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if p.hasValue {
				return false
			}
		case "client_max_window_bits":
			if p.hasValue && !windowBits(p.value) {
				return false
			}
		default: // server_max_window_bits and anything unknown
			return false
		}
	}
	return true
}

// negotiateDeflate reports whether the server accepts permessage-deflate
// for a request with these Sec-WebSocket-Extensions values: some offer,
// taken in the client's order of preference, can be honoured. Other
// extensions and malformed elements are ignored.
func negotiateDeflate(values []string) bool {
	exts, _ := parseExtensions(values)
	for _, e := range exts {
		if acceptOffer(e) {
			return true
		}
	}
	return false
}

// checkDeflateResponse checks the server's Sec-WebSocket-Extensions values
// against what the client offered (deflateResponse when offered is true,
// nothing otherwise) and reports whether compression was negotiated. RFC
// 7692 §7.1 requires the client to fail the connection when the response
// names an extension not offered, repeats one, or carries a parameter it
// did not offer or cannot honour. The server may add server_max_window_bits
// (it only limits the server's own window, and the inflater reads any) and
// must echo both no_context_takeover parameters (gorilla fails the
// handshake when either is missing, as the client cannot take over context).
// Names must be in lower case, as gorilla, which ignores any other
// spelling, would otherwise disagree on whether compression is on.
func checkDeflateResponse(values []string, offered bool) (bool, error) {
	if len(values) == 0 {
		return false, nil
	}
	if !offered {
		return false, fmt.Errorf("%w: server chose extensions %q that were not offered", ErrHandshake, strings.Join(values, ", "))
	}
	exts, ok := parseExtensions(values)
	switch {
	case !ok:
		return false, fmt.Errorf("%w: malformed Sec-WebSocket-Extensions %q", ErrHandshake, strings.Join(values, ", "))
	case len(exts) == 0:
		return false, nil
	case len(exts) > 1:
		return false, fmt.Errorf("%w: server chose %d extensions %q; only %s was offered", ErrHandshake, len(exts), strings.Join(values, ", "), deflateName)
	case exts[0].name != deflateName:
		return false, fmt.Errorf("%w: server chose extension %q that was not offered", ErrHandshake, exts[0].name)
	}
	seen := map[string]bool{}
	for _, p := range exts[0].params {
		bad := seen[p.name]
		seen[p.name] = true
		switch p.name {
		case "server_no_context_takeover", "client_no_context_takeover":
			bad = bad || p.hasValue
		case "server_max_window_bits":
			bad = bad || !p.hasValue || !windowBits(p.value)
		default: // client_max_window_bits was not offered (§7.1.2.2)
			bad = true
		}
		if bad {
			return false, fmt.Errorf("%w: server's %s parameter %q was not offered or is invalid", ErrHandshake, deflateName, p.name)
		}
	}
	if !seen["server_no_context_takeover"] || !seen["client_no_context_takeover"] {
		return false, fmt.Errorf("%w: server's %s response lacks the no_context_takeover parameters that were offered", ErrHandshake, deflateName)
	}
	return true, nil
}

// maxDeflated bounds the compressed size of a message that inflates to at
// most n bytes, as any sane deflater produces it: stored blocks cost 5
// bytes per 64 KiB, and zlib's deflateBound adds less than n/1024 + 64.
// The frame guard fails a compressed message early only beyond this bound,
// so that incompressible data, which deflate expands slightly, is never
// refused for its compressed length; the inflated length is checked as it
// is produced. It saturates at math.MaxInt64 (a MaxMessageSize near it).
func maxDeflated(n int64) int64 {
	if slack := n/512 + 1024; n > math.MaxInt64-slack {
		return math.MaxInt64
	}
	return n + n/512 + 1024
}

// inflateFailed reports whether err, from reading a message, means its
// deflate data was corrupt rather than the transport failing.
func (c *Conn) inflateFailed(err error) bool {
	return c.cfg.compress.mode != CompressionDisabled && isInflateError(err, c.guard)
}

// isInflateError is inflateFailed given the connection's guard g. A
// transport error comes first: g records what the connection under it
// returned (crypto/tls reports a record cut short as a bare
// io.ErrUnexpectedEOF). Then gorilla passes the flate reader's errors
// through, and a deflate stream that ends mid-block surfaces as a bare
// io.ErrUnexpectedEOF (gorilla reports a truncated frame as a
// *websocket.CloseError instead), which counts only when the message is
// compressed (RSV1), or when g does not parse the frames (behind a proxy)
// and so cannot tell.
func isInflateError(err error, g *frameGuard) bool {
	if g != nil && g.connErr != nil {
		return false
	}
	var corrupt flate.CorruptInputError
	var internal flate.InternalError
	if errors.As(err, &corrupt) || errors.As(err, &internal) {
		return true
	}
	return err == io.ErrUnexpectedEOF && (g == nil || g.state == guardOff || g.compressed)
}
