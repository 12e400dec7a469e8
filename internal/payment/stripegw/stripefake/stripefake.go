// Package stripefake is a local stand-in for the part of Stripe's API the Stripe gateway
// (internal/payment/stripegw) calls: PaymentMethods from card tokens, PaymentIntents
// from PaymentMethods or Shared Payment Tokens, and Refunds, with Stripe's idempotency.
// It can be slow, hold the first charge's answer, charge and never answer, or fail with
// 500s, so that the tests and the bench (cmd/acpload) can put a completion through each
// thing a real PSP does. It is not Stripe's API mock: stripe-mock checks the requests
// against Stripe's OpenAPI (stripegw's tests); this one keeps state.
package stripefake

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a stand-in for the Stripe API on 127.0.0.1, slow on purpose when asked:
// every request is answered after Delay, as a real PSP answers after a network round
// trip and its own work. It serves what a payment gateway calls, form-encoded with
// `Authorization: Bearer sk_test_…`:
//
//	POST /v1/payment_methods   type=card, card[token]=tok_…: a card PaymentMethod
//	POST /v1/payment_intents   amount, currency (required), and payment_method=pm_… or
//	                           payment_method_data[shared_payment_granted_token]=spt_…:
//	                           a succeeded PaymentIntent, its card PaymentMethod expanded
//	POST /v1/refunds           payment_intent (required), amount: a succeeded Refund
//
// A Shared Payment Token is single use, as an agent's is: a second
// PaymentIntent with the same one is refused.
//
// A repeated Idempotency-Key gets the first response again (Idempotent-Replayed: true),
// as Stripe does; reused with other parameters it is refused with an idempotency_error.
//
// SetMode makes it misbehave as a PSP does in an outage (Hang, Fail), and HoldFirstCharge
// keeps one answer back while a test kills the server that asked.
type Server struct {
	delay time.Duration
	srv   *http.Server
	url   string

	// mode is a Mode; onCharge is called as each PaymentIntent request arrives.
	mode     atomic.Int32
	onCharge func()
	// held is closed when the first PaymentIntent is taken while hold is set; release
	// lets the held answer go.
	hold          bool
	held, release chan struct{}
	releaseOnce   sync.Once

	mu sync.Mutex
	// byKey holds the response to every Idempotency-Key, with the request it answered.
	byKey map[string]pspResponse
	// intents are the PaymentIntents created, by id (their amount bounds a refund);
	// methods the PaymentMethods.
	intents map[string]pspObject
	methods map[string]*pspObject
	// sptSpent maps each Shared Payment Token charged to its PaymentIntent.
	sptSpent map[string]string
	seq      atomic.Int64

	methodsCreated, intentsCreated, sptIntents, refundsCreated, replays, refused, unanswered atomic.Int64
}

// Mode is how the server answers.
type Mode int32

// The modes.
const (
	// Normal answers every request after the delay.
	Normal Mode = iota
	// Hang processes a request (a PaymentIntent is created and stored under its key)
	// and never answers it: the caller's timeout ends it, in doubt, as when a PSP's
	// answer is lost after the charge.
	Hang
	// Fail answers every request with a 500 api_error without processing it: an outage
	// in which nothing is charged, whose outcome the caller cannot know.
	Fail
)

// Options configure a Server.
type Options struct {
	// Delay is how long every answer waits.
	Delay time.Duration
	// OnCharge, when set, is called as each POST /v1/payment_intents arrives, before
	// the delay: a test samples what the caller holds while it waits on the PSP.
	OnCharge func()
	// HoldFirstCharge keeps the answer of the first PaymentIntent created back (the
	// charge is taken) until Release: a test kills the caller meanwhile.
	HoldFirstCharge bool
}

// pspResponse is a stored answer: the request it answered (path and form digest), the
// status and the body.
type pspResponse struct {
	request [sha256.Size]byte
	status  int
	body    []byte
	// intent is the PaymentIntent created, when this answered one.
	intent string
}

// pspObject is a PaymentMethod, PaymentIntent or Refund as the API returns it.
type pspObject struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	Type          string            `json:"type,omitempty"`
	Card          *pspCard          `json:"card,omitempty"`
	Status        string            `json:"status,omitempty"`
	Amount        int64             `json:"amount,omitempty"`
	Currency      string            `json:"currency,omitempty"`
	PaymentMethod *pspObject        `json:"payment_method,omitempty"`
	LatestCharge  string            `json:"latest_charge,omitempty"`
	PaymentIntent string            `json:"payment_intent,omitempty"`
	Metadata      map[string]string `json:"metadata"`
	Created       int64             `json:"created"`
	Livemode      bool              `json:"livemode"`
}

// pspCard is a PaymentMethod's card: what the test token stands for.
type pspCard struct {
	Brand    string `json:"brand"`
	Last4    string `json:"last4"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	Funding  string `json:"funding"`
}

// Start listens on a free port of 127.0.0.1 and serves until Close.
func Start(opts Options) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fake Stripe: %w", err)
	}
	p := New(opts)
	p.url = "http://" + l.Addr().String()
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// New returns a Server that is not listening: an http.Handler to mount elsewhere.
func New(opts Options) *Server {
	return &Server{
		delay: opts.Delay, onCharge: opts.OnCharge, hold: opts.HoldFirstCharge,
		held: make(chan struct{}), release: make(chan struct{}),
		byKey: map[string]pspResponse{}, intents: map[string]pspObject{},
		methods: map[string]*pspObject{}, sptSpent: map[string]string{},
	}
}

// URL is the API base to give the server (STRIPE_API_BASE).
func (p *Server) URL() string { return p.url }

// Close lets held answers go and stops serving.
func (p *Server) Close() {
	p.Release()
	if p.srv != nil {
		_ = p.srv.Close()
	}
}

// SetMode changes how the server answers from the next request on.
func (p *Server) SetMode(m Mode) { p.mode.Store(int32(m)) }

// Held is closed once the first PaymentIntent is taken and its answer held
// (Options.HoldFirstCharge).
func (p *Server) Held() <-chan struct{} { return p.held }

// Release lets held answers go.
func (p *Server) Release() { p.releaseOnce.Do(func() { close(p.release) }) }

// Counts is what the fake Stripe served.
type Counts struct {
	PaymentMethods int64 `json:"payment_methods"`
	PaymentIntents int64 `json:"payment_intents"`
	// SharedPaymentTokens counts the PaymentIntents paid with an SPT.
	SharedPaymentTokens int64 `json:"shared_payment_tokens"`
	Refunds             int64 `json:"refunds"`
	Replays             int64 `json:"idempotent_replays"`
	Refused             int64 `json:"refused"`
	// Unanswered counts the requests processed and never answered (Hang, or a held
	// answer whose caller went away).
	Unanswered int64 `json:"unanswered"`
}

// TakeCounts returns the counters and zeroes them, so that each run is counted apart.
func (p *Server) TakeCounts() Counts {
	return Counts{
		PaymentMethods: p.methodsCreated.Swap(0), PaymentIntents: p.intentsCreated.Swap(0),
		SharedPaymentTokens: p.sptIntents.Swap(0), Refunds: p.refundsCreated.Swap(0),
		Replays: p.replays.Swap(0), Refused: p.refused.Swap(0), Unanswered: p.unanswered.Swap(0),
	}
}

// PaymentIntentsByKey is how many distinct PaymentIntents were created (not replayed)
// under each Idempotency-Key: a caller that charged an attempt twice shows 2 nowhere,
// since Stripe answers a repeated key with the first one; a second key for one payment
// shows up as another entry.
func (p *Server) PaymentIntentsByKey() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]string{}
	for key, r := range p.byKey {
		if r.intent != "" {
			out[key] = r.intent
		}
	}
	return out
}

// ServeHTTP answers one API request after the delay.
func (p *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/v1/payment_intents" && p.onCharge != nil {
		p.onCharge()
	}
	select {
	case <-time.After(p.delay):
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	mode := Mode(p.mode.Load())
	if mode == Fail {
		p.refused.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
		_, body, _ := stripeError(http.StatusInternalServerError, "api_error", "", "An unknown error occurred (the fake Stripe is failing on purpose).")
		_, _ = w.Write(body)
		return
	}
	status, body, replayed := p.answer(r)
	if mode == Hang || p.holding(r, status, replayed) {
		// The request was processed; its answer is lost, as far as the caller knows.
		p.unanswered.Add(1)
		select {
		case <-r.Context().Done():
			return
		case <-p.release:
			if mode == Hang {
				return
			}
		}
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if status >= 400 {
		p.refused.Add(1)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// holding reports whether r's answer is the first charge's, to be held back
// (Options.HoldFirstCharge), and says so on Held.
func (p *Server) holding(r *http.Request, status int, replayed bool) bool {
	if !p.hold || replayed || status != http.StatusOK || r.URL.Path != "/v1/payment_intents" {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.held:
		return false // only the first
	default:
		close(p.held)
		return true
	}
}

// answer works out the response to r: a stored one for a known Idempotency-Key, else
// a new object.
func (p *Server) answer(r *http.Request) (status int, body []byte, replayed bool) {
	if r.Method != http.MethodPost {
		return stripeError(http.StatusMethodNotAllowed, "invalid_request_error", "", "Only POST is served by the fake Stripe.")
	}
	if key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok || !strings.HasPrefix(key, "sk_test_") {
		return stripeError(http.StatusUnauthorized, "invalid_request_error", "", "Invalid API Key provided: want Bearer sk_test_…")
	}
	if err := r.ParseForm(); err != nil {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "", "Unreadable form body: "+err.Error())
	}
	digest := formDigest(r.URL.Path, r.PostForm)
	key := r.Header.Get("Idempotency-Key")
	p.mu.Lock()
	defer p.mu.Unlock()
	if key != "" {
		if prev, ok := p.byKey[key]; ok {
			if prev.request != digest {
				return stripeError(http.StatusBadRequest, "idempotency_error", "",
					"Keys for idempotent requests can only be used with the same parameters they were first used with.")
			}
			p.replays.Add(1)
			return prev.status, prev.body, true
		}
	}
	switch r.URL.Path {
	case "/v1/payment_methods":
		status, body, _ = p.createMethod(r.PostForm)
	case "/v1/payment_intents":
		status, body, _ = p.createIntent(r.PostForm)
	case "/v1/refunds":
		status, body, _ = p.createRefund(r.PostForm)
	default:
		return stripeError(http.StatusNotFound, "invalid_request_error", "", "Unrecognized request URL (POST: "+r.URL.Path+").")
	}
	// Stripe stores the result of a request that was processed, errors included, but
	// not one refused before processing (auth, unknown URL).
	if key != "" {
		stored := pspResponse{request: digest, status: status, body: body}
		if r.URL.Path == "/v1/payment_intents" && status == http.StatusOK {
			var pi struct{ ID string }
			_ = json.Unmarshal(body, &pi)
			stored.intent = pi.ID
		}
		p.byKey[key] = stored
	}
	return status, body, false
}

// sptParam is the PaymentIntent parameter that carries a Shared Payment Token.
const sptParam = "payment_method_data[shared_payment_granted_token]"

// createIntent makes a succeeded PaymentIntent (the caller holds mu).
func (p *Server) createIntent(form url.Values) (int, []byte, bool) {
	amount, err := strconv.ParseInt(form.Get("amount"), 10, 64)
	if err != nil || amount <= 0 {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "amount", "Missing or invalid amount: want a positive integer in minor units.")
	}
	currency := strings.ToLower(form.Get("currency"))
	if len(currency) != 3 {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "currency", "Missing or invalid currency: want a three-letter ISO code.")
	}
	var method *pspObject
	spt := form.Get(sptParam)
	switch id := form.Get("payment_method"); {
	case spt != "" && id != "":
		return stripeError(http.StatusBadRequest, "invalid_request_error", sptParam, "You cannot pass both payment_method and "+sptParam+".")
	case spt != "":
		if !strings.HasPrefix(spt, "spt_") {
			return stripeError(http.StatusBadRequest, "invalid_request_error", sptParam, "No such shared payment granted token: '"+spt+"'")
		}
		if pi, spent := p.sptSpent[spt]; spent {
			return stripeError(http.StatusBadRequest, "invalid_request_error", sptParam,
				"The shared payment granted token '"+spt+"' was already used by "+pi+".")
		}
		// Stripe makes the card PaymentMethod from the token the agent was granted.
		method = p.newCardMethod(nil)
	case id != "":
		if method = p.methods[id]; method == nil {
			return stripeError(http.StatusBadRequest, "invalid_request_error", "payment_method", "No such PaymentMethod: '"+id+"'")
		}
	}
	n := p.seq.Add(1)
	pi := pspObject{
		ID: fmt.Sprintf("pi_fake%016d", n), Object: "payment_intent", Status: "succeeded",
		Amount: amount, Currency: currency, PaymentMethod: method, LatestCharge: fmt.Sprintf("ch_fake%016d", n),
		Metadata: formMetadata(form), Created: time.Now().Unix(),
	}
	p.intents[pi.ID] = pi
	p.intentsCreated.Add(1)
	if spt != "" {
		p.sptSpent[spt] = pi.ID
		p.sptIntents.Add(1)
	}
	body, _ := json.Marshal(pi)
	return http.StatusOK, body, false
}

// createMethod makes a card PaymentMethod from a test card token (the caller holds mu).
func (p *Server) createMethod(form url.Values) (int, []byte, bool) {
	token := form.Get("card[token]")
	if form.Get("type") != "card" || !strings.HasPrefix(token, "tok_") {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "card[token]", "Want type=card and card[token]=tok_….")
	}
	pm := p.newCardMethod(formMetadata(form))
	p.methodsCreated.Add(1)
	body, _ := json.Marshal(pm)
	return http.StatusOK, body, false
}

// newCardMethod stores a new Visa card PaymentMethod, the card every test token and SPT
// stands for (the caller holds mu).
func (p *Server) newCardMethod(metadata map[string]string) *pspObject {
	if metadata == nil {
		metadata = map[string]string{}
	}
	n := p.seq.Add(1)
	pm := &pspObject{
		ID: fmt.Sprintf("pm_fake%016d", n), Object: "payment_method", Type: "card",
		Card:     &pspCard{Brand: "visa", Last4: "4242", ExpMonth: 12, ExpYear: time.Now().Year() + 5, Funding: "credit"},
		Metadata: metadata, Created: time.Now().Unix(),
	}
	p.methods[pm.ID] = pm
	return pm
}

// createRefund makes a succeeded Refund of a known PaymentIntent (the caller holds mu).
func (p *Server) createRefund(form url.Values) (int, []byte, bool) {
	pi, ok := p.intents[form.Get("payment_intent")]
	if !ok {
		return stripeError(http.StatusBadRequest, "invalid_request_error", "payment_intent", "No such payment_intent: '"+form.Get("payment_intent")+"'")
	}
	amount := pi.Amount
	if s := form.Get("amount"); s != "" {
		a, err := strconv.ParseInt(s, 10, 64)
		if err != nil || a <= 0 || a > pi.Amount {
			return stripeError(http.StatusBadRequest, "invalid_request_error", "amount", "Invalid amount: want a positive integer up to the PaymentIntent's amount.")
		}
		amount = a
	}
	n := p.seq.Add(1)
	re := pspObject{
		ID: fmt.Sprintf("re_fake%016d", n), Object: "refund", Status: "succeeded",
		Amount: amount, Currency: pi.Currency, PaymentIntent: pi.ID,
		Metadata: formMetadata(form), Created: time.Now().Unix(),
	}
	p.refundsCreated.Add(1)
	body, _ := json.Marshal(re)
	return http.StatusOK, body, false
}

// formMetadata collects Stripe's metadata[key]=value form fields.
func formMetadata(form url.Values) map[string]string {
	md := map[string]string{}
	for k, v := range form {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") && len(v) > 0 {
			md[strings.TrimSuffix(name, "]")] = v[0]
		}
	}
	return md
}

// formDigest identifies a request's parameters whatever their order.
func formDigest(path string, form url.Values) [sha256.Size]byte {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(path)
	for _, k := range keys {
		for _, v := range form[k] {
			b.WriteString("\x00" + k + "=" + v)
		}
	}
	return sha256.Sum256([]byte(b.String()))
}

// stripeError is an error response in Stripe's shape.
func stripeError(status int, typ, param, message string) (int, []byte, bool) {
	body, err := json.Marshal(map[string]any{"error": map[string]string{"type": typ, "param": param, "message": message}})
	if err != nil {
		panic(errors.Join(errors.New("fake Stripe: marshal an error"), err))
	}
	return status, body, false
}
