// Package jsonmsg sends and receives typed values as JSON text messages over
// a wsconn.Conn, one value per message.
//
//	type Move struct{ X, Y int }
//	err := jsonmsg.Send(ctx, c, Move{1, 2}, nil)
//	m, err := jsonmsg.Receive[Move](ctx, c, nil)
//
// A message that does not decode is reported as a *DecodeError, after which
// the connection is still usable: the bad message has been consumed and the
// caller decides whether to carry on or close (1007, invalid payload data, is
// the usual code; 1003 for a message of the wrong type). Encode and Decode
// split the steps for callers that publish one encoded value to many
// connections (see recipes/broadcast) or already hold a received message.
package jsonmsg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/wsnursery/wsnursery/wsconn"
)

// ErrTooLarge is wrapped by errors for messages over Options.MaxSize.
var ErrTooLarge = errors.New("JSON message exceeds the size limit")

// ErrNotText is wrapped by a *DecodeError for a binary message when
// Options.AcceptBinary is not set.
var ErrNotText = errors.New("binary message where JSON text was expected")

// Options configures encoding and decoding. A nil *Options means defaults.
type Options struct {
	// MaxSize is the largest encoded message in bytes, inclusive, for both
	// directions: Send and Encode refuse a larger value (nothing is sent),
	// Receive and Decode reject a larger message. Zero means no limit beyond
	// the connection's own MaxMessageSize, which fails the connection (1009)
	// rather than a single message.
	MaxSize int
	// DisallowUnknownFields makes an object key that matches no field of
	// the target struct a decode error.
	DisallowUnknownFields bool
	// AcceptBinary makes Receive and Decode decode binary messages too. By
	// default a binary message is a *DecodeError wrapping ErrNotText.
	AcceptBinary bool
}

// DecodeError reports a received message that could not be decoded. The
// message has been consumed; the connection is unharmed.
type DecodeError struct {
	Type   wsconn.MessageType // the message's type
	Data   []byte             // the message, owned by the caller
	Target string             // the Go type decoded into, e.g. "main.Move"
	// Err is ErrTooLarge, ErrNotText, or encoding/json's error
	// (*json.SyntaxError, *json.UnmarshalTypeError, ...).
	Err error
}

// Error reports the target type, the message's size and the cause; not the
// message itself, which may be large or sensitive.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("failed to decode %d-byte %v message as %s: %v", len(e.Data), e.Type, e.Target, e.Err)
}

// Unwrap returns Err.
func (e *DecodeError) Unwrap() error { return e.Err }

// Encode marshals v into a text message. It fails if v cannot be marshalled
// or its encoding exceeds opts.MaxSize.
func Encode(v any, opts *Options) (wsconn.Message, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return wsconn.Message{}, fmt.Errorf("failed to encode JSON message: %w", err)
	}
	if opts != nil && opts.MaxSize > 0 && len(data) > opts.MaxSize {
		return wsconn.Message{}, fmt.Errorf("failed to encode JSON message: %w: %d bytes, limit %d", ErrTooLarge, len(data), opts.MaxSize)
	}
	// json.Marshal always produces valid UTF-8, so this is a valid text
	// message.
	return wsconn.Message{Type: wsconn.Text, Data: data}, nil
}

// Send encodes v as JSON and sends it as one text message. If v cannot be
// encoded or is over opts.MaxSize, nothing is sent. See wsconn.Conn.Send for
// what ctx does.
func Send(ctx context.Context, c *wsconn.Conn, v any, opts *Options) error {
	m, err := Encode(v, opts)
	if err != nil {
		return err
	}
	if err := c.Send(ctx, m); err != nil {
		return fmt.Errorf("failed to send JSON message: %w", err)
	}
	return nil
}

// Receive receives the next message and decodes it into a T. A message that
// does not decode yields a *DecodeError (and T's zero value); the connection
// stays usable. Errors from the connection itself (a closed connection, ctx
// ending) are returned wrapped as they are, never as a *DecodeError.
func Receive[T any](ctx context.Context, c *wsconn.Conn, opts *Options) (T, error) {
	m, err := c.Receive(ctx)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("failed to receive JSON message: %w", err)
	}
	return Decode[T](m, opts)
}

// Decode decodes one message into a T: exactly one JSON value, optionally
// surrounded by whitespace, as json.Unmarshal reads it. Any failure is a
// *DecodeError; malformed JSON (truncated, empty, trailing data) wraps a
// *json.SyntaxError.
func Decode[T any](m wsconn.Message, opts *Options) (T, error) {
	if opts == nil {
		opts = &Options{}
	}
	var v T
	fail := func(err error) (T, error) {
		var zero T
		return zero, &DecodeError{Type: m.Type, Data: m.Data, Target: typeName[T](), Err: err}
	}
	switch {
	case m.Type == wsconn.Binary && !opts.AcceptBinary:
		return fail(ErrNotText)
	case opts.MaxSize > 0 && len(m.Data) > opts.MaxSize:
		return fail(fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(m.Data), opts.MaxSize))
	}
	var err error
	switch {
	case !opts.DisallowUnknownFields:
		err = json.Unmarshal(m.Data, &v)
	case !json.Valid(m.Data):
		// For the same *json.SyntaxError that Unmarshal reports.
		err = json.Unmarshal(m.Data, new(json.RawMessage))
	default:
		dec := json.NewDecoder(bytes.NewReader(m.Data))
		dec.DisallowUnknownFields()
		err = dec.Decode(&v) // one value: json.Valid checked there is no more
	}
	if err != nil {
		return fail(err)
	}
	return v, nil
}

func typeName[T any]() string {
	return reflect.TypeFor[T]().String()
}
