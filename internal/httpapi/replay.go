package httpapi

import (
	"context"
	"crypto/sha256"
	"time"
)

// SignatureReplays remembers the signatures of accepted requests (see
// postgres.SignatureReplays). Remember reports whether digest is new, and keeps it until
// expires.
type SignatureReplays interface {
	Remember(ctx context.Context, digest []byte, expires time.Time) (bool, error)
}

// replayMargin keeps a remembered signature a little past the end of its window, so an
// instance whose clock runs behind the others still finds it.
const replayMargin = time.Minute

// rememberSignature refuses a verified signature that was accepted before. The spec
// signs only Timestamp and the body, so without this a captured request could be sent
// again, to the same endpoint or to another one taking the same body (an empty-body GET
// reused on POST …/cancel), for as long as its timestamp is in the window. A signature
// is spent by its first use, whatever the outcome: a client retries with a fresh
// Timestamp (and the same Idempotency-Key to get the first answer).
func (s *Server) rememberSignature(ctx context.Context, mac []byte, at time.Time) error {
	if s.replays == nil {
		return nil
	}
	digest := sha256.Sum256(mac)
	fresh, err := s.replays.Remember(ctx, digest[:], at.Add(signatureWindow+replayMargin))
	if err != nil {
		return err
	}
	if !fresh {
		return unauthorized("signature_replayed",
			"This signed request was already received; sign every request, retries included, with a fresh Timestamp.")
	}
	return nil
}
