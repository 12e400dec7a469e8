package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// apiVersion is the ACP version requests ask for unless their run says otherwise
// (loadConfig.apiVersion).
const apiVersion = "2025-09-29"

// The fixed parts of the flow's request bodies. The cart is one tee (item_123) shipped
// to California, as in the README walk-through.
const (
	createBody = `{"items":[{"id":"item_123","quantity":1}],` + shippedToCalifornia
	// shippedToCalifornia ends a create body: the address every flow ships to.
	shippedToCalifornia = `"fulfillment_address":{"name":"John Doe","line_one":"1234 Chat Road","city":"San Francisco",` +
		`"state":"CA","country":"US","postal_code":"94131"}}`
	updateBody = `{"buyer":{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.com"},` +
		`"fulfillment_option_id":"standard_shipping"}`
	// testCard is the Visa test number; it passes the server's Luhn check.
	testCard = "4242424242424242"
	// maxAmount is the allowance of every delegated token, in minor units.
	maxAmount = 100000
)

// cartItems are the demo catalog's items a cart of -lines draws from, in order: every
// one is available, without counted stock, and ships (or, the e-book, comes along).
var cartItems = []string{"item_123", "item_456", "item_567", "item_124", "ebook_001"}

// createBodyOf is the flow's create body with a cart of lines distinct items, one of
// each (1 <= lines <= len(cartItems)); one line is createBody.
func createBodyOf(lines int) string {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i, id := range cartItems[:lines] {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":"` + id + `","quantity":1}`)
	}
	b.WriteString(`],` + shippedToCalifornia)
	return b.String()
}

// errFlowFailed says a unit of work stopped at a response it did not expect; the
// response is already counted as a failure.
var errFlowFailed = errors.New("flow failed")

// errExhausted and errSoldOut say a unit of work has nothing left to work on: the
// bench ran out of pre-seeded sessions, or the flash sale's item sold out. The agent
// stops, and the error's text says why the run ended early.
var (
	errExhausted = errors.New("ran out of pre-seeded sessions")
	errSoldOut   = errors.New("the flash-sale item sold out")
)

// loadConfig is one load run.
type loadConfig struct {
	name        string
	baseURL     string
	apiKey      string
	concurrency int
	// duration bounds the measured part of the run, unless units is set.
	duration time.Duration
	// units, when above zero, is the number of measured units to run instead.
	units  int
	warmup time.Duration
	// apiVersion is the API-Version header of every request ("": apiVersion).
	apiVersion string
	// createBody is the full flow's create request ("": createBody, one line).
	createBody string
	// adminKey, when set, makes the full flow go on through the admin API with this
	// key (the server's ADMIN_API_KEYS): the order read, shipped whole, then one unit of
	// its first line refunded (afterSale).
	adminKey string
	// cancel makes each flow an abandoned checkout: the session made ready for
	// payment, then canceled (abandon).
	cancel bool
}

// agent is one simulated agent platform: it sends one request at a time and records
// what it sees in its own recorder.
type agent struct {
	id int
	// http sends the agent's requests, one at a time.
	http requester
	cfg  *loadConfig
	// run makes idempotency keys unique across runs against the same server.
	run string
	seq uint64
	rec *recorder
	// recording is false during the warm-up: requests are sent but not counted.
	recording bool
}

// apiVersion is the ACP version the agent's requests ask for.
func (a *agent) apiVersion() string { return cmp.Or(a.cfg.apiVersion, apiVersion) }

// response is what one request got back. body is only valid until the agent's next
// request: copy what must outlive it.
type response struct {
	status   int
	body     []byte
	replayed bool
}

// post sends one POST with an Idempotency-Key and the ACP headers, reads the whole
// response (so the connection is reused) and records its latency under ep. A
// transport error is counted as a failure of ep and returned.
func (a *agent) post(ctx context.Context, ep endpoint, path, key, body string) (response, error) {
	return a.send(ctx, ep, http.MethodPost, path, key, body, a.cfg.apiKey)
}

// send is post for any method: a body ("" for none) and an Idempotency-Key ("" for
// none), authorized with bearer ("" for none), timed as ep.
func (a *agent) send(ctx context.Context, ep endpoint, method, path, key, body, bearer string) (response, error) {
	start := time.Now()
	resp, err := a.http.do(ctx, request{method: method, path: path, key: key, body: body, bearer: bearer, apiVersion: a.apiVersion()})
	elapsed := time.Since(start)
	if err != nil {
		if ctx.Err() == nil && a.recording {
			a.rec.fail(ep, 0, "transport: "+shortError(err))
		}
		return response{}, err
	}
	if a.recording {
		a.rec.observe(ep, elapsed)
	}
	return resp, nil
}

// get sends a GET with the ACP headers and reads the whole response. It is not timed:
// the flows measure their POSTs; a GET only explains an answer.
func (a *agent) get(ctx context.Context, path string) (response, error) {
	return a.http.do(ctx, request{method: http.MethodGet, path: path, bearer: a.cfg.apiKey, apiVersion: a.apiVersion()})
}

// shortError keeps the cause of a transport error and drops the URL, so that errors of
// different sessions are counted together.
func shortError(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		err = ue.Unwrap()
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// sessionFields are the parts of a session response the flow checks.
type sessionFields struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Code   string `json:"code"`
}

// expect checks resp: the status must be want and, when wantState is set, the body's
// status field must be it. Anything else is counted as a failure of ep (with the ACP
// error code of a non-2xx) and errFlowFailed is returned; the decoded body is returned
// on success.
func (a *agent) expect(ep endpoint, resp response, want int, wantState string) (sessionFields, error) {
	var f sessionFields
	decodeErr := json.Unmarshal(resp.body, &f)
	if resp.status != want {
		code := f.Code
		if decodeErr != nil || code == "" {
			code = "(no ACP error code)"
		}
		a.failIfRecording(ep, resp.status, code)
		return f, errFlowFailed
	}
	switch {
	case decodeErr != nil:
		a.failIfRecording(ep, resp.status, "body is not JSON")
		return f, errFlowFailed
	case f.ID == "":
		a.failIfRecording(ep, resp.status, "no id in the body")
		return f, errFlowFailed
	case wantState != "" && f.Status != wantState:
		a.failIfRecording(ep, resp.status, "status "+f.Status+", want "+wantState)
		return f, errFlowFailed
	}
	return f, nil
}

func (a *agent) failIfRecording(ep endpoint, status int, code string) {
	if a.recording {
		a.rec.fail(ep, status, code)
	}
}

// key returns a fresh Idempotency-Key for step of the agent's current flow.
func (a *agent) key(step string) string {
	return a.run + "-" + strconv.Itoa(a.id) + "-" + strconv.FormatUint(a.seq, 10) + "-" + step
}

// delegateBody is a Delegate Payment request for a single-use token bound to session.
func delegateBody(session string, expYear int) string {
	return `{"payment_method":{"type":"card","card_number_type":"fpan","number":"` + testCard + `",` +
		`"exp_month":"12","exp_year":"` + strconv.Itoa(expYear) + `","cvc":"123",` +
		`"display_card_funding_type":"credit","metadata":{}},` +
		`"allowance":{"reason":"one_time","max_amount":` + strconv.Itoa(maxAmount) + `,"currency":"usd",` +
		`"checkout_session_id":"` + session + `","merchant_id":"acpload","expires_at":"2099-01-01T00:00:00Z"},` +
		`"risk_signals":[{"type":"card_testing","score":5,"action":"authorized"}],"metadata":{"source":"acpload"}}`
}

// expiryYear is the expiry year of the delegated test card: five years ahead.
func expiryYear() int { return time.Now().Year() + 5 }

// completeBody pays with token.
func completeBody(token string) string {
	return `{"payment_data":{"token":"` + token + `","provider":"stripe"}}`
}

// flow runs one full ACP checkout: create, update, delegate_payment, complete, then one
// replay of the complete with the same key and body, which must come back marked
// Idempotent-Replayed with the very same body.
func (a *agent) flow(ctx context.Context) error {
	a.seq++
	if a.cfg.cancel {
		return a.abandon(ctx)
	}
	path, token, err := a.readyToPay(ctx, cmp.Or(a.cfg.createBody, createBody))
	if err != nil {
		return err
	}
	completeKey, body := a.key("complete"), completeBody(token)
	resp, err := a.post(ctx, epComplete, path+"/complete", completeKey, body)
	if err != nil {
		return err
	}
	if _, err := a.expect(epComplete, resp, http.StatusOK, "completed"); err != nil {
		return err
	}
	first := bytes.Clone(resp.body)

	if resp, err = a.post(ctx, epReplay, path+"/complete", completeKey, body); err != nil {
		return err
	}
	if err := a.checkReplay(resp, first); err != nil || a.cfg.adminKey == "" {
		return err
	}
	return a.afterSale(ctx, first)
}

// abandon runs an abandoned checkout: create, update (ready for payment), then cancel,
// which must answer with the session canceled.
func (a *agent) abandon(ctx context.Context) error {
	id, err := a.readySession(ctx, cmp.Or(a.cfg.createBody, createBody))
	if err != nil {
		return err
	}
	resp, err := a.post(ctx, epCancel, "/checkout_sessions/"+id+"/cancel", a.key("cancel"), "{}")
	if err != nil {
		return err
	}
	_, err = a.expect(epCancel, resp, http.StatusOK, "canceled")
	return err
}

// completion is what afterSale needs of a completed session: its order and lines.
type completion struct {
	Order struct {
		ID string `json:"id"`
	} `json:"order"`
	LineItems []struct {
		ID   string `json:"id"`
		Item struct {
			Quantity int `json:"quantity"`
		} `json:"item"`
	} `json:"line_items"`
}

// afterSale is what a merchant does with the order of the completion body completed,
// through the admin API: reads it, ships all its lines, then refunds one unit of the
// first line.
func (a *agent) afterSale(ctx context.Context, completed []byte) error {
	var c completion
	if err := json.Unmarshal(completed, &c); err != nil || c.Order.ID == "" || len(c.LineItems) == 0 {
		a.failIfRecording(epComplete, http.StatusOK, "no order or no line items in the body")
		return errFlowFailed
	}
	order := "/admin/orders/" + c.Order.ID
	resp, err := a.send(ctx, epGetOrder, http.MethodGet, order, "", "", a.cfg.adminKey)
	if err != nil {
		return err
	}
	if _, err := a.expect(epGetOrder, resp, http.StatusOK, ""); err != nil {
		return err
	}
	var lines strings.Builder
	for i, l := range c.LineItems {
		if i > 0 {
			lines.WriteByte(',')
		}
		lines.WriteString(`{"id":"` + l.ID + `","quantity":` + strconv.Itoa(l.Item.Quantity) + `}`)
	}
	fulfilment := `{"type":"shipping","carrier":"USPS","tracking_number":"9400111899223456789012","line_items":[` + lines.String() + `]}`
	if resp, err = a.send(ctx, epFulfil, http.MethodPost, order+"/fulfillments", a.key("fulfil"), fulfilment, a.cfg.adminKey); err != nil {
		return err
	}
	if _, err := a.expect(epFulfil, resp, http.StatusCreated, ""); err != nil {
		return err
	}
	refund := `{"type":"original_payment","reason":"defective","line_items":[{"id":"` + c.LineItems[0].ID + `","quantity":1}]}`
	if resp, err = a.send(ctx, epRefund, http.MethodPost, order+"/refunds", a.key("refund"), refund, a.cfg.adminKey); err != nil {
		return err
	}
	_, err = a.expect(epRefund, resp, http.StatusCreated, "")
	return err
}

// readySession creates a session from body and makes it ready for payment (buyer,
// standard shipping), and returns its id.
func (a *agent) readySession(ctx context.Context, body string) (string, error) {
	return a.readySessionFrom(ctx, body, updateBody)
}

// readySessionFrom creates a session from create, updates it with update, which must
// make it ready for payment, and returns its id.
func (a *agent) readySessionFrom(ctx context.Context, create, update string) (string, error) {
	resp, err := a.post(ctx, epCreate, "/checkout_sessions", a.key("create"), create)
	if err != nil {
		return "", err
	}
	sess, err := a.expect(epCreate, resp, http.StatusCreated, "")
	if err != nil {
		return "", err
	}
	if resp, err = a.post(ctx, epUpdate, "/checkout_sessions/"+sess.ID, a.key("update"), update); err != nil {
		return "", err
	}
	if _, err := a.expect(epUpdate, resp, http.StatusOK, "ready_for_payment"); err != nil {
		return "", err
	}
	return sess.ID, nil
}

// readyToPay is readySession, then a card delegated for the session: it returns the
// session's path and the vault token to complete it with.
func (a *agent) readyToPay(ctx context.Context, body string) (path, token string, err error) {
	id, err := a.readySession(ctx, body)
	if err != nil {
		return "", "", err
	}
	token, err = a.delegate(ctx, id)
	return "/checkout_sessions/" + id, token, err
}

// delegate delegates the test card for the session and returns the vault token.
func (a *agent) delegate(ctx context.Context, sessionID string) (string, error) {
	resp, err := a.post(ctx, epDelegate, "/agentic_commerce/delegate_payment", a.key("delegate"), delegateBody(sessionID, expiryYear()))
	if err != nil {
		return "", err
	}
	token, err := a.expect(epDelegate, resp, http.StatusCreated, "")
	return token.ID, err
}

// checkReplay checks that resp is the stored answer of a completion whose first
// response body was first.
func (a *agent) checkReplay(resp response, first []byte) error {
	switch {
	case resp.status != http.StatusOK:
		_, err := a.expect(epReplay, resp, http.StatusOK, "")
		return err
	case !resp.replayed:
		a.failIfRecording(epReplay, resp.status, "no Idempotent-Replayed: true")
		return errFlowFailed
	case !bytes.Equal(resp.body, first):
		a.failIfRecording(epReplay, resp.status, "body differs from the first response")
		return errFlowFailed
	}
	return nil
}

// loadResult is what one load run recorded, before it is summarised: runs of the same
// kind (the bench's rounds) are added up first.
type loadResult struct {
	rec     *recorder
	elapsed time.Duration
	stopped string
}

// add returns the observations of both runs and their summed measured time.
func (r loadResult) add(o loadResult) loadResult {
	if r.rec == nil {
		return o
	}
	return loadResult{rec: merge([]*recorder{r.rec, o.rec}), elapsed: r.elapsed + o.elapsed, stopped: cmp.Or(r.stopped, o.stopped)}
}

// report summarises the result.
func (r loadResult) report(cfg loadConfig) Report {
	rec := r.rec
	if rec == nil {
		rec = newRecorder(0)
	}
	rep := buildReport(cfg.name, cfg.baseURL, cfg.concurrency, cfg.warmup, r.elapsed, rec)
	rep.Stopped = r.stopped
	return rep
}

// runLoad runs the load and summarises it (see runAgents).
func runLoad(ctx context.Context, cfg loadConfig, clients *agentClients, unit func(context.Context, *agent) error) (Report, error) {
	res, err := runAgents(ctx, cfg, clients, unit)
	return res.report(cfg), err
}

// runAgents runs cfg.concurrency agents, each repeating unit until the measured duration
// is over (or cfg.units units were measured), and merges what they recorded. Units
// started during the warm-up are not counted. A unit in progress at the deadline is
// finished and counted; the elapsed time runs until the last one ends. If ctx ends
// early the partial result is returned with ctx's error.
func runAgents(ctx context.Context, cfg loadConfig, clients *agentClients, unit func(context.Context, *agent) error) (loadResult, error) {
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	per := 1024
	if cfg.units > 0 {
		per = cfg.units/cfg.concurrency + 1
	} else if cfg.duration > 0 {
		// Room for 500 requests/s per endpoint and agent; the slices grow if needed.
		per = int(cfg.duration.Seconds()*500) + 1
	}
	per = min(per, 1<<20)

	start := time.Now()
	measureFrom := start.Add(cfg.warmup)
	end := measureFrom.Add(cfg.duration)
	var claimed atomic.Int64
	var stopped atomic.Pointer[string]
	agents := make([]*agent, cfg.concurrency)
	finished := make([]time.Time, cfg.concurrency)
	var wg sync.WaitGroup
	for i := range agents {
		a := &agent{id: i, http: clients.forAgent(cfg.baseURL), cfg: &cfg, run: run, rec: newRecorder(per)}
		agents[i] = a
		wg.Go(func() {
			defer func() { finished[a.id] = time.Now() }()
			defer a.http.close()
			for ctx.Err() == nil {
				now := time.Now()
				a.recording = !now.Before(measureFrom)
				if a.recording {
					if cfg.units > 0 {
						if claimed.Add(1) > int64(cfg.units) {
							return
						}
					} else if !now.Before(end) {
						return
					}
				}
				err := unit(ctx, a)
				switch {
				case err == nil:
					if a.recording {
						a.rec.flows++
					}
				case errors.Is(err, errExhausted) || errors.Is(err, errSoldOut):
					reason := err.Error()
					stopped.CompareAndSwap(nil, &reason)
					return
				case ctx.Err() != nil:
					return
				default:
					if a.recording {
						a.rec.failedFlows++
					}
					// A server that refuses everything must not turn the agents into a
					// busy loop.
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()

	last := measureFrom
	for _, t := range finished {
		if t.After(last) {
			last = t
		}
	}
	recs := make([]*recorder, len(agents))
	for i, a := range agents {
		recs[i] = a.rec
	}
	res := loadResult{rec: merge(recs), elapsed: last.Sub(measureFrom)}
	if s := stopped.Load(); s != nil {
		res.stopped = *s
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("%s interrupted: %w", cfg.name, err)
	}
	return res, nil
}
