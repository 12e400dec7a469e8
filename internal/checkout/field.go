package checkout

import (
	"strconv"
	"strings"
)

// FieldName names one part of a request, session or order in domain terms. It is not a
// wire name: each API version maps it to its own (2025-09-29 calls the session's lines
// line_items, a later version may call the fulfillment address fulfillment_details), so
// that the domain says what is wrong and the edge says where that is in its JSON.
type FieldName string

// The fields the checkout domain names in its errors and messages. The values only show
// in logs and test output; they are deliberately not shaped like any version's JSON.
const (
	// FieldItems is the list of items a create or update asks for.
	FieldItems FieldName = "Items"
	// FieldID is the id of an item.
	FieldID FieldName = "ID"
	// FieldQuantity is the quantity of an item.
	FieldQuantity FieldName = "Quantity"
	// FieldLines is the session's priced lines, as the session shows them.
	FieldLines FieldName = "Lines"
	// FieldBuyer is the buyer.
	FieldBuyer FieldName = "Buyer"
	// FieldFirstName is the buyer's first name.
	FieldFirstName FieldName = "FirstName"
	// FieldLastName is the buyer's last name.
	FieldLastName FieldName = "LastName"
	// FieldEmail is the buyer's email address.
	FieldEmail FieldName = "Email"
	// FieldPhone is the buyer's phone number.
	FieldPhone FieldName = "Phone"
	// FieldFulfillmentAddress is the address the order ships to.
	FieldFulfillmentAddress FieldName = "FulfillmentAddress"
	// FieldFulfillmentOption is the chosen fulfillment option.
	FieldFulfillmentOption FieldName = "FulfillmentOption"
	// FieldPayment is the payment a completion carries.
	FieldPayment FieldName = "Payment"
	// FieldToken is the payment token of a completion.
	FieldToken FieldName = "Token"
	// FieldProvider is the payment provider of a completion.
	FieldProvider FieldName = "Provider"
	// FieldBillingAddress is a billing address (of a completion's payment or of a
	// delegated card).
	FieldBillingAddress FieldName = "BillingAddress"
	// FieldFullName is the name of the person on an address or a card.
	FieldFullName FieldName = "FullName"
	// FieldLineOne is the first street line of an address.
	FieldLineOne FieldName = "LineOne"
	// FieldLineTwo is the second street line of an address.
	FieldLineTwo FieldName = "LineTwo"
	// FieldCity is the city of an address.
	FieldCity FieldName = "City"
	// FieldState is the state or region of an address.
	FieldState FieldName = "State"
	// FieldCountry is the country of an address.
	FieldCountry FieldName = "Country"
	// FieldPostalCode is the postal code of an address.
	FieldPostalCode FieldName = "PostalCode"
	// FieldCompany is the company of an address.
	FieldCompany FieldName = "Company"
	// FieldFulfillmentContact is the recipient named apart from the address.
	FieldFulfillmentContact FieldName = "FulfillmentContact"
	// FieldCurrency is the currency a create expects.
	FieldCurrency FieldName = "Currency"
	// FieldLocale and FieldTimezone are the buyer's locale and time zone.
	FieldLocale   FieldName = "Locale"
	FieldTimezone FieldName = "Timezone"
	// FieldHandler is the payment handler a completion names.
	FieldHandler FieldName = "Handler"
	// FieldOrderStatus is the status an order is asked to move to.
	FieldOrderStatus FieldName = "OrderStatus"
	// FieldRefundType is the type of a refund.
	FieldRefundType FieldName = "RefundType"
	// FieldRefundAmount is the amount of a refund.
	FieldRefundAmount FieldName = "RefundAmount"
	// FieldOrderLines is the list of order lines (with quantities) a fulfilment,
	// cancellation or refund names.
	FieldOrderLines FieldName = "OrderLines"
	// FieldFulfillmentType and FieldFulfillmentStatus are a fulfilment's type and status.
	FieldFulfillmentType   FieldName = "FulfillmentType"
	FieldFulfillmentStatus FieldName = "FulfillmentStatus"
	// FieldEventType and FieldOccurredAt are a fulfilment event's type and time.
	FieldEventType  FieldName = "EventType"
	FieldOccurredAt FieldName = "OccurredAt"
	// FieldDiscountCodes is the discount codes a session holds, FieldFulfillmentCost
	// the cost of its selected fulfillment option (a discount's allocation target).
	FieldDiscountCodes   FieldName = "DiscountCodes"
	FieldFulfillmentCost FieldName = "FulfillmentCost"
	// The fields of a discount definition (the merchant's, in the admin API and CLI).
	FieldDiscountCode       FieldName = "DiscountCode"
	FieldDiscountTitle      FieldName = "DiscountTitle"
	FieldDiscountValue      FieldName = "DiscountValue"
	FieldDiscountScope      FieldName = "DiscountScope"
	FieldDiscountItems      FieldName = "DiscountItems"
	FieldDiscountMinimum    FieldName = "DiscountMinimum"
	FieldDiscountEnd        FieldName = "DiscountEnd"
	FieldDiscountUsageLimit FieldName = "DiscountUsageLimit"
	FieldDiscountBuyerLimit FieldName = "DiscountBuyerLimit"
	FieldDiscountPriority   FieldName = "DiscountPriority"
)

// maxFieldDepth is the deepest field named so far (a completion's payment, its billing
// address, a part of that). A fixed array keeps Field comparable with == and free of
// shared slices, so deriving one field from another never changes the first.
const maxFieldDepth = 3

// Segment is one step of a Field: a name and, for a list, the position in it.
type Segment struct {
	Name FieldName
	// Index is the position in the list Name, when Indexed.
	Index   int
	Indexed bool
}

// Field names what an error or message is about: a path of domain field names, each
// optionally indexed, such as the id of the second item. The zero Field names nothing.
type Field struct {
	segs [maxFieldDepth]Segment
	n    int
}

// At returns the field name at the top level.
func At(name FieldName) Field {
	return Field{}.Child(name)
}

// Child returns the part name of f. It panics beyond maxFieldDepth, a programming error
// the domain's tests would show.
func (f Field) Child(name FieldName) Field {
	if f.n == maxFieldDepth {
		panic("checkout: field deeper than maxFieldDepth: " + f.String() + "." + string(name))
	}
	f.segs[f.n] = Segment{Name: name}
	f.n++
	return f
}

// Index returns the i-th element of the list f names.
func (f Field) Index(i int) Field {
	if f.n > 0 {
		f.segs[f.n-1].Index, f.segs[f.n-1].Indexed = i, true
	}
	return f
}

// IsZero reports whether f names nothing.
func (f Field) IsZero() bool { return f.n == 0 }

// Segments returns the steps of f, outermost first, for a version to render.
func (f Field) Segments() []Segment { return f.segs[:f.n:f.n] }

// String shows f in domain terms (Items[1].ID) for logs and tests; it is no wire path.
func (f Field) String() string {
	var b strings.Builder
	for i, s := range f.Segments() {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(string(s.Name))
		if s.Indexed {
			b.WriteString("[" + strconv.Itoa(s.Index) + "]")
		}
	}
	return b.String()
}
