package checkout

import (
	"strings"
	"testing"
	"time"
)

func TestAuthenticationStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	visa := &Authentication{DirectoryServer: DirectoryVisa, Acquirer: MockAcquirer("")}
	session := func(agent []string, auth *Authentication, address *Address) *Session {
		return &Session{State: StateOpen, Currency: "usd", Buyer: ada, FulfillmentAddress: address, FulfillmentOptionID: "std",
			AgentInterventions: agent, Authentication: auth, Lines: []Line{{ID: "l1", VariantID: "tee", Quantity: 1, UnitAmount: 1500}}}
	}
	for _, tc := range []struct {
		name   string
		s      *Session
		status Status
		codes  []MessageCode
	}{
		{"no card needs it", session([]string{"3ds"}, nil, addr), StatusReadyForPayment, nil},
		{"the agent runs 3-D Secure", session([]string{"biometric", "3ds"}, visa, addr), StatusAuthenticationRequired, nil},
		{"the agent cannot", session([]string{"biometric"}, visa, addr), StatusNotReadyForPayment, []MessageCode{CodeInterventionRequired}},
		{"a 2025-09-29 agent cannot", session(nil, visa, addr), StatusNotReadyForPayment, []MessageCode{CodeInterventionRequired}},
		// The cart comes first: authentication is only asked of a payable cart.
		{"the cart is not ready", session([]string{"3ds"}, visa, nil), StatusNotReadyForPayment, []MessageCode{CodeMissing}},
	} {
		q := Price(tc.s, testCatalog(0), now)
		var codes []MessageCode
		for _, m := range q.Messages {
			codes = append(codes, m.Code)
		}
		if q.Status != tc.status || strings.Join(toStrings(codes), ",") != strings.Join(toStrings(tc.codes), ",") {
			t.Errorf("%s: status %s messages %v, want %s %v", tc.name, q.Status, codes, tc.status, tc.codes)
		}
	}
	done := session([]string{"3ds"}, visa, addr)
	done.Complete(now)
	if q := Price(done, testCatalog(0), now); q.Status != StatusCompleted {
		t.Errorf("a completed session is %s", q.Status)
	}
}

func toStrings(codes []MessageCode) []string {
	out := make([]string, len(codes))
	for i, c := range codes {
		out[i] = string(c)
	}
	return out
}

func TestCheckAuthentication(t *testing.T) {
	t.Parallel()
	visa := &Authentication{DirectoryServer: DirectoryVisa}
	result := func(o AuthenticationOutcome) *AuthenticationResult { return &AuthenticationResult{Outcome: o} }
	for _, tc := range []struct {
		name    string
		needed  *Authentication
		result  *AuthenticationResult
		carries bool
		code    string
	}{
		{"nothing needed, nothing given", nil, nil, true, ""},
		{"needed, none given", visa, nil, true, CodeRequires3DS},
		{"needed, the version cannot carry one", visa, nil, false, CodeRequires3DS},
		{"authenticated", visa, result(OutcomeAuthenticated), true, ""},
		{"attempt acknowledged", visa, result(OutcomeAttemptAcknowledged), true, ""},
		{"informational", visa, result(OutcomeInformational), true, ""},
		{"a success nobody asked for", nil, result(OutcomeAuthenticated), true, ""},
		{"a failure nobody asked for still refuses", nil, result(OutcomeDenied), true, CodeAuthenticationFailed},
		{"an unknown outcome refuses", visa, result("failed"), true, CodeAuthenticationFailed},
	} {
		err := CheckAuthentication(tc.needed, tc.result, tc.carries)
		got := ""
		if de, ok := AsError(err); ok {
			got = de.Code
			if de.Kind != KindInvalid {
				t.Errorf("%s: kind %v", tc.name, de.Kind)
			}
		} else if err != nil {
			t.Errorf("%s: %v is no domain error", tc.name, err)
		}
		if got != tc.code {
			t.Errorf("%s: code %q, want %q", tc.name, got, tc.code)
		}
	}
	for _, o := range []AuthenticationOutcome{OutcomeDenied, OutcomeRejected, OutcomeAbandoned, OutcomeCanceled,
		OutcomeInternalError, OutcomeProcessingError, OutcomeNotSupported} {
		de, _ := AsError(CheckAuthentication(visa, result(o), true))
		if de == nil || de.Field != At(FieldAuthentication).Child(FieldOutcome) || failureMessages[o] == "" ||
			!strings.HasPrefix(de.Message, failureMessages[o]) || !strings.HasSuffix(de.Message, "No payment was taken.") {
			t.Errorf("%s: %v", o, de)
		}
	}
}

func TestMockAcquirerFitsTheLimits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 300)
	a := MockAcquirer(long)
	if n := len([]rune(a.MerchantID)); n != maxAcquirerMerchantID {
		t.Errorf("merchant id of %d characters", n)
	}
	if n := len([]rune(a.MerchantName)); n != maxMerchantName {
		t.Errorf("merchant name of %d characters", n)
	}
	if a := MockAcquirer(""); a.MerchantID != "merchant" || a.Country != "US" || a.BIN == "" {
		t.Errorf("default acquirer = %+v", a)
	}
	for brand, want := range map[string]string{"visa": "visa", "mastercard": "mastercard", "amex": "american_express", "discover": ""} {
		if got := DirectoryServer(brand); got != want {
			t.Errorf("DirectoryServer(%s) = %q, want %q", brand, got, want)
		}
	}
}
