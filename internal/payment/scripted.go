package payment

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrLostAnswer, from a ScriptedGateway's Decide, charges (or refunds) and then loses
// the answer: the call returns an error wrapping ErrUnavailable, as a timeout after the
// PSP acted.
var ErrLostAnswer = errors.New("the PSP acted, then the connection broke")

// ScriptedGateway is a PSP a test scripts, for the outcomes MockGateway cannot give: an
// answer lost after the charge, an outage, a slow PSP. Like a real PSP it keeps the
// first successful outcome of each idempotency key and answers the key again with it,
// never charging (or refunding) twice; Charged and Refunded count those outcomes.
type ScriptedGateway struct {
	// Decide answers the n-th charge call (from 1): nil charges (or replays the key's
	// charge), ErrLostAnswer charges and reports ErrUnavailable, any other error refuses
	// without charging. nil Decide: every call charges.
	Decide func(n int, c Charge) error
	// DecideRefund is Decide for refunds.
	DecideRefund func(n int, r Refund) error
	// InCharge runs inside every charge call, before it answers (a slow PSP, a probe of
	// what the caller holds meanwhile).
	InCharge func(c Charge)

	mu          sync.Mutex
	calls       int
	refundCalls int
	charged     map[string]Receipt
	refunded    map[string]RefundReceipt
}

// Name implements Gateway.
func (g *ScriptedGateway) Name() string { return "scripted" }

// Charge implements Gateway.
func (g *ScriptedGateway) Charge(_ context.Context, c Charge) (Receipt, error) {
	if g.InCharge != nil {
		g.InCharge(c)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	var verdict error
	if g.Decide != nil {
		verdict = g.Decide(g.calls, c)
	}
	if verdict != nil && !errors.Is(verdict, ErrLostAnswer) {
		return Receipt{}, verdict
	}
	if g.charged == nil {
		g.charged = map[string]Receipt{}
	}
	r, ok := g.charged[c.IdempotencyKey]
	if !ok {
		r = Receipt{Reference: mockReference("ch_", c.IdempotencyKey)}
		g.charged[c.IdempotencyKey] = r
	}
	if verdict != nil {
		return Receipt{}, fmt.Errorf("%w: %w", ErrUnavailable, verdict)
	}
	return r, nil
}

// Refund implements Gateway.
func (g *ScriptedGateway) Refund(_ context.Context, r Refund) (RefundReceipt, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refundCalls++
	var verdict error
	if g.DecideRefund != nil {
		verdict = g.DecideRefund(g.refundCalls, r)
	}
	if verdict != nil && !errors.Is(verdict, ErrLostAnswer) {
		return RefundReceipt{}, verdict
	}
	if g.refunded == nil {
		g.refunded = map[string]RefundReceipt{}
	}
	rr, ok := g.refunded[r.IdempotencyKey]
	if !ok {
		rr = RefundReceipt{Reference: mockReference("re_", r.IdempotencyKey)}
		g.refunded[r.IdempotencyKey] = rr
	}
	if verdict != nil {
		return RefundReceipt{}, fmt.Errorf("%w: %w", ErrUnavailable, verdict)
	}
	return rr, nil
}

// Charged is how many payments the gateway took: one per idempotency key.
func (g *ScriptedGateway) Charged() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.charged)
}

// Refunded is how many refunds the gateway made: one per idempotency key.
func (g *ScriptedGateway) Refunded() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.refunded)
}
