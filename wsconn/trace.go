package wsconn

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
)

// The Debug trace: one record per event, written only when DialOptions or
// ServerOptions carry a Logger with Debug enabled (cfg.log is nil
// otherwise, so that a silent connection pays one nil check per event).
//
//	websocket dialing / handshake sent / handshake response   client
//	websocket handshake received / handshake accepted         server
//	websocket message sent / message received                 type, len
//	websocket ping sent / ping received / pong sent / pong received   len
//	websocket close sent / close received                     code, reason
//	websocket connection aborted / reader stopped / connection closed
//
// With TracePayloads the message, ping and pong records also carry the
// payload (text as is, binary in hex), cut to maxTracedPayload bytes.

// maxTracedPayload bounds the payload bytes one trace record carries.
const maxTracedPayload = 1024

// trace logs a debug record when a Logger was configured.
func (c *Conn) trace(msg string, args ...any) {
	if c.cfg.log != nil {
		c.cfg.log.Debug(msg, args...)
	}
}

// traceData traces a data message or a control frame's payload: its
// length and, with TracePayloads, the bytes.
func (c *Conn) traceData(msg string, typ MessageType, data []byte) {
	if c.cfg.log == nil {
		return
	}
	args := make([]any, 0, 6)
	if typ != 0 {
		args = append(args, "type", typ.String())
	}
	args = append(args, "len", len(data))
	if c.cfg.tracePayloads {
		args = append(args, payloadAttr(typ == Text, data))
	}
	c.cfg.log.Debug(msg, args...)
}

// payloadAttr is the "payload" attribute of a trace record.
func payloadAttr(text bool, b []byte) slog.Attr {
	more := len(b) - maxTracedPayload
	if more > 0 {
		b = b[:maxTracedPayload]
	}
	var s string
	if text {
		s = string(b)
	} else {
		s = hex.EncodeToString(b)
	}
	if more > 0 {
		s += "…(" + strconv.Itoa(more) + " more bytes)"
	}
	return slog.String("payload", s)
}

// redacted are the headers whose values traces do not show.
var redacted = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"}

// traceHeader returns h for a trace record, credentials redacted.
func traceHeader(h http.Header) http.Header {
	h = h.Clone()
	for _, k := range redacted {
		if vs := h.Values(k); len(vs) > 0 {
			h[http.CanonicalHeaderKey(k)] = []string{"[redacted]"}
		}
	}
	return h
}

// acceptHeader is the 101 response gorilla sends for a handshake with
// key, given the headers Accept passes it: for the trace.
func acceptHeader(key string, given http.Header, deflate bool) http.Header {
	h := given.Clone()
	if h == nil {
		h = http.Header{}
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Accept", base64.StdEncoding.EncodeToString(sum[:]))
	if deflate {
		h.Set("Sec-WebSocket-Extensions", deflateResponse)
	}
	return h
}
