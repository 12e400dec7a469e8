package stripegw_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85"

	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment/stripegw"
)

// newGateway is a gateway on the Stripe at base, without retries unless cfg says.
func newGateway(t *testing.T, base string, cfg ...func(*stripegw.Config)) *stripegw.Gateway {
	t.Helper()
	c := stripegw.Config{SecretKey: testKey, APIBase: base, Timeout: 5 * time.Second}
	for _, f := range cfg {
		f(&c)
	}
	g, err := stripegw.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

const sharedPaymentToken = "spt_1RgaZcFfrsXiS9Fab3PsUTwX"

// sptCharge is a charge of a Shared Payment Token, as the checkout asks for it.
func sptCharge() payment.Charge {
	return payment.Charge{
		Token: sharedPaymentToken, Amount: 3718, Currency: "USD", SessionID: "cs_123", OrderID: "ord_123",
		IdempotencyKey: "cs_123/1",
	}
}

// wantForm fails t unless form holds exactly want.
func wantForm(t *testing.T, what string, form url.Values, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := form.Get(k); got != v || len(form[k]) != 1 {
			t.Errorf("%s: %s = %q, want %q", what, k, form[k], v)
		}
	}
	for k := range form {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected parameter %s = %q", what, k, form[k])
		}
	}
}

// wantHeaders fails t unless r carries the key, the API version and idempotencyKey.
func wantHeaders(t *testing.T, r request, idempotencyKey string) {
	t.Helper()
	if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
		t.Errorf("Authorization = %q", got)
	}
	if got := r.Header.Get("Idempotency-Key"); got != idempotencyKey {
		t.Errorf("Idempotency-Key = %q, want %q", got, idempotencyKey)
	}
	if got := r.Header.Get("Stripe-Version"); got != stripe.APIVersion {
		t.Errorf("Stripe-Version = %q, want the client's pinned %s", got, stripe.APIVersion)
	}
}

// TestChargeSharedPaymentToken pins the exact request of an SPT charge, which
// stripe-mock cannot check: payment_method_data[shared_payment_granted_token] is a
// preview parameter missing from Stripe's public OpenAPI (stripe-mock refuses it, asking
// for payment_method_data[type]).
func TestChargeSharedPaymentToken(t *testing.T) {
	t.Parallel()
	stripeAPI := newFakeStripe(t, answer{200, succeededIntent})
	c := sptCharge()
	c.Authentication = &checkout.AuthenticationResult{
		Outcome: checkout.OutcomeAuthenticated, Cryptogram: "AAABBEg0VhI0VniQEjRWAAAAAAA=", ECI: "05",
		TransactionID: "f25084f0-5b16-4c0a-ae5d-b24808a95e4b", Version: "2.2.0",
	}
	r, err := newGateway(t, stripeAPI.URL).Charge(context.Background(), c)
	if err != nil || r.Reference != "pi_succeeded" {
		t.Fatalf("Charge = %+v, %v; want the PaymentIntent's id", r, err)
	}
	got := stripeAPI.received()
	if len(got) != 1 || got[0].Method != http.MethodPost || got[0].Path != "/v1/payment_intents" {
		t.Fatalf("requests = %+v, want one POST /v1/payment_intents", got)
	}
	wantHeaders(t, got[0], "cs_123/1")
	wantForm(t, "payment intent", got[0].Form, map[string]string{
		"amount": "3718", "currency": "usd", "confirm": "true", "capture_method": "automatic",
		"payment_method_types[0]": "card", "expand[0]": "payment_method",
		"metadata[checkout_session_id]": "cs_123", "metadata[order_id]": "ord_123",
		"payment_method_data[shared_payment_granted_token]":                           sharedPaymentToken,
		"payment_method_options[card][three_d_secure][cryptogram]":                    "AAABBEg0VhI0VniQEjRWAAAAAAA=",
		"payment_method_options[card][three_d_secure][electronic_commerce_indicator]": "05",
		"payment_method_options[card][three_d_secure][transaction_id]":                "f25084f0-5b16-4c0a-ae5d-b24808a95e4b",
		"payment_method_options[card][three_d_secure][version]":                       "2.2.0",
		"payment_method_options[card][three_d_secure][ares_trans_status]":             "Y",
	})
}

// TestChargePaymentMethodAndCardToken shows the other two tokens' requests: a
// PaymentMethod goes as it is; a card token becomes a PaymentMethod first, under a key
// of its own derived from the charge's.
func TestChargePaymentMethodAndCardToken(t *testing.T) {
	t.Parallel()
	common := map[string]string{
		"amount": "3718", "currency": "usd", "confirm": "true", "capture_method": "automatic",
		"payment_method_types[0]": "card", "expand[0]": "payment_method",
		"metadata[checkout_session_id]": "cs_123", "metadata[order_id]": "ord_123",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for k, v := range common {
			m[k] = v
		}
		return m
	}

	stripeAPI := newFakeStripe(t, answer{200, succeededIntent})
	c := sptCharge()
	c.Token = "pm_card_visa"
	if _, err := newGateway(t, stripeAPI.URL).Charge(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	got := stripeAPI.received()
	if len(got) != 1 {
		t.Fatalf("pm_: %d requests", len(got))
	}
	wantForm(t, "pm_", got[0].Form, with("payment_method", "pm_card_visa"))

	stripeAPI = newFakeStripe(t, answer{200, `{"id": "pm_from_token", "object": "payment_method", "type": "card"}`}, answer{200, succeededIntent})
	c.Token = "tok_visa"
	if _, err := newGateway(t, stripeAPI.URL).Charge(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	got = stripeAPI.received()
	if len(got) != 2 || got[0].Path != "/v1/payment_methods" || got[1].Path != "/v1/payment_intents" {
		t.Fatalf("tok_: requests %+v, want a payment method then a payment intent", got)
	}
	wantHeaders(t, got[0], "cs_123/1/payment_method")
	wantForm(t, "tok_ payment method", got[0].Form, map[string]string{"type": "card", "card[token]": "tok_visa"})
	wantHeaders(t, got[1], "cs_123/1")
	wantForm(t, "tok_ payment intent", got[1].Form, with("payment_method", "pm_from_token"))
}

// TestChargeOutcomes maps each of Stripe's answers to the Gateway's.
func TestChargeOutcomes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		answer answer
		check  func(t *testing.T, r payment.Receipt, err error)
	}{
		{"succeeded", answer{200, succeededIntent}, func(t *testing.T, r payment.Receipt, err error) {
			if err != nil || r.Reference != "pi_succeeded" {
				t.Errorf("= %+v, %v", r, err)
			}
		}},
		{"requires_action", answer{200, actionIntent}, wantAuthentication(checkout.DirectoryMastercard)},
		{"authentication_required decline", answer{402, authenticationDeclined}, wantAuthentication(checkout.DirectoryVisa)},
		{"card declined", answer{402, cardDeclined}, func(t *testing.T, _ payment.Receipt, err error) {
			de, ok := checkout.AsError(err)
			if !ok || de.Kind != checkout.KindDeclined || de.Code != payment.CodePaymentDeclined || de.Message != "Your card has insufficient funds." {
				t.Errorf("err = %v, want a decline with Stripe's cardholder message", err)
			}
		}},
		{"declined in the payment intent", answer{200, `{"id": "pi_x", "object": "payment_intent", "status": "requires_payment_method",
			"last_payment_error": {"type": "card_error", "code": "card_declined", "message": "Your card has expired."}}`},
			func(t *testing.T, _ payment.Receipt, err error) {
				if de, ok := checkout.AsError(err); !ok || de.Kind != checkout.KindDeclined || de.Message != "Your card has expired." {
					t.Errorf("err = %v, want a decline", err)
				}
			}},
		{"unknown token", answer{400, `{"error": {"type": "invalid_request_error", "code": "resource_missing",
			"param": "payment_method_data[shared_payment_granted_token]", "message": "No such shared_payment_granted_token: '` + sharedPaymentToken + `'"}}`},
			func(t *testing.T, _ payment.Receipt, err error) {
				if !errors.Is(err, payment.ErrTokenNotFound) {
					t.Errorf("err = %v, want ErrTokenNotFound", err)
				}
			}},
		{"revoked token", answer{400, `{"error": {"type": "invalid_request_error", "code": "shared_payment_granted_token_revoked",
			"param": "payment_method_data[shared_payment_granted_token]", "message": "The token was revoked."}}`},
			func(t *testing.T, _ payment.Receipt, err error) {
				if de, ok := checkout.AsError(err); !ok || de.Kind != checkout.KindDeclined {
					t.Errorf("err = %v, want a decline", err)
				}
			}},
		{"server error", answer{500, serverError}, wantUnavailable},
		{"rate limited", answer{429, rateLimited}, wantUnavailable},
		{"processing", answer{200, processingIntent}, wantUnavailable},
		{"our bug", answer{400, `{"error": {"type": "invalid_request_error", "code": "parameter_invalid_integer", "param": "amount",
			"message": "Invalid integer: ` + sharedPaymentToken + `"}}`}, wantBug},
		{"wrong key", answer{401, `{"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****UTuv"}}`}, wantBug},
		{"requires_capture", answer{200, captureIntent}, wantBug},
		{"key reused with other parameters", answer{400, `{"error": {"type": "idempotency_error",
			"message": "Keys for idempotent requests can only be used with the same parameters they were first used with."}}`},
			func(t *testing.T, r payment.Receipt, err error) {
				wantBug(t, r, err)
				if err == nil || !strings.Contains(err.Error(), "each payment attempt needs its own key") {
					t.Errorf("err = %v, want it to say the key was reused", err)
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			stripeAPI := newFakeStripe(t, c.answer)
			r, err := newGateway(t, stripeAPI.URL).Charge(context.Background(), sptCharge())
			c.check(t, r, err)
			if err != nil && strings.Contains(err.Error(), sharedPaymentToken) {
				t.Errorf("the error shows the whole token: %v", err)
			}
		})
	}
}

func wantAuthentication(directoryServer string) func(*testing.T, payment.Receipt, error) {
	return func(t *testing.T, _ payment.Receipt, err error) {
		t.Helper()
		ar, ok := errors.AsType[*payment.AuthenticationRequiredError](err)
		if !ok || ar.DirectoryServer != directoryServer {
			t.Errorf("err = %v, want authentication required with %s", err, directoryServer)
		}
	}
}

func wantUnavailable(t *testing.T, _ payment.Receipt, err error) {
	t.Helper()
	if !errors.Is(err, payment.ErrUnavailable) {
		t.Errorf("err = %v, want one wrapping ErrUnavailable", err)
	}
}

// wantBug accepts the error of a request Stripe refuses for a reason of the server's: not
// the buyer's (no decline), not in doubt.
func wantBug(t *testing.T, _ payment.Receipt, err error) {
	t.Helper()
	_, isCheckoutError := checkout.AsError(err)
	if err == nil || isCheckoutError || errors.Is(err, payment.ErrUnavailable) || errors.Is(err, payment.ErrTokenNotFound) {
		t.Errorf("err = %v, want a plain error", err)
	}
}

// TestChargeWithoutAnswer covers the charges whose outcome is unknown because Stripe did
// not answer: too slowly, or not at all.
func TestChargeWithoutAnswer(t *testing.T) {
	t.Parallel()
	slow := newFakeStripe(t, answer{200, succeededIntent})
	slow.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Second): // ten times the client's timeout
		}
	})
	g := newGateway(t, slow.URL, func(c *stripegw.Config) { c.Timeout = 100 * time.Millisecond })
	start := time.Now()
	_, err := g.Charge(context.Background(), sptCharge())
	wantUnavailable(t, payment.Receipt{}, err)
	if elapsed := time.Since(start); elapsed >= time.Second {
		t.Errorf("a 100ms timeout took %s", elapsed)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	_ = ln.Close()
	_, err = newGateway(t, closed).Charge(context.Background(), sptCharge())
	wantUnavailable(t, payment.Receipt{}, err)
	if err != nil && !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v, want it to say the connection was refused", err)
	}
}

// TestChargeRetriesWithTheSameKey shows that a retry after a lost connection asks again
// under the same idempotency key, so Stripe answers it with the first attempt's outcome.
func TestChargeRetriesWithTheSameKey(t *testing.T) {
	t.Parallel()
	stripeAPI := newFakeStripe(t, answer{dropConnection, ""}, answer{200, succeededIntent})
	g := newGateway(t, stripeAPI.URL, func(c *stripegw.Config) { c.NetworkRetries = 1 })
	r, err := g.Charge(context.Background(), sptCharge())
	if err != nil || r.Reference != "pi_succeeded" {
		t.Fatalf("Charge = %+v, %v", r, err)
	}
	got := stripeAPI.received()
	if len(got) != 2 || got[0].Header.Get("Idempotency-Key") != "cs_123/1" || got[1].Header.Get("Idempotency-Key") != "cs_123/1" {
		t.Errorf("requests %d, keys %q, %q; want two under cs_123/1", len(got), got[0].Header.Get("Idempotency-Key"), got[len(got)-1].Header.Get("Idempotency-Key"))
	}
}

// TestChargeRefusesWithoutAsking covers what is refused before any request: a token
// Stripe does not issue, a charge without an idempotency key or with one too long.
func TestChargeRefusesWithoutAsking(t *testing.T) {
	t.Parallel()
	stripeAPI := newFakeStripe(t, answer{200, succeededIntent})
	g := newGateway(t, stripeAPI.URL)
	c := sptCharge()
	c.Token = "vt_0123456789"
	if _, err := g.Charge(context.Background(), c); !errors.Is(err, payment.ErrTokenNotFound) {
		t.Errorf("a vault token: %v, want ErrTokenNotFound", err)
	}
	for _, key := range []string{"", strings.Repeat("k", 241)} { // 241 + len("/payment_method") > 255
		c = sptCharge()
		c.IdempotencyKey = key
		if _, err := g.Charge(context.Background(), c); err == nil || errors.Is(err, payment.ErrUnavailable) {
			t.Errorf("a charge with a %d-byte idempotency key: %v, want a plain error", len(key), err)
		}
	}
	if n := len(stripeAPI.received()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestRefund(t *testing.T) {
	t.Parallel()
	refund := payment.Refund{Reference: "pi_succeeded", Amount: 500, Currency: "usd", OrderID: "ord_123", IdempotencyKey: "ord_123/refund/1"}
	stripeAPI := newFakeStripe(t, answer{200, refunded})
	r, err := newGateway(t, stripeAPI.URL).Refund(context.Background(), refund)
	if err != nil || r.Reference != "re_1" {
		t.Fatalf("Refund = %+v, %v", r, err)
	}
	got := stripeAPI.received()
	if len(got) != 1 || got[0].Path != "/v1/refunds" {
		t.Fatalf("requests %+v, want one POST /v1/refunds", got)
	}
	wantHeaders(t, got[0], "ord_123/refund/1")
	wantForm(t, "refund", got[0].Form, map[string]string{"payment_intent": "pi_succeeded", "amount": "500", "metadata[order_id]": "ord_123"})

	for _, c := range []struct {
		name   string
		answer answer
		check  func(*testing.T, payment.Receipt, error)
	}{
		{"server error", answer{500, serverError}, wantUnavailable},
		{"already refunded", answer{400, `{"error": {"type": "invalid_request_error", "code": "charge_already_refunded", "message": "Charge ch_1 has already been refunded."}}`}, wantBug},
		{"unknown payment intent", answer{404, `{"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "payment_intent", "message": "No such payment_intent: 'pi_succeeded'"}}`}, wantBug},
		{"failed", answer{200, `{"id": "re_2", "object": "refund", "status": "failed", "failure_reason": "expired_or_canceled_card"}`}, wantBug},
	} {
		_, err := newGateway(t, newFakeStripe(t, c.answer).URL).Refund(context.Background(), refund)
		t.Run(c.name, func(t *testing.T) { c.check(t, payment.Receipt{}, err) })
	}
}

func TestRedactToken(t *testing.T) {
	t.Parallel()
	for token, want := range map[string]string{
		sharedPaymentToken: "spt_…UTwX", "tok_chargeDeclined": "tok_…ined", "tok_visa": "…", "secret": "…", "": "…",
	} {
		if got := stripegw.RedactToken(token); got != want {
			t.Errorf("RedactToken(%q) = %q, want %q", token, got, want)
		}
	}
}
