package checkout

import (
	"slices"
	"testing"
)

// ConsentRecords applies MC-RFC's seller rules: channels not offered and contacts that
// cannot be resolved are ignored, the buyer's contact comes before the fulfilment
// contact's, and opted_in is kept as given.
func TestConsentRecords(t *testing.T) {
	t.Parallel()
	offered := []ConsentOption{{Channel: ChannelEmail}, {Channel: ChannelSMS}, {Channel: ChannelWhatsApp}}
	all := []MarketingConsent{
		{Channel: ChannelEmail, OptedIn: true}, {Channel: ChannelSMS, OptedIn: false},
		{Channel: ChannelWhatsApp, OptedIn: true}, {Channel: "push", OptedIn: true},
	}
	for _, tc := range []struct {
		name    string
		sess    Session
		offered []ConsentOption
		in      []MarketingConsent
		want    []ConsentRecord
	}{
		{"omitted", Session{Buyer: &Buyer{Email: "a@b.c"}}, offered, nil, nil},
		{"nothing offered", Session{Buyer: &Buyer{Email: "a@b.c"}}, nil, all, nil},
		{"no contact", Session{}, offered, all, nil},
		{"buyer email only", Session{Buyer: &Buyer{Email: " A@B.c "}}, offered, all,
			[]ConsentRecord{{ChannelEmail, "a@b.c", true}}},
		{"buyer first", Session{Buyer: &Buyer{Email: "a@b.c", PhoneNumber: "+1"}, FulfillmentContact: &FulfillmentContact{Email: "x@y.z", PhoneNumber: "+2"}}, offered, all,
			[]ConsentRecord{{ChannelEmail, "a@b.c", true}, {ChannelSMS, "+1", false}, {ChannelWhatsApp, "+1", true}}},
		{"fulfilment contact as fallback", Session{FulfillmentContact: &FulfillmentContact{Email: "x@y.z", PhoneNumber: "+2"}}, offered[:2], all,
			[]ConsentRecord{{ChannelEmail, "x@y.z", true}, {ChannelSMS, "+2", false}}},
	} {
		if got := tc.sess.ConsentRecords(tc.offered, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCompletionConsentsValidate(t *testing.T) {
	t.Parallel()
	c := Completion{HandlerID: "h", Token: "vt_1", Consents: []MarketingConsent{{Channel: "sms"}, {Channel: "sms", OptedIn: true}}}
	de, _ := AsError(c.Validate())
	if de == nil || de.Field != At(FieldConsents).Index(1).Child(FieldChannel) {
		t.Errorf("duplicate channel: %v", de)
	}
	c.Consents = c.Consents[:1]
	if err := c.Validate(); err != nil {
		t.Errorf("one decision: %v", err)
	}
	c.Attribution = &Attribution{Provider: "p", Metadata: map[string]any{}}
	for i := range MaxAttributionKeys + 1 {
		c.Attribution.Metadata[string(rune('a'+i))] = true
	}
	if de, _ := AsError(c.Validate()); de == nil || de.Field != At(FieldAttribution) {
		t.Errorf("too much metadata: %v", de)
	}
}
