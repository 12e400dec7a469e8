package checkout

import (
	"slices"
	"strings"
)

// PaymentHandler is a way to pay that a session offers (2026-04-17's payment handlers):
// which tokens it takes and which payment service provider charges them. 2025-09-29 has
// no handlers; its completions name the provider instead and take every token.
type PaymentHandler struct {
	// ID is what a completion names (payment_data.handler_id).
	ID string
	// Name is the handler specification it follows, in reverse-DNS form.
	Name        string
	DisplayName string
	// PSP is the payment service provider behind it; MerchantID is the merchant's
	// account there, the merchant_id an agent copies into a delegated allowance.
	PSP        string
	MerchantID string
	// RequiresDelegatePayment says the agent must obtain the token from the PSP's
	// delegate_payment endpoint first.
	RequiresDelegatePayment bool
	// TokenPrefix is how the tokens this handler takes begin.
	TokenPrefix string
}

// The payment handler ids this server offers.
const (
	// HandlerVaultCard takes the vault tokens (vt_...) of this server's delegate_payment.
	HandlerVaultCard = "card_tokenized"
	// HandlerPSPTestCard takes the payment service provider's card tokens (tok_visa,
	// ...): Stripe's test tokens, with the mock or a Stripe test key.
	HandlerPSPTestCard = "card_psp_test"
	// HandlerStripeSPT takes Stripe Shared Payment Tokens (spt_...), the credential of
	// type spt an agent obtains from Stripe for this merchant. Offered only when Stripe
	// is the gateway: no other PSP can charge them.
	HandlerStripeSPT = "card_stripe_spt"
)

// PSPStripe is the gateway name of Stripe, whose tokens HandlerStripeSPT takes.
const PSPStripe = "stripe"

// PaymentHandlers are the handlers every session offers: cards delegated to this
// server's vault, the PSP's card tokens and, when the PSP is Stripe, Stripe's Shared
// Payment Tokens. merchantID is the merchant's id at the PSP; psp names the gateway
// that charges PSP tokens ("mock", "stripe").
func PaymentHandlers(merchantID, psp string) []PaymentHandler {
	handlers := []PaymentHandler{
		{
			ID: HandlerVaultCard, Name: "dev.acp.tokenized.card", DisplayName: "Card",
			PSP: "acs_vault", MerchantID: merchantID, RequiresDelegatePayment: true, TokenPrefix: "vt_",
		},
		{
			ID: HandlerPSPTestCard, Name: "dev.acp.tokenized.card", DisplayName: "Card (PSP test token)",
			PSP: psp, MerchantID: merchantID, TokenPrefix: "tok_",
		},
	}
	if psp == PSPStripe {
		// The agent delegates the card to Stripe (Stripe's delegate_payment, with the
		// merchant_id above: the merchant's Stripe account) and brings the SPT.
		handlers = append(handlers, PaymentHandler{
			ID: HandlerStripeSPT, Name: "dev.acp.tokenized.card", DisplayName: "Card (Stripe Shared Payment Token)",
			PSP: psp, MerchantID: merchantID, RequiresDelegatePayment: true, TokenPrefix: "spt_",
		})
	}
	return handlers
}

// CheckHandler refuses a completion whose handler the session does not offer, or whose
// token that handler does not take. A completion without a handler (2025-09-29) is not
// checked here.
func (c *Completion) CheckHandler(offered []PaymentHandler) error {
	if c.HandlerID == "" {
		return nil
	}
	i := slices.IndexFunc(offered, func(h PaymentHandler) bool { return h.ID == c.HandlerID })
	if i < 0 {
		return Errorf(KindInvalid, "invalid_payment_handler", At(FieldPayment).Child(FieldHandler),
			"Payment handler %q is not offered by this checkout session.", c.HandlerID)
	}
	if h := offered[i]; !strings.HasPrefix(c.Token, h.TokenPrefix) {
		return Errorf(KindInvalid, "invalid_payment_token", At(FieldPayment).Child(FieldToken),
			"Payment handler %s takes tokens beginning with %s.", h.ID, h.TokenPrefix)
	}
	return nil
}

// merchantInterventions are the interventions (3ds, biometric, address_verification)
// the merchant can run: 3-D Secure, whose result the agent brings to the completion.
var merchantInterventions = []string{Intervention3DS}

// Interventions is the intersection of what the agent supports and what the merchant
// can run, in the agent's order: what a session may ask of the agent.
func (s *Session) Interventions() []string {
	out := []string{}
	for _, i := range s.AgentInterventions {
		if slices.Contains(merchantInterventions, i) {
			out = append(out, i)
		}
	}
	return out
}
