package webhook

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Encoder renders the body of an event in one ACP version, from the event's snapshot
// (its type, the order as it was, and when it happened). It is called at send time, on
// every attempt, so it must be deterministic: the same event gives the same bytes, and
// any time it writes comes from the event (OccurredAt, the order's times), never from
// the clock.
type Encoder func(Event) ([]byte, error)

// encoders holds one Encoder per ACP version events can be sent in
// (WEBHOOK_API_VERSION). A new version is one more entry.
var encoders = map[string]Encoder{
	Version0929: encode0929,
	Version0417: encode0417,
}

// DefaultVersion is the WEBHOOK_API_VERSION when none is set: 2025-09-29, so a
// deployment keeps the events it sent before the setting existed.
const DefaultVersion = Version0929

// Versions returns the versions events can be sent in, sorted.
func Versions() []string { return slices.Sorted(maps.Keys(encoders)) }

// EncoderFor returns the Encoder of version, or an error naming the supported ones.
func EncoderFor(version string) (Encoder, error) {
	if enc, ok := encoders[version]; ok {
		return enc, nil
	}
	return nil, fmt.Errorf("no webhook encoder for API version %q (supported: %v)", version, Versions())
}

// Body is what a worker sending in version delivers for e (see Worker).
func Body(version string, e Event) ([]byte, error) {
	enc, err := EncoderFor(version)
	if err != nil {
		return nil, err
	}
	return body(enc, e)
}

// body is what an attempt sends for e: a body stored already encoded (Payload) as it
// is, byte for byte; otherwise the snapshot encoded by enc.
func body(enc Encoder, e Event) ([]byte, error) {
	switch {
	case e.Payload != nil:
		return e.Payload, nil
	case e.Unreadable != nil:
		return nil, e.Unreadable
	case e.Order == nil:
		return nil, errors.New("event has neither a stored body nor an order snapshot")
	}
	b, err := enc(e)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return b, nil
}
