package httpapi

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// adminRoutes mounts the merchant's order API, behind ADMIN_API_KEYS (never the agents'
// keys: agents must not move orders).
func (s *Server) adminRoutes(r *mux.Router) {
	// Refunds and status changes are retried by merchants' scripts like any POST: the
	// same Idempotency-Key machinery as the ACP routes, scoped to the admin identity.
	r.Use(recordRoute, mux.MiddlewareFunc(s.withIdempotency()))
	r.NotFoundHandler = http.HandlerFunc(s.notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(s.methodNotAllowed(r))
	r.HandleFunc("/orders", s.listOrders).Methods(http.MethodGet)
	r.HandleFunc("/orders/{id}", s.getOrder).Methods(http.MethodGet)
	r.HandleFunc("/orders/{id}/status", s.setOrderStatus).Methods(http.MethodPost)
	r.HandleFunc("/orders/{id}/refunds", s.refundOrder).Methods(http.MethodPost)
	r.HandleFunc("/orders/{id}/fulfillments", s.addFulfillment).Methods(http.MethodPost)
	r.HandleFunc("/orders/{id}/fulfillments/{fid}/events", s.addFulfillmentEvent).Methods(http.MethodPost)
	r.HandleFunc("/orders/{id}/cancellations", s.cancelLines).Methods(http.MethodPost)
	if s.consents != nil {
		r.HandleFunc("/consents", s.listConsents).Methods(http.MethodGet)
	}
	if s.discounts != nil {
		s.discountRoutes(r)
	}
}

// withAdminAuth asks for one of the admin keys; every admin key is the one caller
// "admin", which scopes the admin API's idempotency records.
func (s *Server) withAdminAuth() Middleware {
	return withBearerKey(s.adminKeys, "acp-admin", "admin", "admin")
}

// adminOrder is the merchant API's view of an order.
type adminOrder struct {
	ID                string        `json:"id"`
	CheckoutSessionID string        `json:"checkout_session_id"`
	Status            string        `json:"status"`
	Amount            int64         `json:"amount"`
	Currency          string        `json:"currency"`
	Refunded          int64         `json:"refunded"`
	Refunds           []adminRefund `json:"refunds"`
	PermalinkURL      string        `json:"permalink_url"`
	CreatedAt         time.Time     `json:"created_at"`
	UpdatedAt         time.Time     `json:"updated_at"`
	// The order's units (admin_fulfillments.go): shown when one order is read or
	// changed, not in listings.
	LineItems     []adminLine         `json:"line_items,omitempty"`
	Fulfillments  []adminFulfillment  `json:"fulfillments,omitempty"`
	Cancellations []adminCancellation `json:"cancellations,omitempty"`
	// OrderNotes are the buyer's notes for the order (absent: none).
	OrderNotes string `json:"order_notes,omitempty"`
}

type adminRefund struct {
	ID          string         `json:"id"`
	Type        string         `json:"type"`
	Amount      int64          `json:"amount"`
	LineItems   []adminLineQty `json:"line_items,omitempty"`
	Description string         `json:"description,omitempty"`
	Reason      string         `json:"reason,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
}

func toAdminOrder(o *checkout.Order) adminOrder {
	out := adminOrder{
		ID: o.ID, CheckoutSessionID: o.CheckoutSessionID, Status: string(o.Status), Amount: o.Amount,
		Currency: o.Currency, Refunded: o.Refunded(), Refunds: make([]adminRefund, len(o.Refunds)),
		PermalinkURL: o.PermalinkURL, OrderNotes: o.Notes, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
	for i, r := range o.Refunds {
		out.Refunds[i] = adminRefund{ID: r.ID, Type: string(r.Type), Amount: r.Amount, LineItems: adminLineQtys(r.Lines),
			Description: r.Description, Reason: r.Reason, CreatedAt: r.CreatedAt}
	}
	addAdminDetails(&out, o)
	return out
}

const maxOrdersPage = 200

// listOrders pages through orders newest first: ?limit=N&status=S&cursor=C, where C is
// the next_cursor of the previous page.
func (s *Server) listOrders(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxOrdersPage {
			s.writeError(w, r, acp.InvalidRequest("invalid", fmt.Sprintf("limit must be 1 to %d.", maxOrdersPage), "$.limit"))
			return
		}
		limit = n
	}
	status := q.Get("status")
	if status != "" && !checkout.ValidOrderStatus(checkout.OrderStatus(status)) {
		s.writeError(w, r, acp.InvalidRequest("invalid", "Unknown order status.", "$.status"))
		return
	}
	var before *time.Time
	var beforeID string
	if c := q.Get("cursor"); c != "" {
		t, id, err := decodeCursor(c)
		if err != nil {
			s.writeError(w, r, acp.InvalidRequest("invalid", "cursor is not one this server gave out.", "$.cursor"))
			return
		}
		before, beforeID = &t, id
	}
	orders, err := s.orders.List(r.Context(), status, before, beforeID, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page := struct {
		Orders     []adminOrder `json:"orders"`
		NextCursor string       `json:"next_cursor,omitempty"`
	}{Orders: make([]adminOrder, len(orders))}
	for i, o := range orders {
		page.Orders[i] = toAdminOrder(o)
	}
	if len(orders) == limit {
		last := orders[len(orders)-1]
		page.NextCursor = encodeCursor(last.CreatedAt, last.ID)
	}
	writeJSON(w, http.StatusOK, page)
}

func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(t.UTC().Format(time.RFC3339Nano) + "|" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", err
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	if !ok {
		return time.Time{}, "", fmt.Errorf("bad cursor")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	return t, id, err
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	o, err := s.orders.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAdminOrder(o))
}

type statusRequest struct {
	Status *string `json:"status"`
}

// refundRequest is a refund: of an amount, of named units (priced tax-inclusive from
// what they cost when amount is absent), or of an amount for named units.
type refundRequest struct {
	Type        *string          `json:"type"`
	Amount      *int64           `json:"amount"`
	LineItems   []lineQtyRequest `json:"line_items"`
	Description *string          `json:"description"`
	Reason      *string          `json:"reason"`
}

func (s *Server) setOrderStatus(w http.ResponseWriter, r *http.Request) {
	var req statusRequest
	if err := s.decodeAdmin(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Status == nil {
		s.writeError(w, r, acp.InvalidRequest("missing", "status is required.", "$.status"))
		return
	}
	expectAdminOrder(r, http.StatusOK)
	o, err := s.orders.SetStatus(r.Context(), mux.Vars(r)["id"], checkout.OrderStatus(*req.Status))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recordedOrEncode(w, r, http.StatusOK, toAdminOrder(o))
}

func (s *Server) refundOrder(w http.ResponseWriter, r *http.Request) {
	var req refundRequest
	if err := s.decodeAdmin(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := acp.RequireFields(acp.Required{Path: "$.type", Present: req.Type != nil},
		acp.Required{Path: "$.amount", Present: req.Amount != nil || len(req.LineItems) > 0}); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Amount != nil && *req.Amount <= 0 {
		s.writeError(w, r, acp.InvalidRequest("invalid", "Refund amount must be a positive integer in minor units.", "$.amount"))
		return
	}
	rr := checkout.RefundRequest{Type: checkout.RefundType(*req.Type)}
	if req.Amount != nil {
		rr.Amount = *req.Amount
	}
	var err error
	if rr.Lines, err = lineQtys(req.LineItems); err == nil {
		err = texts(
			textField{req.Description, "$.description", &rr.Description, false},
			textField{req.Reason, "$.reason", &rr.Reason, false},
		)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	expectAdminOrder(r, http.StatusCreated)
	o, err := s.orders.RefundLines(r.Context(), mux.Vars(r)["id"], rr)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recordedOrEncode(w, r, http.StatusCreated, toAdminOrder(o))
}

// expectAdminOrder tells the order store how this request's result is rendered, so an
// Idempotency-Key's response is recorded in the transaction of the change itself.
func expectAdminOrder(r *http.Request, status int) {
	setEncoder(r.Context(), func(o *checkout.Order) (int, []byte, error) {
		body, err := encodeJSON(toAdminOrder(o))
		return status, body, err
	})
}

func (s *Server) decodeAdmin(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := s.readBody(w, r, bodyRequired)
	if err != nil {
		return err
	}
	return acp.DecodeStrict(body, dst)
}

// orderPageTemplate is the buyer's order status page. It shows the order, its items and
// of the card only brand and last 4; html/template escapes every value.
var orderPageTemplate = template.Must(template.New("order").Funcs(template.FuncMap{
	"money": formatMoney,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Order {{.Order.ID}}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1f2328}
h1{font-size:1.4rem}.status{display:inline-block;padding:.2rem .6rem;border-radius:1rem;background:#eef;font-weight:600}
table{width:100%;border-collapse:collapse;margin:1rem 0}td,th{padding:.4rem;border-bottom:1px solid #ddd;text-align:left}
td.n,th.n{text-align:right}.muted{color:#656d76;font-size:.9rem}
</style></head><body>
<h1>Order {{.Order.ID}}</h1>
<p>Status: <span class="status">{{.Status}}</span></p>
<table><thead><tr><th>Item</th><th class="n">Qty</th><th class="n">Price</th></tr></thead><tbody>
{{range .Page.Lines}}<tr><td>{{.Title}}</td><td class="n">{{.Quantity}}</td><td class="n">{{money .UnitAmount $.Order.Currency}}</td></tr>
{{end}}</tbody></table>
<p>Total paid: <strong>{{money .Order.Amount .Order.Currency}}</strong>{{if .Page.CardLast4}} with {{.Page.CardBrand}} ending in {{.Page.CardLast4}}{{end}}</p>
{{if .Order.Refunds}}<p>Refunded: {{money .Refunded .Order.Currency}}</p>{{end}}
<p class="muted">Placed {{.Order.CreatedAt.UTC.Format "2 Jan 2006 15:04 MST"}} · last updated {{.Order.UpdatedAt.UTC.Format "2 Jan 2006 15:04 MST"}}</p>
</body></html>
`))

var statusLabels = map[checkout.OrderStatus]string{
	checkout.OrderCreated: "Received", checkout.OrderManualReview: "Under review", checkout.OrderConfirmed: "Confirmed",
	checkout.OrderProcessing: "Processing",
	checkout.OrderShipped:    "Shipped", checkout.OrderFulfilled: "Delivered", checkout.OrderCanceled: "Canceled",
}

// orderPage serves the order's permalink_url.
func (s *Server) orderPage(w http.ResponseWriter, r *http.Request) {
	page, err := s.orders.Page(r.Context(), mux.Vars(r)["id"])
	if de, ok := checkout.AsError(err); ok && de.Kind == checkout.KindNotFound {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = fmt.Fprint(w, "<!doctype html><title>Order not found</title><p>Order not found.</p>")
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	data := struct {
		Page     *checkout.OrderPage
		Order    *checkout.Order
		Status   string
		Refunded int64
	}{page, page.Order, statusLabels[page.Order.Status], page.Order.Refunded()}
	if err := orderPageTemplate.Execute(w, data); err != nil {
		s.logger.Warn("render order page", "error", err)
	}
}

// formatMoney renders minor units for display, assuming two decimals (most ISO 4217
// currencies); amounts stay integers everywhere else.
func formatMoney(amount int64, currency string) string {
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, amount/100, amount%100, strings.ToUpper(currency))
}
