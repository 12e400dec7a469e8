package httpapi

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentic-commerce/agentic-commerce-server/internal/acpspec"
)

// compressionBodies are an ACP session and an ACP error as the server writes them
// (compact JSON), from the vendored specification's examples: the two sizes the
// compression threshold must tell apart.
func compressionBodies(tb testing.TB) (session, apiError []byte) {
	tb.Helper()
	var examples map[string]json.RawMessage
	if err := json.Unmarshal(acpspec.ReadFile(tb, "2026-04-17/examples.agentic_checkout.json"), &examples); err != nil {
		tb.Fatal(err)
	}
	compact := func(name string) []byte {
		var b bytes.Buffer
		if err := json.Compact(&b, examples[name]); err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		return b.Bytes()
	}
	return compact("update_checkout_session_response"), compact("error_400_requires_3ds")
}

// serveBody answers every request with body as JSON.
func serveBody(body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}

// compressedGet sends method to h behind withCompression with Accept-Encoding
// acceptEncoding ("" for none) and returns the response as it came off the wire.
func compressedGet(t *testing.T, h http.Handler, method, acceptEncoding string) (*http.Response, []byte) {
	t.Helper()
	srv := httptest.NewServer(withCompression()(h))
	t.Cleanup(srv.Close)
	var headers []string
	if acceptEncoding != "" {
		headers = []string{"Accept-Encoding", acceptEncoding}
	}
	return roundTrip(t, srv, method, "/", headers...)
}

// roundTrip sends method path to srv with headers (name, value pairs) and returns the
// response and its body as they came off the wire: unlike a default http.Transport, it
// adds no Accept-Encoding of its own and decompresses nothing.
func roundTrip(t *testing.T, srv *httptest.Server, method, path string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	transport := &http.Transport{DisableCompression: true}
	t.Cleanup(transport.CloseIdleConnections)
	resp, err := transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// A body is gzipped only when the client accepts gzip and the body reaches
// compressionMinSize; every answer, compressed or not, varies on Accept-Encoding.
func TestCompressionThresholdAndNegotiation(t *testing.T) {
	t.Parallel()
	session, apiError := compressionBodies(t)
	if len(session) < compressionMinSize || len(apiError) >= compressionMinSize {
		t.Fatalf("the examples no longer straddle the threshold: session %d, error %d bytes", len(session), len(apiError))
	}
	justUnder := bytes.Repeat([]byte("a"), compressionMinSize-1)
	atThreshold := bytes.Repeat([]byte("a"), compressionMinSize)
	for _, c := range []struct {
		name, acceptEncoding string
		body                 []byte
		wantGzip             bool
	}{
		{"session", "gzip", session, true},
		{"session, gzip among others", "br, gzip;q=0.5, deflate", session, true},
		{"at the threshold", "gzip", atThreshold, true},
		{"just under the threshold", "gzip", justUnder, false},
		{"error", "gzip", apiError, false},
		{"session, nothing accepted", "", session, false},
		{"session, identity", "identity", session, false},
		{"session, gzip refused", "gzip;q=0", session, false},
		{"session, only br", "br", session, false},
		{"session, only zstd", "zstd", session, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := compressedGet(t, serveBody(c.body), http.MethodGet, c.acceptEncoding)
			if !slices.Contains(resp.Header.Values("Vary"), "Accept-Encoding") {
				t.Errorf("Vary = %v, want Accept-Encoding", resp.Header.Values("Vary"))
			}
			switch got := resp.Header.Get("Content-Encoding"); {
			case c.wantGzip && got != "gzip":
				t.Fatalf("Content-Encoding = %q, want gzip", got)
			case !c.wantGzip && got != "":
				t.Fatalf("Content-Encoding = %q, want none", got)
			}
			if c.wantGzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("not gzip: %v", err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatalf("gunzip: %v", err)
				}
			}
			if !bytes.Equal(body, c.body) {
				t.Errorf("body differs from the one written (%d bytes, want %d)", len(body), len(c.body))
			}
		})
	}
}

// A body the handler encoded itself (as promhttp can) is passed through, not
// compressed a second time.
func TestCompressionLeavesEncodedBodiesAlone(t *testing.T) {
	t.Parallel()
	session, _ := compressionBodies(t)
	var pre bytes.Buffer
	zw := gzip.NewWriter(&pre)
	_, _ = zw.Write(bytes.Repeat(session, 4))
	_ = zw.Close()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(pre.Bytes())
	})
	resp, body := compressedGet(t, h, http.MethodGet, "gzip")
	if got := resp.Header.Values("Content-Encoding"); !slices.Equal(got, []string{"gzip"}) {
		t.Errorf("Content-Encoding = %v, want [gzip]", got)
	}
	if !bytes.Equal(body, pre.Bytes()) {
		t.Errorf("the handler's gzip body was changed: %d bytes, want %d", len(body), pre.Len())
	}
}

// Responses without a body get no Content-Encoding (a gzip stream of nothing would be
// a body), whatever the client accepts.
func TestCompressionBodilessResponses(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusNoContent, http.StatusNotModified} {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
		})
		resp, body := compressedGet(t, h, http.MethodGet, "gzip")
		if resp.StatusCode != status || resp.Header.Get("Content-Encoding") != "" || len(body) != 0 {
			t.Errorf("%d: got %d, Content-Encoding %q, %d body bytes", status, resp.StatusCode, resp.Header.Get("Content-Encoding"), len(body))
		}
	}
}

// A HEAD answer is never encoded, as before gzhttp (it skips HEAD, whose empty
// compressed body some proxies mishandle), has no body and still varies on
// Accept-Encoding.
func TestCompressionHead(t *testing.T) {
	t.Parallel()
	session, _ := compressionBodies(t)
	resp, body := compressedGet(t, serveBody(session), http.MethodHead, "gzip")
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("HEAD: status %d, %d body bytes", resp.StatusCode, len(body))
	}
	if got := resp.Header.Get("Content-Encoding"); got != "" {
		t.Errorf("HEAD Content-Encoding = %q, want none", got)
	}
	if !slices.Contains(resp.Header.Values("Vary"), "Accept-Encoding") {
		t.Errorf("HEAD Vary = %v", resp.Header.Values("Vary"))
	}
}

// A server-sent event stream (MCP's Streamable HTTP may answer with one) reaches the
// client event by event as the handler flushes, uncompressed, even though the client
// accepts gzip and each event is far under the threshold.
func TestCompressionStreamsEventStreams(t *testing.T) {
	t.Parallel()
	read := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, event := range []string{"one", "two"} {
			_, _ = io.WriteString(w, "data: "+event+"\n\n")
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("flush: %v", err)
				return
			}
			select {
			case <-read: // the client has the event while the handler still runs
			case <-time.After(5 * time.Second):
				t.Errorf("event %q was not delivered while the handler waited", event)
				return
			}
		}
	})
	srv := httptest.NewServer(withCompression()(h))
	t.Cleanup(srv.Close)
	req, err := http.NewRequest(http.MethodPost, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req) // Accept-Encoding set: nothing is decompressed
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Content-Encoding"); got != "" {
		t.Fatalf("Content-Encoding = %q, want none", got)
	}
	lines := bufio.NewReader(resp.Body)
	for _, want := range []string{"data: one", "data: two"} {
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("reading %q: %v", want, err)
		}
		if got := strings.TrimSpace(line); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		_, _ = lines.ReadString('\n') // the blank line that ends the event
		read <- struct{}{}
	}
}

// TestAcceptsGzipAgreesWithTheMiddleware: acceptsGzip decides whether a keyed response
// is recorded compressed and whether a compressed record is replayed as it is, so it
// must read Accept-Encoding exactly as gzhttp does when it compresses a fresh answer.
func TestAcceptsGzipAgreesWithTheMiddleware(t *testing.T) {
	t.Parallel()
	session, _ := compressionBodies(t)
	for _, ae := range []string{
		"", "gzip", "GZIP", " gzip ", "gzip;q=1", "gzip; q=0.5", "gzip;Q=0.5", "gzip;q=0", "gzip;q=0.000",
		"gzip;q=abc", "gzip;q=-1", "gzip;level=9", "gzip;level=9;q=0", "deflate, gzip", "br;q=1, gzip;q=0.1",
		"gzip;q=0, gzip", "x-gzip", "gzipx", "*", "*;q=1", "identity", "br, zstd", "gzip,", ",gzip", "gzip ; q=0.2",
	} {
		for _, method := range []string{http.MethodPost, http.MethodHead} {
			resp, _ := compressedGet(t, serveBody(session), method, ae)
			compressed := resp.Header.Get("Content-Encoding") == "gzip"
			r := httptest.NewRequest(method, "/", nil)
			if ae != "" {
				r.Header.Set("Accept-Encoding", ae)
			}
			if got := acceptsGzip(r); got != compressed {
				t.Errorf("%s with Accept-Encoding %q: acceptsGzip = %v, the middleware compressed: %v", method, ae, got, compressed)
			}
		}
	}
}

// TestGzipPackCompressesWhatTheMiddlewareWould: a body at the threshold is packed to
// gzip that reads back to it; one under it is kept as it is.
func TestGzipPackCompressesWhatTheMiddlewareWould(t *testing.T) {
	t.Parallel()
	session, apiError := compressionBodies(t)
	packed, gzipped := gzipPack(session)
	if !gzipped || len(packed) >= len(session) {
		t.Fatalf("session: gzipped %v, %d bytes of %d", gzipped, len(packed), len(session))
	}
	zr, err := gzip.NewReader(bytes.NewReader(packed))
	if err != nil {
		t.Fatal(err)
	}
	if back, err := io.ReadAll(zr); err != nil || !bytes.Equal(back, session) {
		t.Errorf("the packed session reads back to %d bytes (%v), want the session", len(back), err)
	}
	if kept, gzipped := gzipPack(apiError); gzipped || !bytes.Equal(kept, apiError) {
		t.Errorf("error: gzipped %v; want it kept as it is", gzipped)
	}
}
