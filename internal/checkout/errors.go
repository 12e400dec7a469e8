package checkout

import (
	"errors"
	"fmt"
)

// Kind classifies a domain error; the HTTP adapter maps each kind to one status code.
type Kind int

// The kinds of domain error.
const (
	// KindInternal is a failure the caller cannot fix; its detail is logged, never shown.
	KindInternal Kind = iota
	// KindInvalid is a request the caller must correct.
	KindInvalid
	// KindNotFound is a resource that does not exist (or is not the caller's).
	KindNotFound
	// KindNotAllowed is an action the resource's state forbids (e.g. cancel when completed).
	KindNotAllowed
	// KindUnavailable is a dependency that is down; retrying later may work.
	KindUnavailable
	// KindConflict is a request the resource's current state cannot serve yet (e.g.
	// complete while not ready for payment, or stock sold out meanwhile).
	KindConflict
	// KindDeclined is a payment the payment provider refused.
	KindDeclined
)

// Error is a domain error with a stable machine code, a message for people and an
// optional Field naming what is at fault; each API version renders the field as its own
// JSONPath.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Field   Field
}

func (e *Error) Error() string {
	if !e.Field.IsZero() {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}

// Errorf builds an *Error of kind with code, the field at fault (the zero Field for
// none) and a formatted message.
func Errorf(kind Kind, code string, at Field, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Field: at, Message: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned when a session does not exist.
var ErrNotFound = &Error{Kind: KindNotFound, Code: "not_found", Message: "Checkout session not found."}

// AsError returns err as an *Error when it is one (or wraps one).
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
