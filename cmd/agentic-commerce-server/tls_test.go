package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/pgtest"
	"github.com/agentic-commerce/agentic-commerce-server/internal/testkit"
)

func TestServesTLS13(t *testing.T) {
	t.Parallel()
	certFile, keyFile, cert := testkit.SelfSignedCert(t)
	env := []string{"DATABASE_URL=" + pgtest.NewDatabase(t)}
	mustRun(t, env, "catalog", "import", "../../internal/catalog/demo/products.jsonl")
	srv := startServer(t, append(env, "TLS_CERT_FILE="+certFile, "TLS_KEY_FILE="+keyFile,
		"TERMS_OF_USE_URL=https://shop.example/terms", "PRIVACY_POLICY_URL=", "SHOP_POLICIES_URL=")...)
	logs := srv.logs.String()
	for _, want := range []string{`"scheme":"https"`, `"transport":"HTTPS, TLS 1.3 minimum (TLS_CERT_FILE)"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up log lacks %s:\n%s", want, logs)
		}
	}
	base := "https://" + strings.TrimPrefix(srv.base, "http://")
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	client := func(maxVersion uint16) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, MaxVersion: maxVersion},
		}}
	}

	resp, err := client(0).Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Errorf("/health over HTTPS = %d, TLS %+v", resp.StatusCode, resp.TLS)
	}

	// A configured link is shown; the unset ones are left out.
	resp, err = client(0).Post(base+"/checkout_sessions", "application/json", strings.NewReader(`{"items":[{"id":"item_123","quantity":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var session struct{ Links []map[string]string }
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &session) != nil {
		t.Fatalf("create over HTTPS: %d %s", resp.StatusCode, body)
	}
	if len(session.Links) != 1 || session.Links[0]["type"] != "terms_of_use" || session.Links[0]["url"] != "https://shop.example/terms" {
		t.Errorf("links = %v", session.Links)
	}

	// TLS 1.2 is refused in the handshake, and plain HTTP gets no answer it can use.
	if resp, err := client(tls.VersionTLS12).Get(base + "/health"); err == nil {
		resp.Body.Close()
		t.Errorf("a TLS 1.2 client was served: %d", resp.StatusCode)
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("a TLS 1.2 client failed, but not in the version handshake: %v", err)
	}
	if resp, err := http.Get(srv.base + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP on the TLS port was served")
		}
	}
	srv.stop(t)
}

func TestTLSConfigurationStopsAtStart(t *testing.T) {
	t.Parallel()
	certFile, _, _ := testkit.SelfSignedCert(t)
	// Checked before the database is dialed: nothing listens on port 1.
	for name, env := range map[string][]string{
		"cert without key":  {"TLS_CERT_FILE=" + certFile, "TLS_KEY_FILE="},
		"unreadable key":    {"TLS_CERT_FILE=" + certFile, "TLS_KEY_FILE=" + filepath.Join(t.TempDir(), "none.pem")},
		"cert is not a key": {"TLS_CERT_FILE=" + certFile, "TLS_KEY_FILE=" + certFile},
	} {
		_, errOut, code := run(t, append([]string{"DATABASE_URL=postgres://127.0.0.1:1/none", "PORT=0", securityFingerprintKey}, env...), "serve")
		if code == 0 || !strings.Contains(errOut, "TLS_CERT_FILE") || !strings.Contains(errOut, "TLS_KEY_FILE") ||
			strings.Contains(errOut, "database not reachable") {
			t.Errorf("%s: exit %d\n%s", name, code, errOut)
		}
	}
}
