// Package stripegw charges and refunds through Stripe: a payment.Gateway on the official
// stripe-go client, which signs requests with the secret key, sends the Idempotency-Key
// and Stripe-Version headers and retries what is safe to retry.
//
// A charge is one PaymentIntent created with confirm=true, automatic capture and cards
// only. The agent's token decides how the payment method is given: a Shared Payment
// Token (spt_) as payment_method_data[shared_payment_granted_token], a PaymentMethod
// (pm_) as payment_method, a card token (tok_, Stripe's test tokens among them) through
// a PaymentMethod created from it first. docs/payments.md ("Stripe gateway") lists what
// is sent and how each answer maps to the payment.Gateway errors.
package stripegw

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v85"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
)

// Name is the gateway's name, what payments record as their gateway and what payment
// handlers show as their PSP.
const Name = "stripe"

// DefaultAPIBase is Stripe's API.
const DefaultAPIBase = "https://api.stripe.com"

// DefaultTimeout bounds one HTTP attempt when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// DefaultNetworkRetries is how many times serve lets the client retry a request whose
// outcome is unknown (a network error, a 409, a 5xx): safe, since every request carries
// an idempotency key, and few, since the buyer's agent is waiting.
const DefaultNetworkRetries = 2

// Token prefixes the gateway knows how to pay with.
const (
	// SharedPaymentTokenPrefix starts a Stripe Shared Payment Token, the credential an
	// agent obtains from Stripe for this merchant (credential type spt).
	SharedPaymentTokenPrefix = "spt_"
	// PaymentMethodPrefix starts a Stripe PaymentMethod id.
	PaymentMethodPrefix = "pm_"
	// CardTokenPrefix starts a Stripe card token (tok_visa and the other test tokens).
	CardTokenPrefix = "tok_"
)

// Config configures a Gateway.
type Config struct {
	// SecretKey is the merchant's secret or restricted key (sk_test_, sk_live_, rk_...).
	SecretKey string
	// APIBase is the API's base URL ("" for DefaultAPIBase): stripe-mock or a test
	// server in tests.
	APIBase string
	// Timeout bounds each HTTP attempt (0 for DefaultTimeout); the caller's context
	// bounds the whole call, retries included.
	Timeout time.Duration
	// NetworkRetries is how many times a request whose outcome is unknown is sent again,
	// with the same idempotency key (0: never).
	NetworkRetries int
	// HTTPClient sends the requests (nil: a client with Timeout). Tests set it to watch
	// the traffic.
	HTTPClient *http.Client
}

// Gateway charges and refunds through Stripe. It is safe for concurrent use.
type Gateway struct {
	client *stripe.Client
}

var _ payment.Gateway = (*Gateway)(nil)

// New returns a Gateway configured by cfg.
func New(cfg Config) (*Gateway, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("stripe: a secret key is required")
	}
	base := cfg.APIBase
	if base == "" {
		base = DefaultAPIBase
	}
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		timeout := cfg.Timeout
		if timeout == 0 {
			timeout = DefaultTimeout
		}
		httpClient = &http.Client{Timeout: timeout}
	}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(strings.TrimRight(base, "/")),
		HTTPClient:        httpClient,
		MaxNetworkRetries: stripe.Int64(int64(cfg.NetworkRetries)),
		// The client's own log lines quote Stripe's error messages, which can name
		// the token ("No such token: 'tok_...'"); the caller logs the errors returned,
		// with the token redacted.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	backends := &stripe.Backends{API: backend, Connect: backend, Uploads: backend, MeterEvents: backend}
	return &Gateway{client: stripe.NewClient(cfg.SecretKey, stripe.WithBackends(backends))}, nil
}

// Name implements payment.Gateway.
func (*Gateway) Name() string { return Name }

// Charge implements payment.Gateway: it creates and confirms a PaymentIntent for c.
func (g *Gateway) Charge(ctx context.Context, c payment.Charge) (payment.Receipt, error) {
	// The key leaves room for the suffix of the PaymentMethod a card token becomes.
	if err := checkIdempotencyKey(c.IdempotencyKey, maxIdempotencyKey-len(paymentMethodKeySuffix)); err != nil {
		return payment.Receipt{}, fmt.Errorf("stripe: charge: %w", err)
	}
	params := &stripe.PaymentIntentCreateParams{
		Amount:   stripe.Int64(c.Amount),
		Currency: stripe.String(strings.ToLower(c.Currency)),
		Confirm:  stripe.Bool(true),
		// Captured at once: an order is only written for money taken, and no job
		// captures later (docs/decisions.md).
		CaptureMethod: stripe.String(string(stripe.PaymentIntentCaptureMethodAutomatic)),
		// Cards only: no payment method that redirects the buyer can be chosen, and the
		// Dashboard's payment method settings change nothing.
		PaymentMethodTypes: []*string{stripe.String("card")},
		Metadata:           metadata(c.SessionID, c.OrderID),
		// The card's brand names the 3-D Secure directory server when Stripe asks
		// for authentication.
		Expand: []*string{stripe.String("payment_method")},
	}
	params.SetIdempotencyKey(c.IdempotencyKey)
	switch {
	case strings.HasPrefix(c.Token, SharedPaymentTokenPrefix):
		// A preview parameter the typed params do not have yet.
		params.AddExtra("payment_method_data[shared_payment_granted_token]", c.Token)
	case strings.HasPrefix(c.Token, PaymentMethodPrefix):
		params.PaymentMethod = stripe.String(c.Token)
	case strings.HasPrefix(c.Token, CardTokenPrefix):
		pm, err := g.paymentMethodFromCardToken(ctx, c)
		if err != nil {
			return payment.Receipt{}, err
		}
		params.PaymentMethod = stripe.String(pm)
	default:
		// Not a token Stripe issues: asking would only be refused.
		return payment.Receipt{}, payment.ErrTokenNotFound
	}
	if tds := threeDSecure(c.Authentication); tds != nil {
		params.PaymentMethodOptions = &stripe.PaymentIntentCreatePaymentMethodOptionsParams{
			Card: &stripe.PaymentIntentCreatePaymentMethodOptionsCardParams{ThreeDSecure: tds},
		}
	}
	pi, err := g.client.V1PaymentIntents.Create(ctx, params)
	if err != nil {
		return payment.Receipt{}, chargeError("create payment intent", c.Token, err)
	}
	return receipt(pi)
}

// paymentMethodFromCardToken turns a card token into a PaymentMethod, the form a
// PaymentIntent takes. Stripe's OpenAPI (and so stripe-mock) has no card in a
// PaymentIntent's payment_method_data; creating the PaymentMethod first is the
// documented route. Its idempotency key derives from the charge's, so a retried charge
// reuses the same PaymentMethod rather than spending the single-use token again.
func (g *Gateway) paymentMethodFromCardToken(ctx context.Context, c payment.Charge) (string, error) {
	params := &stripe.PaymentMethodCreateParams{
		Type: stripe.String(string(stripe.PaymentMethodTypeCard)),
		Card: &stripe.PaymentMethodCreateCardParams{Token: stripe.String(c.Token)},
	}
	params.SetIdempotencyKey(c.IdempotencyKey + paymentMethodKeySuffix)
	pm, err := g.client.V1PaymentMethods.Create(ctx, params)
	if err != nil {
		return "", chargeError("create payment method", c.Token, err)
	}
	return pm.ID, nil
}

// Refund implements payment.Gateway: it refunds r.Amount of the PaymentIntent
// r.Reference, in the PaymentIntent's currency (Stripe takes no currency for it).
func (g *Gateway) Refund(ctx context.Context, r payment.Refund) (payment.RefundReceipt, error) {
	if err := checkIdempotencyKey(r.IdempotencyKey, maxIdempotencyKey); err != nil {
		return payment.RefundReceipt{}, fmt.Errorf("stripe: refund: %w", err)
	}
	if r.Amount <= 0 {
		return payment.RefundReceipt{}, fmt.Errorf("stripe: refund amount %d is not positive", r.Amount)
	}
	params := &stripe.RefundCreateParams{
		PaymentIntent: stripe.String(r.Reference),
		Amount:        stripe.Int64(r.Amount),
		Metadata:      metadata("", r.OrderID),
	}
	params.SetIdempotencyKey(r.IdempotencyKey)
	refund, err := g.client.V1Refunds.Create(ctx, params)
	if err != nil {
		return payment.RefundReceipt{}, refundError(r.Reference, err)
	}
	switch refund.Status {
	case stripe.RefundStatusSucceeded, stripe.RefundStatusPending:
		// Pending: Stripe took the refund and the card network settles it later; a
		// failure then comes as a charge.refund.updated event, not as this answer.
		return payment.RefundReceipt{Reference: refund.ID}, nil
	}
	return payment.RefundReceipt{}, fmt.Errorf("stripe: refund %s of payment intent %s is %s (%s)",
		refund.ID, r.Reference, refund.Status, refund.FailureReason)
}

// maxIdempotencyKey is the longest Idempotency-Key Stripe takes.
const maxIdempotencyKey = 255

// paymentMethodKeySuffix follows the charge's idempotency key in that of the
// PaymentMethod made from a card token.
const paymentMethodKeySuffix = "/payment_method"

// checkIdempotencyKey refuses, before anything is sent, a key Stripe cannot take: none
// (a retry, ours or the client's, could then charge twice) or one longer than limit bytes
// (the client would refuse it with an error that reads like a network failure, an
// outcome in doubt).
func checkIdempotencyKey(key string, limit int) error {
	switch {
	case key == "":
		return errors.New("an idempotency key is required")
	case len(key) > limit:
		return fmt.Errorf("the idempotency key is %d bytes, at most %d are taken", len(key), limit)
	}
	return nil
}

// metadata names the checkout session and the order on Stripe's record, leaving out
// what is not known.
func metadata(sessionID, orderID string) map[string]string {
	m := map[string]string{}
	if sessionID != "" {
		m["checkout_session_id"] = sessionID
	}
	if orderID != "" {
		m["order_id"] = orderID
	}
	return m
}

// aresTransStatus is the ARes transStatus each successful outcome stands for: Y
// authenticated, A attempt acknowledged, I informational only (challenge waived).
var aresTransStatus = map[checkout.AuthenticationOutcome]string{
	checkout.OutcomeAuthenticated:       "Y",
	checkout.OutcomeAttemptAcknowledged: "A",
	checkout.OutcomeInformational:       "I",
}

// threeDSecure is the agent's 3-D Secure result as Stripe's externally authenticated
// 3-D Secure options, nil when there is none to send: no result, a failed one (the
// checkout refuses those before charging), or one without the cryptogram, transaction
// id and version Stripe requires. Without it Stripe runs its own rules, and asks for
// authentication (requires_action) if the issuer wants it.
func threeDSecure(a *checkout.AuthenticationResult) *stripe.PaymentIntentCreatePaymentMethodOptionsCardThreeDSecureParams {
	if a == nil || !a.Outcome.Succeeded() || a.Cryptogram == "" || a.TransactionID == "" || a.Version == "" {
		return nil
	}
	tds := &stripe.PaymentIntentCreatePaymentMethodOptionsCardThreeDSecureParams{
		Cryptogram:      stripe.String(a.Cryptogram),
		TransactionID:   stripe.String(a.TransactionID),
		Version:         stripe.String(a.Version),
		AresTransStatus: stripe.String(aresTransStatus[a.Outcome]),
	}
	if a.ECI != "" {
		tds.ElectronicCommerceIndicator = stripe.String(a.ECI)
	}
	return tds
}

// receipt maps a confirmed PaymentIntent to the charge's outcome.
func receipt(pi *stripe.PaymentIntent) (payment.Receipt, error) {
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		return payment.Receipt{Reference: pi.ID}, nil
	case stripe.PaymentIntentStatusRequiresAction:
		// The issuer wants 3-D Secure, which the agent runs (2026-04-17); the
		// PaymentIntent is left as it is and expires unpaid.
		return payment.Receipt{}, &payment.AuthenticationRequiredError{DirectoryServer: directoryServer(pi.PaymentMethod)}
	case stripe.PaymentIntentStatusProcessing:
		// The outcome comes later; asking again with the same key tells it.
		return payment.Receipt{}, fmt.Errorf("stripe: payment intent %s is still processing: %w", pi.ID, payment.ErrUnavailable)
	case stripe.PaymentIntentStatusRequiresPaymentMethod:
		// Confirmation failed on the card: Stripe usually answers a 402, but a
		// PaymentIntent may come back with the failure in last_payment_error.
		return payment.Receipt{}, payment.DeclinedError(declineMessage(pi.LastPaymentError))
	}
	// requires_capture, requires_confirmation, canceled: not the outcome of a confirmed,
	// automatically captured PaymentIntent. An operator must look at it.
	return payment.Receipt{}, fmt.Errorf("stripe: payment intent %s is %s after confirmation with automatic capture", pi.ID, pi.Status)
}

// directoryServer is the 3-D Secure directory server of pm's card ("" when unknown).
func directoryServer(pm *stripe.PaymentMethod) string {
	if pm == nil || pm.Card == nil {
		return ""
	}
	return checkout.DirectoryServer(string(pm.Card.Brand))
}

// declinedMessage is said when Stripe gives no message of its own.
const declinedMessage = "Your card was declined."

// declineMessage is what the buyer is told of a card error: Stripe's card error
// messages are written for the cardholder ("Your card has insufficient funds.").
func declineMessage(e *stripe.Error) string {
	if e == nil || e.Type != stripe.ErrorTypeCard || e.Msg == "" {
		return declinedMessage
	}
	return e.Msg
}

// tokenParams are the request parameters a charge's token goes into: an error naming
// one is about the token.
var tokenParams = []string{"payment_method_data[shared_payment_granted_token]", "payment_method", "card[token]", "token"}

// chargeError maps an error of a charge request (op) paying with token to the
// payment.Gateway errors.
func chargeError(op, token string, err error) error {
	se, ok := errors.AsType[*stripe.Error](err)
	if !ok {
		// No answer: a timeout, a refused connection, a canceled context.
		return fmt.Errorf("stripe: %s: %w: %w", op, payment.ErrUnavailable, err)
	}
	if inDoubt(se) {
		return fmt.Errorf("stripe: %s: %w: %s", op, payment.ErrUnavailable, describe(se, token))
	}
	switch {
	case se.Type == stripe.ErrorTypeCard && (se.Code == stripe.ErrorCodeAuthenticationRequired ||
		se.DeclineCode == stripe.DeclineCodeAuthenticationRequired):
		return &payment.AuthenticationRequiredError{DirectoryServer: directoryServer(errorPaymentMethod(se))}
	case se.Type == stripe.ErrorTypeCard:
		return payment.DeclinedError(declineMessage(se))
	case se.Type == stripe.ErrorTypeIdempotency:
		// The caller's key scheme is wrong, not the buyer's card: Stripe answers a
		// repeated key with its first answer only when the parameters are the same.
		return fmt.Errorf("stripe: %s: the idempotency key was used before with other parameters; each payment attempt needs its own key: %s",
			op, describe(se, token))
	case se.Code == stripe.ErrorCodeResourceMissing:
		// The only objects a charge names are the token and what derives from it.
		return payment.ErrTokenNotFound
	case se.Type == stripe.ErrorTypeInvalidRequest && isTokenParam(se.Param):
		// A token Stripe knows but will not use (expired, revoked, over its limits): the
		// buyer's agent must bring another, as after a decline.
		return payment.DeclinedError("The payment token was refused by the payment provider.")
	}
	// A request Stripe refuses for a reason of ours (a parameter, the key, the
	// account): a bug or a configuration to fix, not the buyer's.
	return fmt.Errorf("stripe: %s: %s", op, describe(se, token))
}

// refundError maps an error of the refund of the PaymentIntent reference.
func refundError(reference string, err error) error {
	se, ok := errors.AsType[*stripe.Error](err)
	if !ok {
		return fmt.Errorf("stripe: refund payment intent %s: %w: %w", reference, payment.ErrUnavailable, err)
	}
	if inDoubt(se) {
		return fmt.Errorf("stripe: refund payment intent %s: %w: %s", reference, payment.ErrUnavailable, describe(se, ""))
	}
	// Nothing about a refund is the buyer's to fix: an unknown PaymentIntent, an amount
	// beyond what is left, a charge already refunded are all the caller's errors.
	return fmt.Errorf("stripe: refund payment intent %s: %s", reference, describe(se, ""))
}

// inDoubt reports whether Stripe's answer leaves the outcome unknown: a server error, a
// rate limit or a conflicting request in flight with the same key, once the client's
// retries are spent.
func inDoubt(se *stripe.Error) bool {
	return se.HTTPStatusCode >= http.StatusInternalServerError || se.HTTPStatusCode == http.StatusTooManyRequests ||
		se.HTTPStatusCode == http.StatusConflict || se.Type == stripe.ErrorTypeAPI || se.HTTPStatusCode == 0
}

// errorPaymentMethod is the payment method a card error names (nil when none).
func errorPaymentMethod(se *stripe.Error) *stripe.PaymentMethod {
	if se.PaymentMethod != nil {
		return se.PaymentMethod
	}
	if se.PaymentIntent != nil {
		return se.PaymentIntent.PaymentMethod
	}
	return nil
}

func isTokenParam(param string) bool {
	for _, p := range tokenParams {
		if param == p {
			return true
		}
	}
	return false
}

// describe is se for a log line: status, type, code, parameter, Stripe's request id and
// message, with the token shortened wherever Stripe quotes it.
func describe(se *stripe.Error, token string) string {
	msg := se.Msg
	if token != "" {
		msg = strings.ReplaceAll(msg, token, RedactToken(token))
	}
	return fmt.Sprintf("HTTP %d %s (code %q, param %q, request %s): %s",
		se.HTTPStatusCode, se.Type, se.Code, se.Param, se.RequestID, msg)
}

// RedactToken is what may be shown of a token: its prefix and its last four characters
// (spt_…a1b2), as a card shows its last four digits.
func RedactToken(token string) string {
	prefix, rest, ok := strings.Cut(token, "_")
	if !ok || len(rest) <= 4 {
		return "…"
	}
	return prefix + "_…" + rest[len(rest)-4:]
}
