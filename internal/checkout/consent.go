package checkout

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Marketing consent (MC-RFC): the merchant offers channels on every session, the agent
// reports the buyer's decision per channel at completion, and the merchant keeps the
// decision per contact (an email address, or a phone number for the phone channels) and
// channel. Affiliate attribution (AA-RFC) and order notes ride on the same requests.

// The fields of consents, attribution and order notes the domain names in errors.
const (
	// FieldConsents is the list of marketing consent decisions of a completion.
	FieldConsents FieldName = "Consents"
	// FieldChannel is the marketing channel of one decision.
	FieldChannel FieldName = "Channel"
	// FieldOrderNotes is the buyer's notes for the order.
	FieldOrderNotes FieldName = "OrderNotes"
	// FieldAttribution is an affiliate attribution.
	FieldAttribution FieldName = "Attribution"
)

// The marketing channels this server can resolve a contact for (MC-RFC §3.5): email
// goes to an email address, sms and whatsapp to a phone number. A channel it cannot
// resolve would always be ignored, so it cannot be offered.
const (
	ChannelEmail    = "email"
	ChannelSMS      = "sms"
	ChannelWhatsApp = "whatsapp"
)

// ConsentOption is one marketing channel the merchant offers, as configured.
type ConsentOption struct {
	Channel          string `json:"channel"`
	DisplayText      string `json:"display_text"`
	PrivacyPolicyURL string `json:"privacy_policy_url"`
}

// Limits of a configured option's text.
const (
	MaxConsentDisplayText = 1000
	MaxConsentChannel     = 64
)

// CheckConsentOptions refuses a configuration an agent could not be shown: an unknown
// channel, one offered twice, empty text, or a privacy policy that is no absolute
// http(s) URL.
func CheckConsentOptions(opts []ConsentOption) error {
	seen := map[string]bool{}
	for i, o := range opts {
		switch o.Channel {
		case ChannelEmail, ChannelSMS, ChannelWhatsApp:
		default:
			return fmt.Errorf("option %d: channel must be email, sms or whatsapp (the channels a contact can be found for), got %q", i, o.Channel)
		}
		if seen[o.Channel] {
			return fmt.Errorf("option %d: channel %s is offered twice", i, o.Channel)
		}
		seen[o.Channel] = true
		if strings.TrimSpace(o.DisplayText) == "" || utf8.RuneCountInString(o.DisplayText) > MaxConsentDisplayText {
			return fmt.Errorf("option %d: display_text must be 1 to %d characters", i, MaxConsentDisplayText)
		}
		u, err := url.Parse(o.PrivacyPolicyURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("option %d: privacy_policy_url must be an absolute http(s) URL, got %q", i, o.PrivacyPolicyURL)
		}
	}
	return nil
}

// OfferedConsent is a configured option as one session shows it: Subscribed is the
// stored decision for the session's contact on that channel (false when none is known).
type OfferedConsent struct {
	ConsentOption
	Subscribed bool
}

// MarketingConsent is the buyer's decision on one channel, as the agent reports it at
// completion.
type MarketingConsent struct {
	Channel string
	OptedIn bool
}

// ConsentRecord is a decision to store: for Contact (a normalised email address or
// phone number) on Channel.
type ConsentRecord struct {
	Channel string
	Contact string
	OptedIn bool
}

// ConsentContact is the contact the channel reaches for a session with buyer b and
// fulfilment contact fc (either may be nil): the buyer's first, the fulfilment
// contact's as the fallback (MC-RFC §3.5). Email addresses are compared without case.
// "" means none can be resolved.
func ConsentContact(channel string, b *Buyer, fc *FulfillmentContact) string {
	var primary, fallback string
	switch channel {
	case ChannelEmail:
		if b != nil {
			primary = b.Email
		}
		if fc != nil {
			fallback = fc.Email
		}
	case ChannelSMS, ChannelWhatsApp:
		if b != nil {
			primary = b.PhoneNumber
		}
		if fc != nil {
			fallback = fc.PhoneNumber
		}
	default:
		return ""
	}
	c := strings.TrimSpace(primary)
	if c == "" {
		c = strings.TrimSpace(fallback)
	}
	if channel == ChannelEmail {
		c = strings.ToLower(c)
	}
	return c
}

// ConsentRecords is what a completion of s stores of consents, by MC-RFC's seller
// rules: entries for channels not offered are ignored, as are entries whose contact
// cannot be resolved; each kept entry stores opted_in as given. No entries (the field
// omitted) store nothing, so the existing state stays.
func (s *Session) ConsentRecords(offered []ConsentOption, consents []MarketingConsent) []ConsentRecord {
	var out []ConsentRecord
	for _, c := range consents {
		if !offersChannel(offered, c.Channel) {
			continue
		}
		contact := ConsentContact(c.Channel, s.Buyer, s.FulfillmentContact)
		if contact == "" {
			continue
		}
		out = append(out, ConsentRecord{Channel: c.Channel, Contact: contact, OptedIn: c.OptedIn})
	}
	return out
}

func offersChannel(offered []ConsentOption, channel string) bool {
	for _, o := range offered {
		if o.Channel == channel {
			return true
		}
	}
	return false
}

// MaxConsents bounds the decisions one completion may carry: one per channel offered
// would do; the bound only keeps a request from carrying thousands.
const MaxConsents = 20

// checkConsents refuses a channel named twice (which decision would count?) and more
// entries than MaxConsents.
func checkConsents(cs []MarketingConsent) error {
	at := At(FieldConsents)
	if len(cs) > MaxConsents {
		return Errorf(KindInvalid, "invalid", at, "marketing consents hold at most %d entries.", MaxConsents)
	}
	seen := map[string]bool{}
	for i, c := range cs {
		if utf8.RuneCountInString(c.Channel) > MaxConsentChannel {
			return Errorf(KindInvalid, "invalid", at.Index(i).Child(FieldChannel), "channel is at most %d characters.", MaxConsentChannel)
		}
		if seen[c.Channel] {
			return Errorf(KindInvalid, "invalid", at.Index(i).Child(FieldChannel), "Channel %s appears more than once; send one decision per channel.", c.Channel)
		}
		seen[c.Channel] = true
	}
	return nil
}

// MaxOrderNotes bounds the buyer's order notes, in characters (the 2026-04-17 JSON
// Schema's maxLength).
const MaxOrderNotes = 5000

// checkOrderNotes refuses notes longer than MaxOrderNotes.
func checkOrderNotes(notes *string) error {
	if notes == nil {
		return nil
	}
	return maxLength(At(FieldOrderNotes), "order_notes", *notes, MaxOrderNotes)
}

// Touchpoint says when an affiliate attribution was given: at creation (first touch)
// or at completion (last touch).
type Touchpoint string

// The touchpoints of an attribution.
const (
	FirstTouch Touchpoint = "first"
	LastTouch  Touchpoint = "last"
)

// Attribution is an affiliate network's claim to a purchase (AA-RFC), kept for the
// merchant as the agent gave it and never shown back to any agent or webhook receiver:
// it may hold the network's secret token. The json tags are its stored form.
type Attribution struct {
	Provider    string         `json:"provider"`
	Token       string         `json:"token,omitempty"`
	PublisherID string         `json:"publisher_id,omitempty"`
	CampaignID  string         `json:"campaign_id,omitempty"`
	CreativeID  string         `json:"creative_id,omitempty"`
	SubID       string         `json:"sub_id,omitempty"`
	SourceType  string         `json:"source_type,omitempty"`
	SourceURL   string         `json:"source_url,omitempty"`
	IssuedAt    string         `json:"issued_at,omitempty"`
	ExpiresAt   string         `json:"expires_at,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
	// Claimed is the touchpoint the agent said it is ("" when it said none); which
	// touch it is stored as follows the request it came with.
	Claimed Touchpoint `json:"touchpoint,omitempty"`
}

// Bounds of what one attribution may store: every field is an identifier or a URL.
const (
	MaxAttributionText = 2048
	MaxAttributionKeys = 20
)

// check bounds the attribution's text and metadata; the shape (provider, token or
// publisher id, flat metadata) is the wire decoder's.
func (a *Attribution) check() error {
	if a == nil {
		return nil
	}
	at := At(FieldAttribution)
	for _, v := range []string{a.Provider, a.Token, a.PublisherID, a.CampaignID, a.CreativeID, a.SubID,
		a.SourceType, a.SourceURL, a.IssuedAt, a.ExpiresAt} {
		if utf8.RuneCountInString(v) > MaxAttributionText {
			return Errorf(KindInvalid, "invalid", at, "affiliate attribution fields are at most %d characters.", MaxAttributionText)
		}
	}
	if len(a.Metadata) > MaxAttributionKeys {
		return Errorf(KindInvalid, "invalid", at, "affiliate attribution metadata holds at most %d keys.", MaxAttributionKeys)
	}
	for k, v := range a.Metadata {
		s, _ := v.(string)
		if utf8.RuneCountInString(k) > MaxAttributionText || utf8.RuneCountInString(s) > MaxAttributionText {
			return Errorf(KindInvalid, "invalid", at, "affiliate attribution metadata keys and values are at most %d characters.", MaxAttributionText)
		}
	}
	return nil
}

// StoredConsent is a stored decision with the checkout that made it.
type StoredConsent struct {
	ConsentRecord
	CheckoutSessionID string
	OrderID           string
	UpdatedAt         time.Time
}

// ConsentReader reads the merchant's stored marketing decisions.
type ConsentReader interface {
	// ForContact returns the decisions of contact (an email address or a phone
	// number) on every channel.
	ForContact(ctx context.Context, contact string) ([]StoredConsent, error)
}
