package httpapi

import (
	"net/http"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// adminConsent is one stored marketing decision, as the merchant API shows it: the
// merchant's proof of consent (or of its withdrawal), with the checkout that gave it.
type adminConsent struct {
	Channel           string    `json:"channel"`
	Contact           string    `json:"contact"`
	OptedIn           bool      `json:"opted_in"`
	CheckoutSessionID string    `json:"checkout_session_id"`
	OrderID           string    `json:"order_id"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// listConsents answers GET /admin/consents?email=… or ?phone=…: the buyer's stored
// decisions on every channel, as {"data": [...]} (empty when none is stored).
func (s *Server) listConsents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	email, phone := q.Get("email"), q.Get("phone")
	if (email == "") == (phone == "") {
		s.writeError(w, r, acp.InvalidRequest("missing", "Name one contact: email or phone.", "$.email"))
		return
	}
	contact := email + phone
	if len(contact) > checkout.MaxEmailLength {
		s.writeError(w, r, acp.InvalidRequest("invalid", "The contact is too long to be stored.", "$.email"))
		return
	}
	found, err := s.consents.ForContact(r.Context(), contact)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]adminConsent, 0, len(found))
	for _, c := range found {
		// An email query reads the email channel only, a phone query the others: the
		// same string is never both.
		if (c.Channel == checkout.ChannelEmail) != (email != "") {
			continue
		}
		out = append(out, adminConsent{Channel: c.Channel, Contact: c.Contact, OptedIn: c.OptedIn,
			CheckoutSessionID: c.CheckoutSessionID, OrderID: c.OrderID, UpdatedAt: c.UpdatedAt.UTC()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}
