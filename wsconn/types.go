package wsconn

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// MessageType is the kind of a data message.
type MessageType int

const (
	// Text is a message whose payload is UTF-8 text.
	Text MessageType = 1
	// Binary is a message whose payload is arbitrary bytes.
	Binary MessageType = 2
)

// String returns "text", "binary" or "MessageType(n)".
func (t MessageType) String() string {
	switch t {
	case Text:
		return "text"
	case Binary:
		return "binary"
	}
	return "MessageType(" + strconv.Itoa(int(t)) + ")"
}

// Message is one whole data message. Data belongs to the receiver: the
// connection never touches it again after handing it out.
type Message struct {
	Type MessageType
	Data []byte
}

// StatusCode is a WebSocket close status code (RFC 6455 §7.4).
type StatusCode int

// Status codes defined by RFC 6455 and the IANA registry.
const (
	StatusNormalClosure           StatusCode = 1000
	StatusGoingAway               StatusCode = 1001
	StatusProtocolError           StatusCode = 1002
	StatusUnsupportedData         StatusCode = 1003
	StatusNoStatusReceived        StatusCode = 1005 // never sent on the wire
	StatusAbnormalClosure         StatusCode = 1006 // never sent on the wire
	StatusInvalidFramePayloadData StatusCode = 1007
	StatusPolicyViolation         StatusCode = 1008
	StatusMessageTooBig           StatusCode = 1009
	StatusMandatoryExtension      StatusCode = 1010
	StatusInternalError           StatusCode = 1011
	StatusServiceRestart          StatusCode = 1012
	StatusTryAgainLater           StatusCode = 1013
	StatusBadGateway              StatusCode = 1014
	StatusTLSHandshake            StatusCode = 1015 // never sent on the wire
)

var statusNames = map[StatusCode]string{
	StatusNormalClosure:           "normal closure",
	StatusGoingAway:               "going away",
	StatusProtocolError:           "protocol error",
	StatusUnsupportedData:         "unsupported data",
	StatusNoStatusReceived:        "no status received",
	StatusAbnormalClosure:         "abnormal closure",
	StatusInvalidFramePayloadData: "invalid frame payload data",
	StatusPolicyViolation:         "policy violation",
	StatusMessageTooBig:           "message too big",
	StatusMandatoryExtension:      "mandatory extension",
	StatusInternalError:           "internal error",
	StatusServiceRestart:          "service restart",
	StatusTryAgainLater:           "try again later",
	StatusBadGateway:              "bad gateway",
	StatusTLSHandshake:            "TLS handshake",
}

// String returns the code and its registered name, e.g. "1000 (normal closure)".
func (c StatusCode) String() string {
	if name, ok := statusNames[c]; ok {
		return strconv.Itoa(int(c)) + " (" + name + ")"
	}
	switch {
	case c >= 3000 && c <= 3999:
		return strconv.Itoa(int(c)) + " (registered)"
	case c >= 4000 && c <= 4999:
		return strconv.Itoa(int(c)) + " (private)"
	}
	return strconv.Itoa(int(c))
}

// sendable reports whether c may appear in a Close frame we send.
func (c StatusCode) sendable() bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014, c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// CloseReason is why a connection closed: the code and reason of the Close
// frame that ended it, or a local code (1006 for a lost connection, 1002,
// 1007 or 1009 when we failed the connection) when there was none.
type CloseReason struct {
	Code   StatusCode
	Reason string
}

func (r CloseReason) String() string {
	if r.Reason == "" {
		return r.Code.String()
	}
	return r.Code.String() + ": " + strconv.Quote(r.Reason)
}

var (
	// ErrConnectionClosed matches every *ConnectionClosedError.
	ErrConnectionClosed = errors.New("websocket connection closed")
	// ErrHandshake matches every failed opening handshake, including
	// *ConnectionRejectedError.
	ErrHandshake = errors.New("websocket handshake failed")
	// ErrConnectionTimeout is returned when DialOptions.ConnectTimeout ends
	// the opening handshake; the caller's own cancellation is reported as
	// the context's error instead.
	ErrConnectionTimeout = errors.New("websocket connect timed out")
	// ErrDisconnectionTimeout is returned by Close when the peer did not
	// answer the closing handshake within the disconnect timeout.
	ErrDisconnectionTimeout = errors.New("websocket closing handshake timed out")
	// ErrPingInFlight is returned by Ping when a ping with the same payload
	// is still waiting for its pong.
	ErrPingInFlight = errors.New("websocket ping with this payload already in flight")
)

// ConnectionClosedError is returned by every operation on a connection that
// is closing or closed. Reason says why.
type ConnectionClosedError struct {
	Reason CloseReason
}

func (e *ConnectionClosedError) Error() string {
	return "websocket connection closed: " + e.Reason.String()
}

// Is makes errors.Is(err, ErrConnectionClosed) true.
func (e *ConnectionClosedError) Is(target error) bool { return target == ErrConnectionClosed }

// ConnectionRejectedError is returned by Dial when the server answers the
// opening handshake with something other than 101 Switching Protocols.
type ConnectionRejectedError struct {
	StatusCode int
	Header     http.Header
	Body       []byte // at most the first 1 KiB of the response body
}

func (e *ConnectionRejectedError) Error() string {
	return fmt.Sprintf("websocket handshake rejected: HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// Is makes errors.Is(err, ErrHandshake) true.
func (e *ConnectionRejectedError) Is(target error) bool { return target == ErrHandshake }
