package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
)

// The discounts CLI: the demo file imports (twice: an upsert), create takes flags,
// list shows every discount, disable stops one, and bad input changes nothing.
func TestDiscountsCommand(t *testing.T) {
	t.Parallel()
	env := []string{"DATABASE_URL=" + pgtest.NewDatabase(t)}
	for range 2 {
		out := mustRun(t, env, "discounts", "import", "../../internal/catalog/demo/discounts.json")
		if out != "imported 4 discount(s) from ../../internal/catalog/demo/discounts.json\n" {
			t.Errorf("import output: %q", out)
		}
	}
	out := mustRun(t, env, "discounts", "create", "-code", "flash", "-title", "Flash sale", "-amount-off", "500", "-currency", "USD",
		"-usage-limit", "100", "-ends", "2099-01-01T00:00:00Z", "-exclusive")
	for _, want := range []string{`"code": "FLASH"`, `"amount_off": 500`, `"currency": "usd"`, `"usage_limit": 100`, `"stackable": false`, `"ends_at": "2099-01-01T00:00:00Z"`} {
		if !strings.Contains(out, want) {
			t.Errorf("create output lacks %s:\n%s", want, out)
		}
	}
	id := regexp.MustCompile(`"id": "(disc_[0-9a-f]+)"`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no id in %s", out)
	}
	list := mustRun(t, env, "discounts", "list")
	if lines := strings.Split(strings.TrimSpace(list), "\n"); len(lines) != 6 || !strings.Contains(list, "(automatic)") || !strings.Contains(list, "0/100") {
		t.Errorf("list:\n%s", list)
	}
	if out := mustRun(t, env, "discounts", "disable", id[1]); !strings.Contains(out, `"disabled": true`) {
		t.Errorf("disable: %s", out)
	}
	if list := mustRun(t, env, "discounts", "list"); !regexp.MustCompile(`FLASH .*disabled`).MatchString(list) {
		t.Errorf("list after disable:\n%s", list)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"discounts", "create", "-code", "FLASH", "-title", "again", "-percent-bps", "100"}, "taken"},
		{[]string{"discounts", "create", "-title", "both", "-percent-bps", "100", "-amount-off", "1", "-currency", "usd"}, "exactly one"},
		{[]string{"discounts", "create", "-title", "t", "-percent-bps", "100", "-ends", "tomorrow"}, "RFC 3339"},
		{[]string{"discounts", "disable", "disc_nope"}, "No discount"},
		{[]string{"discounts", "frobnicate"}, "usage"},
	} {
		if _, errOut, code := run(t, env, tc.args...); code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %s", tc.args, code, errOut)
		}
	}
	// One bad discount in a file: nothing of it is imported.
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"discounts": [{"code": "NEW1", "title": "ok", "percent_bps": 100}, {"code": "NEW2", "title": "bad", "percent_bps": 100, "amount_off": 5}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(t, env, "discounts", "import", bad); code == 0 || !strings.Contains(errOut, "discount 1") {
		t.Errorf("bad import: exit %d, %s", code, errOut)
	}
	if list := mustRun(t, env, "discounts", "list"); strings.Contains(list, "NEW1") {
		t.Errorf("a refused import wrote a discount:\n%s", list)
	}
}
