package httpapi

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// CartAPI is the cart API of an ACP version that has one (CART-RFC; 2026-04-17 on). A
// version's entry of the version table implements it or not: a version without carts
// answers their routes with a 400 naming the versions that have them.
type CartAPI interface {
	// DecodeCartCreate and DecodeCartUpdate turn a CartCreateRequest or a
	// CartUpdateRequest (a full replacement) into domain values.
	DecodeCartCreate(body []byte) (checkout.CartChanges, error)
	DecodeCartUpdate(body []byte) (checkout.CartChanges, error)
	// EncodeCart renders a cart as a response body.
	EncodeCart(v checkout.CartView) any
}

// cartVersions lists the API-Version values whose wire format has carts, newest first.
var cartVersions = func() []string {
	var out []string
	for _, v := range supportedVersions {
		if _, ok := versions[v].(CartAPI); ok {
			out = append(out, v)
		}
	}
	return out
}()

// cartRoutes registers the cart endpoints on the ACP router, behind its middleware
// (authentication, API-Version, signatures, idempotency).
func (s *Server) cartRoutes(r *mux.Router) {
	r.HandleFunc("/carts", s.createCart).Methods(http.MethodPost)
	r.HandleFunc("/carts/{id}", s.getCart).Methods(http.MethodGet)
	r.HandleFunc("/carts/{id}", s.replaceCart).Methods(http.MethodPut)
	r.HandleFunc("/carts/{id}/cancel", s.cancelCart).Methods(http.MethodPost)
}

// cartAPI is the request's cart wire format; false (the refusal written) when its
// version has no carts. The refusal is a 400 rather than a 404: the cart exists or not
// independently of the version asked, and the agent can retry with a version named in
// API-Supported-Versions.
func cartAPI(w http.ResponseWriter, r *http.Request) (CartAPI, bool) {
	if api, ok := versionOf(r).(CartAPI); ok {
		return api, true
	}
	w.Header().Set("API-Supported-Versions", strings.Join(cartVersions, ", "))
	// The versions that have carts go with the refusal: in the Error where the version's
	// has supported_versions, otherwise appended to its message.
	e := acp.InvalidRequest("unsupported_api_version", "API-Version "+infoOf(r).version+" has no carts.", "")
	e.SupportedVersions = slices.Clone(cartVersions)
	refuse(w, r, e)
	return nil, false
}

func (s *Server) createCart(w http.ResponseWriter, r *http.Request) {
	api, ok := cartAPI(w, r)
	if !ok {
		return
	}
	ch, err := decodeBody(s, w, r, bodyRequired, api.DecodeCartCreate)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	expectCart(r, api, http.StatusCreated)
	v, err := s.carts.CreateCart(r.Context(), infoOf(r).caller, ch)
	s.respondCart(w, r, api, http.StatusCreated, v, err)
}

func (s *Server) getCart(w http.ResponseWriter, r *http.Request) {
	api, ok := cartAPI(w, r)
	if !ok {
		return
	}
	v, err := s.carts.GetCart(r.Context(), infoOf(r).caller, mux.Vars(r)["id"])
	s.respondCart(w, r, api, http.StatusOK, v, err)
}

func (s *Server) replaceCart(w http.ResponseWriter, r *http.Request) {
	api, ok := cartAPI(w, r)
	if !ok {
		return
	}
	ch, err := decodeBody(s, w, r, bodyRequired, api.DecodeCartUpdate)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	expectCart(r, api, http.StatusOK)
	v, err := s.carts.ReplaceCart(r.Context(), infoOf(r).caller, mux.Vars(r)["id"], ch)
	s.respondCart(w, r, api, http.StatusOK, v, err)
}

// cancelCart takes an empty body or {} (CART-RFC §4.5); the cart is deleted and its
// final state returned.
func (s *Server) cancelCart(w http.ResponseWriter, r *http.Request) {
	api, ok := cartAPI(w, r)
	if !ok {
		return
	}
	body, err := s.readBody(w, r, bodyOptional)
	if err == nil && len(strings.TrimSpace(string(body))) > 0 {
		err = acp.DecodeStrict(body, &struct{}{})
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	expectCart(r, api, http.StatusOK)
	v, err := s.carts.CancelCart(r.Context(), infoOf(r).caller, mux.Vars(r)["id"])
	s.respondCart(w, r, api, http.StatusOK, v, err)
}

// expectCart tells the storage layer how this request's cart is rendered, for recording
// it with an Idempotency-Key in the transaction that writes the cart.
func expectCart(r *http.Request, api CartAPI, status int) {
	setEncoder(r.Context(), func(v checkout.CartView) (int, []byte, error) {
		body, err := encodeJSON(api.EncodeCart(v))
		return status, body, err
	})
}

func (s *Server) respondCart(w http.ResponseWriter, r *http.Request, api CartAPI, status int, v checkout.CartView, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recordedOrEncode(w, r, status, api.EncodeCart(v))
}
