package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/agentic-commerce/agentic-commerce-server/db"
)

// SignatureReplays remembers the signed requests every instance has accepted, so that a
// captured request cannot be sent again while its timestamp is still in the window.
type SignatureReplays struct {
	pool *pgxpool.Pool
}

// NewSignatureReplays returns the replay cache on pool.
func NewSignatureReplays(pool *pgxpool.Pool) *SignatureReplays { return &SignatureReplays{pool: pool} }

// Remember records digest until expires and reports whether it is new. It is one
// statement that commits on its own: of two identical requests racing on two
// instances, exactly one is new.
func (s *SignatureReplays) Remember(ctx context.Context, digest []byte, expires time.Time) (bool, error) {
	n, err := db.New(s.pool).RememberSignature(ctx, db.RememberSignatureParams{Digest: digest, ExpiresAt: expires})
	if err != nil {
		return false, fmt.Errorf("remember signature: %w", err)
	}
	return n == 1, nil
}
