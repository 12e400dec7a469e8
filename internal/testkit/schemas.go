package testkit

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
)

// DelegatePath is the route of delegate_payment, whose Error has a schema of its own.
const DelegatePath = "/agentic_commerce/delegate_payment"

// SchemaSet is the JSON Schemas of one ACP API version: the checkout bundle and the
// delegate_payment bundle of internal/acpspec.
type SchemaSet struct {
	tb       testing.TB
	Version  string
	Checkout *acpspec.Validator
	Delegate *acpspec.Validator
}

// Schemas loads the schemas of version (e.g. "2025-09-29"), failing the test when they
// cannot be loaded; the validations fail tb.
func Schemas(tb testing.TB, version string) *SchemaSet {
	tb.Helper()
	return &SchemaSet{
		tb: tb, Version: version,
		Checkout: acpspec.MustLoad(tb, version, "schema.agentic_checkout.json"),
		Delegate: acpspec.MustLoad(tb, version, "schema.delegate_payment.json"),
	}
}

// Session fails the test unless body is a valid CheckoutSession.
func (s *SchemaSet) Session(body []byte) {
	s.tb.Helper()
	s.Checkout.MustValidate(s.tb, "CheckoutSession", body)
}

// SessionWithOrder fails the test unless body is a valid complete response: a
// CheckoutSession that carries its order. 2025-09-29's CheckoutSessionWithOrder admits
// no body at all (its CheckoutSession forbids the order its allOf requires, checklist
// I-03), so there the session without order is validated against CheckoutSession and
// the order against Order; later versions put order on the session and are validated
// whole against CheckoutSessionWithOrder, which requires it.
func (s *SchemaSet) SessionWithOrder(body []byte) {
	s.tb.Helper()
	if s.Version != "2025-09-29" {
		s.Checkout.MustValidate(s.tb, "CheckoutSessionWithOrder", body)
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		s.tb.Errorf("a complete response is not a JSON object: %v\nbody: %s", err, body)
		return
	}
	order, ok := m["order"]
	if !ok {
		s.tb.Errorf("a complete response has no order\nbody: %s", body)
		return
	}
	delete(m, "order")
	session, err := json.Marshal(m)
	if err != nil {
		s.tb.Errorf("re-encode the session: %v", err)
		return
	}
	s.Checkout.MustValidate(s.tb, "CheckoutSession", session)
	s.Checkout.MustValidate(s.tb, "Order", order)
}

// Error fails the test unless body is a valid Error of route: delegate_payment's for
// paths below DelegatePath, checkout's for the others.
func (s *SchemaSet) Error(body []byte, route string) {
	s.tb.Helper()
	v := s.Checkout
	if strings.HasPrefix(route, DelegatePath) {
		v = s.Delegate
	}
	v.MustValidate(s.tb, "Error", body)
}
