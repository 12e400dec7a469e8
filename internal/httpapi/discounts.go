package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/catalog"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// discountRoutes mounts the merchant's discount API: GET and POST /admin/discounts,
// GET /admin/discounts/{id} and POST /admin/discounts/{id}/disable. A discount is shown
// and written as catalog.DiscountDoc, the shape of a discounts import file.
func (s *Server) discountRoutes(r *mux.Router) {
	r.HandleFunc("/discounts", s.listDiscounts).Methods(http.MethodGet)
	r.HandleFunc("/discounts", s.createDiscount).Methods(http.MethodPost)
	r.HandleFunc("/discounts/{id}", s.getDiscount).Methods(http.MethodGet)
	r.HandleFunc("/discounts/{id}/disable", s.disableDiscount).Methods(http.MethodPost)
}

func (s *Server) listDiscounts(w http.ResponseWriter, r *http.Request) {
	list, err := s.discounts.List(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page := struct {
		Discounts []catalog.DiscountDoc `json:"discounts"`
	}{make([]catalog.DiscountDoc, len(list))}
	for i, d := range list {
		page.Discounts[i] = catalog.NewDiscountDoc(d)
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) getDiscount(w http.ResponseWriter, r *http.Request) {
	d, err := s.discounts.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, catalog.NewDiscountDoc(d))
}

func (s *Server) createDiscount(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r, bodyRequired)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := catalog.DecodeDiscount(body)
	if err != nil {
		s.writeError(w, r, acp.InvalidRequest("invalid", "Not a discount: "+err.Error(), ""))
		return
	}
	expectAdminDiscount(r, http.StatusCreated)
	created, err := s.discounts.Create(r.Context(), d)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recordedOrEncode(w, r, http.StatusCreated, catalog.NewDiscountDoc(created))
}

func (s *Server) disableDiscount(w http.ResponseWriter, r *http.Request) {
	expectAdminDiscount(r, http.StatusOK)
	d, err := s.discounts.Disable(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recordedOrEncode(w, r, http.StatusOK, catalog.NewDiscountDoc(d))
}

// expectAdminDiscount tells the discount store how this request's result is rendered,
// so an Idempotency-Key's response is recorded in the transaction of the change.
func expectAdminDiscount(r *http.Request, status int) {
	setEncoder(r.Context(), func(d checkout.Discount) (int, []byte, error) {
		body, err := encodeJSON(catalog.NewDiscountDoc(d))
		return status, body, err
	})
}
