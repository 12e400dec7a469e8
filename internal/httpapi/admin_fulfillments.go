package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acp"
	"github.com/agentic-commerce/agentic-commerce-server/internal/checkout"
)

// The admin API's fulfilment, cancellation and line-level refund requests (ORD-RFC).
// Shapes follow the 2026-04-17 Order's own names (line_items, tracking_url, ...), so a
// merchant writes what agents will read.

// maxAdminText bounds the free-text fields (descriptions, reasons, carrier, tracking
// number, license key, location): they are sent to agents in every order event.
const maxAdminText = 1000

// maxAdminURL bounds the URL fields.
const maxAdminURL = 2048

type lineQtyRequest struct {
	ID       *string `json:"id"`
	Quantity *int    `json:"quantity"`
}

type fulfillmentRequest struct {
	Type              *string           `json:"type"`
	Status            *string           `json:"status"`
	LineItems         []lineQtyRequest  `json:"line_items"`
	Carrier           *string           `json:"carrier"`
	TrackingNumber    *string           `json:"tracking_number"`
	TrackingURL       *string           `json:"tracking_url"`
	Destination       *checkout.Address `json:"destination"`
	EstimatedDelivery *struct {
		Earliest *time.Time `json:"earliest"`
		Latest   *time.Time `json:"latest"`
	} `json:"estimated_delivery"`
	DigitalDelivery *struct {
		AccessURL  *string    `json:"access_url"`
		LicenseKey *string    `json:"license_key"`
		ExpiresAt  *time.Time `json:"expires_at"`
	} `json:"digital_delivery"`
	Description *string `json:"description"`
}

type fulfillmentEventRequest struct {
	Type        *string    `json:"type"`
	OccurredAt  *time.Time `json:"occurred_at"`
	Description *string    `json:"description"`
	Location    *string    `json:"location"`
}

type cancellationRequest struct {
	LineItems   []lineQtyRequest `json:"line_items"`
	Description *string          `json:"description"`
	Reason      *string          `json:"reason"`
}

// text checks an optional free-text field.
func text(v *string, path string) (string, error) {
	if v == nil {
		return "", nil
	}
	if len(*v) > maxAdminText {
		return "", acp.InvalidRequest("invalid", fmt.Sprintf("%s is longer than %d bytes.", path[2:], maxAdminText), path)
	}
	return *v, nil
}

// absURL checks an optional URL field: absolute http(s), as the schema's uri format wants.
func absURL(v *string, path string) (string, error) {
	if v == nil {
		return "", nil
	}
	u, err := url.Parse(*v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(*v) > maxAdminURL {
		return "", acp.InvalidRequest("invalid", path[2:]+" must be an absolute http(s) URL.", path)
	}
	return *v, nil
}

// lineQtys checks the shape of line_items (the order checks ids and quantities).
func lineQtys(in []lineQtyRequest) ([]checkout.LineQuantity, error) {
	out := make([]checkout.LineQuantity, len(in))
	for i, l := range in {
		at := fmt.Sprintf("$.line_items[%d]", i)
		if err := acp.RequireFields(acp.Required{Path: at + ".id", Present: l.ID != nil}, acp.Required{Path: at + ".quantity", Present: l.Quantity != nil}); err != nil {
			return nil, err
		}
		out[i] = checkout.LineQuantity{LineID: *l.ID, Quantity: *l.Quantity}
	}
	return out, nil
}

// texts checks several optional text fields at once, in order.
func texts(fields ...textField) error {
	for _, f := range fields {
		check := text
		if f.url {
			check = absURL
		}
		v, err := check(f.v, f.path)
		if err != nil {
			return err
		}
		*f.dst = v
	}
	return nil
}

// textField is one optional text field of a request: its value, its path, where the
// checked value goes, and whether it is a URL.
type textField struct {
	v    *string
	path string
	dst  *string
	url  bool
}

func (req fulfillmentRequest) fulfillment() (checkout.Fulfillment, error) {
	if err := acp.RequireFields(acp.Required{Path: "$.type", Present: req.Type != nil}); err != nil {
		return checkout.Fulfillment{}, err
	}
	f := checkout.Fulfillment{Type: checkout.FulfillmentType(*req.Type)}
	if req.Status != nil {
		f.Status = checkout.FulfillmentStatus(*req.Status)
	}
	var err error
	if f.Lines, err = lineQtys(req.LineItems); err != nil {
		return f, err
	}
	if err := texts(
		textField{req.Carrier, "$.carrier", &f.Carrier, false},
		textField{req.TrackingNumber, "$.tracking_number", &f.TrackingNumber, false},
		textField{req.TrackingURL, "$.tracking_url", &f.TrackingURL, true},
		textField{req.Description, "$.description", &f.Description, false},
	); err != nil {
		return f, err
	}
	if f.Type != checkout.FulfillmentShipping && (f.Carrier != "" || f.TrackingNumber != "" || f.TrackingURL != "") {
		return f, acp.InvalidRequest("invalid", "carrier and tracking are for shipping fulfillments only.", "$.carrier")
	}
	if d := req.Destination; d != nil {
		if d.Name == "" || d.LineOne == "" || d.City == "" || d.State == "" || d.Country == "" || d.PostalCode == "" {
			return f, acp.InvalidRequest("missing", "destination needs name, line_one, city, state, country and postal_code.", "$.destination")
		}
		f.Destination = d
	}
	if e := req.EstimatedDelivery; e != nil {
		if e.Earliest == nil || e.Latest == nil || e.Latest.Before(*e.Earliest) {
			return f, acp.InvalidRequest("invalid", "estimated_delivery needs earliest and latest, earliest first.", "$.estimated_delivery")
		}
		f.EarliestDelivery, f.LatestDelivery = e.Earliest, e.Latest
	}
	if d := req.DigitalDelivery; d != nil {
		if f.Type != checkout.FulfillmentDigital {
			return f, acp.InvalidRequest("invalid", "digital_delivery is for digital fulfillments only.", "$.digital_delivery")
		}
		f.Digital = &checkout.DigitalDelivery{ExpiresAt: d.ExpiresAt}
		if err := texts(
			textField{d.AccessURL, "$.digital_delivery.access_url", &f.Digital.AccessURL, true},
			textField{d.LicenseKey, "$.digital_delivery.license_key", &f.Digital.LicenseKey, false},
		); err != nil {
			return f, err
		}
	}
	return f, nil
}

// addFulfillment is POST /admin/orders/{id}/fulfillments.
func (s *Server) addFulfillment(w http.ResponseWriter, r *http.Request) {
	var req fulfillmentRequest
	if err := s.decodeAdmin(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	f, err := req.fulfillment()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	expectAdminOrder(r, http.StatusCreated)
	o, err := s.orders.AddFulfillment(r.Context(), mux.Vars(r)["id"], f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recordedOrEncode(w, r, http.StatusCreated, toAdminOrder(o))
}

// addFulfillmentEvent is POST /admin/orders/{id}/fulfillments/{fid}/events. Without
// occurred_at the event happened now.
func (s *Server) addFulfillmentEvent(w http.ResponseWriter, r *http.Request) {
	var req fulfillmentEventRequest
	if err := s.decodeAdmin(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := acp.RequireFields(acp.Required{Path: "$.type", Present: req.Type != nil}); err != nil {
		s.writeError(w, r, err)
		return
	}
	ev := checkout.FulfillmentEvent{Type: checkout.FulfillmentEventType(*req.Type), OccurredAt: time.Now()}
	if req.OccurredAt != nil {
		ev.OccurredAt = *req.OccurredAt
	}
	if err := texts(
		textField{req.Description, "$.description", &ev.Description, false},
		textField{req.Location, "$.location", &ev.Location, false},
	); err != nil {
		s.writeError(w, r, err)
		return
	}
	expectAdminOrder(r, http.StatusCreated)
	o, err := s.orders.AddFulfillmentEvent(r.Context(), mux.Vars(r)["id"], mux.Vars(r)["fid"], ev)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recordedOrEncode(w, r, http.StatusCreated, toAdminOrder(o))
}

// cancelLines is POST /admin/orders/{id}/cancellations.
func (s *Server) cancelLines(w http.ResponseWriter, r *http.Request) {
	var req cancellationRequest
	if err := s.decodeAdmin(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	var c checkout.Cancellation
	var err error
	if c.Lines, err = lineQtys(req.LineItems); err == nil {
		err = texts(
			textField{req.Description, "$.description", &c.Description, false},
			textField{req.Reason, "$.reason", &c.Reason, false},
		)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	expectAdminOrder(r, http.StatusCreated)
	o, err := s.orders.CancelLines(r.Context(), mux.Vars(r)["id"], c)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	recordedOrEncode(w, r, http.StatusCreated, toAdminOrder(o))
}

// adminLine is one order line with ORD-RFC's quantities.
type adminLine struct {
	ID       string `json:"id"`
	ItemID   string `json:"item_id"`
	Title    string `json:"title"`
	Quantity struct {
		Ordered   int `json:"ordered"`
		Current   int `json:"current"`
		Fulfilled int `json:"fulfilled"`
	} `json:"quantity"`
	Status     string `json:"status"`
	UnitAmount int64  `json:"unit_amount"`
	// Subtotal and Tax are what the line cost at completion (absent for older orders).
	Subtotal *int64 `json:"subtotal,omitempty"`
	Tax      *int64 `json:"tax,omitempty"`
}

type adminLineQty struct {
	ID       string `json:"id"`
	Quantity int    `json:"quantity"`
}

type adminFulfillment struct {
	ID                string            `json:"id"`
	Type              string            `json:"type"`
	Status            string            `json:"status"`
	LineItems         []adminLineQty    `json:"line_items"`
	Carrier           string            `json:"carrier,omitempty"`
	TrackingNumber    string            `json:"tracking_number,omitempty"`
	TrackingURL       string            `json:"tracking_url,omitempty"`
	Destination       *checkout.Address `json:"destination,omitempty"`
	EstimatedDelivery *struct {
		Earliest time.Time `json:"earliest"`
		Latest   time.Time `json:"latest"`
	} `json:"estimated_delivery,omitempty"`
	DigitalDelivery *struct {
		AccessURL  string     `json:"access_url,omitempty"`
		LicenseKey string     `json:"license_key,omitempty"`
		ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	} `json:"digital_delivery,omitempty"`
	Description string                  `json:"description,omitempty"`
	Events      []adminFulfillmentEvent `json:"events"`
	CreatedAt   time.Time               `json:"created_at"`
	UpdatedAt   time.Time               `json:"updated_at"`
}

type adminFulfillmentEvent struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	OccurredAt  time.Time `json:"occurred_at"`
	Description string    `json:"description,omitempty"`
	Location    string    `json:"location,omitempty"`
}

type adminCancellation struct {
	ID          string         `json:"id"`
	LineItems   []adminLineQty `json:"line_items"`
	Description string         `json:"description,omitempty"`
	Reason      string         `json:"reason,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
}

func adminLineQtys(ls []checkout.LineQuantity) []adminLineQty {
	out := make([]adminLineQty, len(ls))
	for i, l := range ls {
		out[i] = adminLineQty{ID: l.LineID, Quantity: l.Quantity}
	}
	return out
}

// addAdminDetails fills the lines, fulfilments and cancellations of a read order (a
// listing reads orders without them, and shows none).
func addAdminDetails(out *adminOrder, o *checkout.Order) {
	for _, l := range o.Lines {
		al := adminLine{ID: l.ID, ItemID: l.ItemID, Title: l.Title, UnitAmount: l.UnitAmount}
		al.Quantity.Ordered, al.Quantity.Current, al.Quantity.Fulfilled = l.Quantity, l.Current, o.FulfilledUnits(l.ID)
		al.Status = string(checkout.LineStatusOf(l.Current, al.Quantity.Fulfilled))
		if l.Priced {
			al.Subtotal, al.Tax = &l.Subtotal, &l.Tax
		}
		out.LineItems = append(out.LineItems, al)
	}
	for _, f := range o.Fulfillments {
		af := adminFulfillment{
			ID: f.ID, Type: string(f.Type), Status: string(f.Status), LineItems: adminLineQtys(f.Lines),
			Carrier: f.Carrier, TrackingNumber: f.TrackingNumber, TrackingURL: f.TrackingURL, Destination: f.Destination,
			Description: f.Description, Events: make([]adminFulfillmentEvent, len(f.Events)), CreatedAt: f.CreatedAt, UpdatedAt: f.UpdatedAt,
		}
		if f.EarliestDelivery != nil && f.LatestDelivery != nil {
			af.EstimatedDelivery = &struct {
				Earliest time.Time `json:"earliest"`
				Latest   time.Time `json:"latest"`
			}{*f.EarliestDelivery, *f.LatestDelivery}
		}
		if d := f.Digital; d != nil {
			af.DigitalDelivery = &struct {
				AccessURL  string     `json:"access_url,omitempty"`
				LicenseKey string     `json:"license_key,omitempty"`
				ExpiresAt  *time.Time `json:"expires_at,omitempty"`
			}{d.AccessURL, d.LicenseKey, d.ExpiresAt}
		}
		for i, e := range f.Events {
			af.Events[i] = adminFulfillmentEvent{ID: e.ID, Type: string(e.Type), OccurredAt: e.OccurredAt, Description: e.Description, Location: e.Location}
		}
		out.Fulfillments = append(out.Fulfillments, af)
	}
	for _, c := range o.Cancellations {
		out.Cancellations = append(out.Cancellations, adminCancellation{
			ID: c.ID, LineItems: adminLineQtys(c.Lines), Description: c.Description, Reason: c.Reason, CreatedAt: c.CreatedAt,
		})
	}
}
