package checkout

import (
	"slices"
	"testing"
)

// TestPaymentHandlersFollowTheGateway: the PSP handler names the configured gateway, and
// only Stripe adds the Shared Payment Token handler, which takes spt_ tokens alone.
func TestPaymentHandlersFollowTheGateway(t *testing.T) {
	t.Parallel()
	ids := func(hs []PaymentHandler) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.ID)
		}
		return out
	}
	mock := PaymentHandlers("merchant", "mock")
	if got := ids(mock); !slices.Equal(got, []string{HandlerVaultCard, HandlerPSPTestCard}) || mock[1].PSP != "mock" {
		t.Errorf("mock: handlers %v, PSP handler %+v", got, mock[1])
	}
	stripe := PaymentHandlers("acct_1", PSPStripe)
	if got := ids(stripe); !slices.Equal(got, []string{HandlerVaultCard, HandlerPSPTestCard, HandlerStripeSPT}) {
		t.Fatalf("stripe: handlers %v", got)
	}
	if spt := stripe[2]; spt.PSP != "stripe" || spt.MerchantID != "acct_1" || !spt.RequiresDelegatePayment || stripe[1].PSP != "stripe" {
		t.Errorf("stripe: %+v, PSP handler %+v", spt, stripe[1])
	}

	for token, ok := range map[string]bool{"spt_123": true, "tok_visa": false, "vt_123": false} {
		c := Completion{HandlerID: HandlerStripeSPT, Token: token}
		if err := c.CheckHandler(stripe); (err == nil) != ok {
			t.Errorf("%s through %s: %v", token, HandlerStripeSPT, err)
		}
	}
	c := Completion{HandlerID: HandlerStripeSPT, Token: "spt_123"}
	if err := c.CheckHandler(mock); err == nil {
		t.Errorf("the mock's sessions took an SPT")
	}
}
