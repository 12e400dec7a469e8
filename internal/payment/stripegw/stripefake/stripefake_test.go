package stripefake

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/payment"
	"github.com/agentic-commerce/agentic-commerce-server/internal/payment/stripegw"
)

// pspPost sends a form to the fake PSP and returns the status, the decoded object and
// whether it was marked as a replay.
func pspPost(t *testing.T, p *Server, path, auth, key string, form url.Values) (int, pspObject, bool) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.URL()+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var obj pspObject
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &obj); err != nil {
			t.Fatalf("%s: %v: %s", path, err, body)
		}
	}
	return resp.StatusCode, obj, resp.Header.Get("Idempotent-Replayed") == "true"
}

// testAuth is what the server sends the fake PSP.
const testAuth = "Bearer " + testKey

// testKey is a Stripe test secret key of the form stripegw accepts.
const testKey = "sk_test_stripefakeTest0000000000"

func startTestPSP(t *testing.T, delay time.Duration) *Server {
	t.Helper()
	p, err := Start(Options{Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestFakeStripePaymentIntentFromTheForm(t *testing.T) {
	t.Parallel()
	p := startTestPSP(t, 0)
	form := url.Values{"amount": {"2109"}, "currency": {"USD"}, "confirm": {"true"},
		"payment_method_data[type]": {"card"}, "metadata[order_id]": {"ord_1"}}
	status, pi, replayed := pspPost(t, p, "/v1/payment_intents", testAuth, "k1", form)
	if status != http.StatusOK || replayed {
		t.Fatalf("status %d, replayed %v", status, replayed)
	}
	if !strings.HasPrefix(pi.ID, "pi_") || pi.Object != "payment_intent" || pi.Status != "succeeded" ||
		pi.Amount != 2109 || pi.Currency != "usd" || !strings.HasPrefix(pi.LatestCharge, "ch_") || pi.Metadata["order_id"] != "ord_1" {
		t.Errorf("payment intent = %+v", pi)
	}
	for _, bad := range []url.Values{
		{"currency": {"usd"}},                   // no amount
		{"amount": {"-5"}, "currency": {"usd"}}, // not positive
		{"amount": {"100"}},                     // no currency
	} {
		if status, _, _ := pspPost(t, p, "/v1/payment_intents", testAuth, "", bad); status != http.StatusBadRequest {
			t.Errorf("form %v: status %d, want 400", bad, status)
		}
	}
	if c := p.TakeCounts(); c.PaymentIntents != 1 || c.Refused != 3 {
		t.Errorf("counts = %+v, want 1 payment intent, 3 refused", c)
	}
}

func TestFakeStripePaymentMethodFromACardToken(t *testing.T) {
	t.Parallel()
	p := startTestPSP(t, 0)
	status, pm, _ := pspPost(t, p, "/v1/payment_methods", testAuth, "k/payment_method", url.Values{"type": {"card"}, "card[token]": {"tok_visa"}})
	if status != http.StatusOK || !strings.HasPrefix(pm.ID, "pm_") || pm.Object != "payment_method" || pm.Card == nil || pm.Card.Brand != "visa" {
		t.Fatalf("payment method: status %d, %+v", status, pm)
	}
	form := url.Values{"amount": {"100"}, "currency": {"usd"}, "payment_method": {pm.ID}, "confirm": {"true"}, "expand[0]": {"payment_method"}}
	status, pi, _ := pspPost(t, p, "/v1/payment_intents", testAuth, "k", form)
	if status != http.StatusOK || pi.PaymentMethod == nil || pi.PaymentMethod.ID != pm.ID || pi.Status != "succeeded" {
		t.Errorf("payment intent with the method: status %d, %+v", status, pi)
	}
	form.Set("payment_method", "pm_unknown")
	if status, _, _ := pspPost(t, p, "/v1/payment_intents", testAuth, "", form); status != http.StatusBadRequest {
		t.Errorf("an unknown payment method: status %d, want 400", status)
	}
	if status, _, _ := pspPost(t, p, "/v1/payment_methods", testAuth, "", url.Values{"type": {"card"}, "card[token]": {"vt_1"}}); status != http.StatusBadRequest {
		t.Errorf("not a card token: status %d, want 400", status)
	}
	if c := p.TakeCounts(); c.PaymentMethods != 1 || c.PaymentIntents != 1 {
		t.Errorf("counts = %+v", c)
	}
}

func TestFakeStripeWantsATestSecretKey(t *testing.T) {
	t.Parallel()
	p := startTestPSP(t, 0)
	form := url.Values{"amount": {"100"}, "currency": {"usd"}}
	for _, auth := range []string{"", "Bearer sk_live_x", "Basic sk_test_x"} {
		if status, _, _ := pspPost(t, p, "/v1/payment_intents", auth, "", form); status != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d, want 401", auth, status)
		}
	}
}

func TestFakeStripeIdempotency(t *testing.T) {
	t.Parallel()
	p := startTestPSP(t, 0)
	form := url.Values{"amount": {"100"}, "currency": {"usd"}}
	_, first, _ := pspPost(t, p, "/v1/payment_intents", testAuth, "same", form)
	status, again, replayed := pspPost(t, p, "/v1/payment_intents", testAuth, "same", form)
	if status != http.StatusOK || !replayed || again.ID != first.ID {
		t.Errorf("repeated key: status %d, replayed %v, id %s, want the first %s", status, replayed, again.ID, first.ID)
	}
	if _, other, replayed := pspPost(t, p, "/v1/payment_intents", testAuth, "other", form); replayed || other.ID == first.ID {
		t.Errorf("another key got %s (replayed %v), want a new payment intent", other.ID, replayed)
	}
	changed := url.Values{"amount": {"200"}, "currency": {"usd"}}
	if status, _, _ := pspPost(t, p, "/v1/payment_intents", testAuth, "same", changed); status != http.StatusBadRequest {
		t.Errorf("key reused with other parameters: status %d, want 400", status)
	}
	if c := p.TakeCounts(); c.PaymentIntents != 2 || c.Replays != 1 {
		t.Errorf("counts = %+v, want 2 payment intents and 1 replay", c)
	}
}

func TestFakeStripeRefunds(t *testing.T) {
	t.Parallel()
	p := startTestPSP(t, 0)
	_, pi, _ := pspPost(t, p, "/v1/payment_intents", testAuth, "", url.Values{"amount": {"500"}, "currency": {"eur"}})
	status, re, _ := pspPost(t, p, "/v1/refunds", testAuth, "r1", url.Values{"payment_intent": {pi.ID}})
	if status != http.StatusOK || !strings.HasPrefix(re.ID, "re_") || re.Object != "refund" || re.Amount != 500 ||
		re.Currency != "eur" || re.PaymentIntent != pi.ID || re.Status != "succeeded" {
		t.Errorf("full refund: status %d, %+v", status, re)
	}
	if _, again, replayed := pspPost(t, p, "/v1/refunds", testAuth, "r1", url.Values{"payment_intent": {pi.ID}}); !replayed || again.ID != re.ID {
		t.Errorf("repeated refund key: %s (replayed %v), want %s", again.ID, replayed, re.ID)
	}
	if _, part, _ := pspPost(t, p, "/v1/refunds", testAuth, "", url.Values{"payment_intent": {pi.ID}, "amount": {"200"}}); part.Amount != 200 {
		t.Errorf("partial refund amount %d, want 200", part.Amount)
	}
	for _, bad := range []url.Values{{"payment_intent": {"pi_unknown"}}, {"payment_intent": {pi.ID}, "amount": {"501"}}} {
		if status, _, _ := pspPost(t, p, "/v1/refunds", testAuth, "", bad); status != http.StatusBadRequest {
			t.Errorf("refund %v: status %d, want 400", bad, status)
		}
	}
}

func TestFakeStripeAnswersAfterTheDelay(t *testing.T) {
	t.Parallel()
	const delay = 150 * time.Millisecond
	p := startTestPSP(t, delay)
	start := time.Now()
	status, _, _ := pspPost(t, p, "/v1/payment_intents", testAuth, "", url.Values{"amount": {"100"}, "currency": {"usd"}})
	if took := time.Since(start); status != http.StatusOK || took < delay {
		t.Errorf("status %d after %s, want 200 after at least %s", status, took, delay)
	}
	// Requests wait side by side, not one after the other: a slow PSP is slow per
	// request, not a queue. Four requests must all be inside the handler at once.
	var mu sync.Mutex
	arrived, all := 0, make(chan struct{})
	side, err := Start(Options{Delay: delay, OnCharge: func() {
		mu.Lock()
		if arrived++; arrived == 4 {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(10 * time.Second): // not side by side: the statuses below fail
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(side.Close)
	done := make(chan int, 4)
	for range 4 {
		go func() {
			status, _, _ := pspPost(t, side, "/v1/payment_intents", testAuth, "", url.Values{"amount": {"100"}, "currency": {"usd"}})
			done <- status
		}()
	}
	for range 4 {
		if s := <-done; s != http.StatusOK {
			t.Errorf("status %d", s)
		}
	}
	select {
	case <-all:
	default:
		t.Error("the 4 requests were never all inside the fake at once: the delay serialises them")
	}
}

// sptForm is a PaymentIntent paid with a Shared Payment Token, as the Stripe gateway
// sends it.
func sptForm(spt string) url.Values {
	return url.Values{"amount": {"2109"}, "currency": {"usd"}, "confirm": {"true"}, "capture_method": {"automatic"},
		"payment_method_types[0]": {"card"}, "expand[0]": {"payment_method"}, sptParam: {spt}}
}

func TestFakeStripePaymentIntentFromASharedPaymentToken(t *testing.T) {
	t.Parallel()
	p := startTestPSP(t, 0)
	const spt = "spt_1RgaZcFfrsXiS9Fab3PsUTwX"
	status, pi, _ := pspPost(t, p, "/v1/payment_intents", testAuth, "cs_1", sptForm(spt))
	if status != http.StatusOK || !strings.HasPrefix(pi.ID, "pi_") || pi.Status != "succeeded" || pi.Amount != 2109 {
		t.Fatalf("payment intent from an SPT: status %d, %+v", status, pi)
	}
	// The gateway reads the card's brand from the expanded PaymentMethod.
	if pm := pi.PaymentMethod; pm == nil || !strings.HasPrefix(pm.ID, "pm_") || pm.Card == nil || pm.Card.Brand != "visa" {
		t.Errorf("payment method of the SPT's payment intent = %+v, want a Visa card PaymentMethod", pi.PaymentMethod)
	}
	// A retry with the key is answered with the first PaymentIntent, not refused as spent.
	if status, again, replayed := pspPost(t, p, "/v1/payment_intents", testAuth, "cs_1", sptForm(spt)); status != http.StatusOK || !replayed || again.ID != pi.ID {
		t.Errorf("retried SPT charge: status %d, replayed %v, %s; want the first %s", status, replayed, again.ID, pi.ID)
	}
	both := sptForm("spt_other")
	both.Set("payment_method", pi.PaymentMethod.ID)
	for name, form := range map[string]url.Values{
		"the same SPT under another key": sptForm(spt),
		"not an SPT":                     sptForm("tok_visa"),
		"an SPT and a payment method":    both,
	} {
		if status, _, _ := pspPost(t, p, "/v1/payment_intents", testAuth, "other "+name, form); status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, status)
		}
	}
	if c := p.TakeCounts(); c.PaymentIntents != 1 || c.SharedPaymentTokens != 1 || c.PaymentMethods != 0 || c.Replays != 1 || c.Refused != 3 {
		t.Errorf("counts = %+v, want 1 payment intent paid with an SPT, no payment method call, 1 replay, 3 refused", c)
	}
}

// TestFakeStripeChargesThroughTheStripeGateway pays through the server's Stripe gateway
// against the fake: an SPT in one request, a card token in two.
func TestFakeStripeChargesThroughTheStripeGateway(t *testing.T) {
	t.Parallel()
	p := startTestPSP(t, 0)
	gw, err := stripegw.New(stripegw.Config{SecretKey: testKey, APIBase: p.URL()})
	if err != nil {
		t.Fatal(err)
	}
	charge := payment.Charge{Token: "spt_stripefakeTest1", Amount: 2109, Currency: "USD", SessionID: "cs_1", IdempotencyKey: "cs_1"}
	receipt, err := gw.Charge(t.Context(), charge)
	if err != nil || !strings.HasPrefix(receipt.Reference, "pi_") {
		t.Fatalf("SPT charge: %+v, %v", receipt, err)
	}
	if c := p.TakeCounts(); c.PaymentIntents != 1 || c.SharedPaymentTokens != 1 || c.PaymentMethods != 0 || c.Refused != 0 {
		t.Errorf("SPT charge: counts = %+v, want one PaymentIntent paid with the SPT", c)
	}
	charge.Token, charge.IdempotencyKey = "tok_visa", "cs_2"
	if receipt, err := gw.Charge(t.Context(), charge); err != nil || !strings.HasPrefix(receipt.Reference, "pi_") {
		t.Fatalf("card token charge: %+v, %v", receipt, err)
	}
	if c := p.TakeCounts(); c.PaymentIntents != 1 || c.PaymentMethods != 1 || c.SharedPaymentTokens != 0 {
		t.Errorf("card token charge: counts = %+v, want a PaymentMethod, then a PaymentIntent", c)
	}
}

// Hang charges and never answers: the caller times out in doubt, and asking again with
// the same key in Normal mode gets that charge, not a second one.
func TestFakeStripeHangChargesWithoutAnswering(t *testing.T) {
	t.Parallel()
	p := startTestPSP(t, 0)
	p.SetMode(Hang)
	gw, err := stripegw.New(stripegw.Config{SecretKey: testKey, APIBase: p.URL(), Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	charge := payment.Charge{Token: "spt_hang", Amount: 500, Currency: "usd", SessionID: "cs_h", IdempotencyKey: "cs_h"}
	if _, err := gw.Charge(t.Context(), charge); !errors.Is(err, payment.ErrUnavailable) {
		t.Fatalf("charge against a hanging PSP: %v, want in doubt (ErrUnavailable)", err)
	}
	p.SetMode(Normal)
	// Asked again by a gateway with a timeout no loaded machine reaches.
	patient, err := stripegw.New(stripegw.Config{SecretKey: testKey, APIBase: p.URL()})
	if err != nil {
		t.Fatal(err)
	}
	receipt, err := patient.Charge(t.Context(), charge)
	if err != nil {
		t.Fatalf("asked again: %v", err)
	}
	if byKey := p.PaymentIntentsByKey(); len(byKey) != 1 || byKey["cs_h"] != receipt.Reference {
		t.Errorf("payment intents by key = %v, want the one first charge %s", byKey, receipt.Reference)
	}
	if c := p.TakeCounts(); c.PaymentIntents != 1 || c.Unanswered < 1 {
		t.Errorf("counts = %+v, want 1 payment intent and the unanswered request(s)", c)
	}
}

// Fail answers 500 without charging: in doubt for the caller, nothing for the PSP.
func TestFakeStripeFailChargesNothing(t *testing.T) {
	t.Parallel()
	p := startTestPSP(t, 0)
	p.SetMode(Fail)
	gw, err := stripegw.New(stripegw.Config{SecretKey: testKey, APIBase: p.URL()})
	if err != nil {
		t.Fatal(err)
	}
	charge := payment.Charge{Token: "spt_fail", Amount: 500, Currency: "usd", SessionID: "cs_f", IdempotencyKey: "cs_f"}
	if _, err := gw.Charge(t.Context(), charge); !errors.Is(err, payment.ErrUnavailable) {
		t.Fatalf("charge against a failing PSP: %v, want in doubt (ErrUnavailable)", err)
	}
	if byKey := p.PaymentIntentsByKey(); len(byKey) != 0 {
		t.Errorf("payment intents = %v, want none", byKey)
	}
}

// HoldFirstCharge takes the first charge and keeps its answer until Release.
func TestFakeStripeHoldsTheFirstChargesAnswer(t *testing.T) {
	t.Parallel()
	p, err := Start(Options{HoldFirstCharge: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	answered := make(chan int, 1)
	go func() {
		status, _, _ := pspPost(t, p, "/v1/payment_intents", testAuth, "k", url.Values{"amount": {"100"}, "currency": {"usd"}})
		answered <- status
	}()
	<-p.Held()
	select {
	case s := <-answered:
		t.Fatalf("answered %d while held", s)
	case <-time.After(100 * time.Millisecond):
	}
	if len(p.PaymentIntentsByKey()) != 1 {
		t.Error("the held charge was not taken")
	}
	p.Release()
	if s := <-answered; s != http.StatusOK {
		t.Errorf("released answer: %d", s)
	}
}
