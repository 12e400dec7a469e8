package payment

import "context"

// VaultService issues delegated payment tokens (the PSP side of ACP) to the transports.
// It lives here, beside Delegation and Token, rather than in checkout: payment imports
// checkout (its errors and NewID), so checkout cannot name payment's types. An interface,
// so that a real PSP's vault can replace the built-in one.
type VaultService interface {
	Delegate(ctx context.Context, owner string, d *Delegation) (Token, error)
}
