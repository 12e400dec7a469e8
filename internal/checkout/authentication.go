package checkout

import (
	"fmt"
	"slices"
)

// Intervention3DS is the 3-D Secure intervention: the agent runs the card issuer's
// authentication and brings its result to the completion.
const Intervention3DS = "3ds"

// The 3-D Secure directory servers (card networks) a session can ask an agent to
// authenticate with.
const (
	DirectoryVisa            = "visa"
	DirectoryMastercard      = "mastercard"
	DirectoryAmericanExpress = "american_express"
)

// DirectoryServer names the 3-D Secure directory server of a card brand ("visa",
// "mastercard", "amex"), "" for a brand without one this server knows.
func DirectoryServer(brand string) string {
	switch brand {
	case "visa":
		return DirectoryVisa
	case "mastercard":
		return DirectoryMastercard
	case "amex":
		return DirectoryAmericanExpress
	}
	return ""
}

// Acquirer is the merchant's acquirer as a 3-D Secure server needs it to build the
// authentication request, so that the authentication matches the authorization.
type Acquirer struct {
	BIN          string
	Country      string
	MerchantID   string
	MerchantName string
	RequestorID  string
}

// Limits of the acquirer details (the 3-D Secure message fields they fill).
const (
	maxAcquirerMerchantID = 35
	maxMerchantName       = 40
)

// MockAcquirer is the acquirer of the built-in mock PSP for merchantID: a fixed test BIN
// in the US, and the merchant's id (cut to the lengths 3-D Secure allows; "merchant",
// MERCHANT_ID's default, when empty) as its acquirer merchant id and name. A real PSP
// adapter supplies its own.
func MockAcquirer(merchantID string) Acquirer {
	if merchantID == "" {
		merchantID = "merchant"
	}
	cut := func(s string, n int) string {
		r := []rune(s)
		if len(r) > n {
			r = r[:n]
		}
		return string(r)
	}
	return Acquirer{
		BIN: "400000", Country: "US",
		MerchantID: cut(merchantID, maxAcquirerMerchantID), MerchantName: cut(merchantID, maxMerchantName),
	}
}

// Authentication is what a session's payment needs before it can be taken: 3-D Secure
// with the card's directory server, through the merchant's acquirer. The merchant asks
// for a challenge, which the issuer may still waive.
type Authentication struct {
	DirectoryServer string
	Acquirer        Acquirer
	// PreferChallenge asks the issuer for a challenge flow (a preference only: the
	// issuer decides).
	PreferChallenge bool
}

// AuthenticationOutcome is how a 3-D Secure authentication ended, as the agent reports it.
type AuthenticationOutcome string

// The outcomes an agent can report.
const (
	OutcomeAuthenticated       AuthenticationOutcome = "authenticated"
	OutcomeAttemptAcknowledged AuthenticationOutcome = "attempt_acknowledged"
	OutcomeInformational       AuthenticationOutcome = "informational"
	OutcomeDenied              AuthenticationOutcome = "denied"
	OutcomeRejected            AuthenticationOutcome = "rejected"
	OutcomeAbandoned           AuthenticationOutcome = "abandoned"
	OutcomeCanceled            AuthenticationOutcome = "canceled"
	OutcomeInternalError       AuthenticationOutcome = "internal_error"
	OutcomeProcessingError     AuthenticationOutcome = "processing_error"
	OutcomeNotSupported        AuthenticationOutcome = "not_supported"
)

// Succeeded reports whether the payment may be authorized after o: the issuer
// authenticated the buyer (authenticated), acknowledged an attempt (attempt_acknowledged,
// the liability shift of ECI 06/01) or answered informationally (informational, ECI
// 07: the issuer waived the challenge). These are the outcomes that carry the data the
// authorization needs; every other outcome is a failure (docs/decisions.md).
func (o AuthenticationOutcome) Succeeded() bool {
	return o == OutcomeAuthenticated || o == OutcomeAttemptAcknowledged || o == OutcomeInformational
}

// failureMessages say, per failed outcome, what happened and what the buyer can do.
var failureMessages = map[AuthenticationOutcome]string{
	OutcomeDenied:          "The card issuer denied 3-D Secure authentication. Pay with another card.",
	OutcomeRejected:        "The card issuer rejected the payment during 3-D Secure authentication. Pay with another card.",
	OutcomeAbandoned:       "3-D Secure authentication was not finished. Authenticate again to pay with this card.",
	OutcomeCanceled:        "3-D Secure authentication was canceled. Authenticate again to pay with this card.",
	OutcomeInternalError:   "3-D Secure authentication failed with an error. Try authenticating again.",
	OutcomeProcessingError: "3-D Secure authentication failed with an error. Try authenticating again.",
	OutcomeNotSupported:    "The card's issuer does not support 3-D Secure, which this card requires. Pay with another card.",
}

// AuthenticationResult is the agent's report of a 3-D Secure authentication. Cryptogram
// is passed to the charge and never stored; the rest may be kept with the order.
type AuthenticationResult struct {
	Outcome AuthenticationOutcome
	// Cryptogram is the authentication value (CAVV/AAV); ECI the electronic commerce
	// indicator; TransactionID the directory server transaction id; Version the 3-D
	// Secure version. Empty when not given.
	Cryptogram    string
	ECI           string
	TransactionID string
	Version       string
}

// Error codes of a completion refused for 3-D Secure.
const (
	// CodeRequires3DS: the payment needs an authentication the completion lacks.
	CodeRequires3DS = "requires_3ds"
	// CodeAuthenticationFailed: the authentication the completion reports failed.
	CodeAuthenticationFailed = "authentication_failed"
)

// Message codes of a session whose payment needs 3-D Secure.
const (
	// CodeInterventionRequired: the payment needs an intervention the agent did not
	// declare it can run.
	CodeInterventionRequired MessageCode = "intervention_required"
)

// Fields of a completion's authentication result.
const (
	// FieldAuthentication is the authentication result a completion carries.
	FieldAuthentication FieldName = "Authentication"
	// FieldOutcome is the outcome of that authentication.
	FieldOutcome FieldName = "Outcome"
)

// CheckAuthentication decides whether a payment that needs authentication (nil: it
// needs none) may be taken with result (nil: none given). A failed result always
// refuses: no payment is taken after the issuer or the buyer failed authentication,
// whether or not the card needed it. carriesResult says whether the API the completion
// came through can carry a result at all (2025-09-29 cannot), for the message.
func CheckAuthentication(needed *Authentication, result *AuthenticationResult, carriesResult bool) error {
	if result != nil && !result.Outcome.Succeeded() {
		msg, ok := failureMessages[result.Outcome]
		if !ok {
			msg = "3-D Secure authentication failed."
		}
		return Errorf(KindInvalid, CodeAuthenticationFailed, At(FieldAuthentication).Child(FieldOutcome),
			"%s No payment was taken.", msg)
	}
	if needed == nil || result != nil {
		return nil
	}
	if !carriesResult {
		return Errorf(KindInvalid, CodeRequires3DS, At(FieldAuthentication),
			"This card requires 3-D Secure authentication, which this API version cannot carry: pay with a card that "+
				"does not require it, or complete the checkout with API version 2026-04-17 or later.")
	}
	return Errorf(KindInvalid, CodeRequires3DS, At(FieldAuthentication),
		"This checkout session requires issuer authentication (3-D Secure, directory server %s). The request must "+
			"include authentication_result as provided by the issuer authentication flow.", needed.DirectoryServer)
}

// authenticationStatus is the status of an open session whose cart is ready and whose
// payment needs a: authentication_required when the agent runs 3-D Secure, otherwise
// not_ready_for_payment with an intervention_required message (CN-RFC §4.6.1): the
// requirement holds whatever the agent declared (CN-RFC §6.2), so a session of an agent
// without 3-D Secure can only be paid with another card.
func (s *Session) authenticationStatus(a *Authentication) (Status, *Message) {
	if slices.Contains(s.Interventions(), Intervention3DS) {
		return StatusAuthenticationRequired, nil
	}
	return StatusNotReadyForPayment, &Message{Type: MessageError, Code: CodeInterventionRequired, Field: At(FieldPayment),
		Content: fmt.Sprintf("This purchase requires 3-D Secure authentication (%s), which cannot be completed in your "+
			"current environment. Pay with another card.", a.DirectoryServer)}
}
