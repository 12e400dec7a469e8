package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// echoHandler answers each request with what it was sent, in the framing the path
// asks for, so that both clients can be held to the same answers.
func echoHandler(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the request: %v", err)
		}
		echo := r.Method + " " + r.URL.Path + " key=" + r.Header.Get("Idempotency-Key") +
			" auth=" + r.Header.Get("Authorization") + " version=" + r.Header.Get("Api-Version") +
			" type=" + r.Header.Get("Content-Type") + " body=" + string(body)
		switch r.URL.Path {
		case "/no-content":
			w.WriteHeader(http.StatusNoContent)
		case "/replayed":
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, echo)
		case "/chunked":
			// Flushed in pieces: Transfer-Encoding chunked.
			for i := range 3 {
				_, _ = io.WriteString(w, echo+" part="+strconv.Itoa(i)+";")
				w.(http.Flusher).Flush()
			}
		case "/gzip-chunked", "/gzip-length":
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				_, _ = io.WriteString(w, echo+" plain")
				return
			}
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			_, _ = io.WriteString(zw, echo+" "+strings.Repeat("x", 5000))
			_ = zw.Close()
			w.Header().Set("Content-Encoding", "gzip")
			if r.URL.Path == "/gzip-length" {
				w.Header().Set("Content-Length", strconv.Itoa(z.Len()))
				_, _ = w.Write(z.Bytes())
				return
			}
			half := z.Len() / 2
			_, _ = w.Write(z.Bytes()[:half])
			w.(http.Flusher).Flush()
			_, _ = w.Write(z.Bytes()[half:])
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, echo)
		default:
			_, _ = io.WriteString(w, echo)
		}
	})
}

// Both clients give the same status, body and replay mark for every framing: a body
// with a length, chunked, gzipped either way, none, and a connection the server closes.
func TestClientsReadEveryFraming(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(echoHandler(t))
	defer srv.Close()
	requests := []request{
		{method: http.MethodPost, path: "/plain", key: "k1", body: `{"a":1}`, bearer: "tok", apiVersion: "v1"},
		{method: http.MethodGet, path: "/plain", apiVersion: "v1"},
		{method: http.MethodPost, path: "/empty-post", key: "k2", apiVersion: "v1"},
		{method: http.MethodPost, path: "/no-content", key: "k3", body: "{}", apiVersion: "v1"},
		{method: http.MethodPost, path: "/replayed", key: "k4", body: "{}", apiVersion: "v2"},
		{method: http.MethodPost, path: "/chunked", key: "k5", body: "{}", apiVersion: "v1"},
		{method: http.MethodPost, path: "/gzip-chunked", key: "k6", body: "{}", apiVersion: "v1"},
		{method: http.MethodPost, path: "/gzip-length", key: "k7", body: "{}", apiVersion: "v1"},
		{method: http.MethodPost, path: "/close", key: "k8", body: "{}", apiVersion: "v1"},
		{method: http.MethodPost, path: "/plain", key: "k9", body: "{}", apiVersion: "v1"},
	}
	for _, gz := range []bool{true, false} {
		lean := newAgentClients(1, gz, clientLean).forAgent(srv.URL)
		std := newAgentClients(1, gz, clientStd).forAgent(srv.URL)
		if _, ok := lean.(*leanRequester); !ok {
			t.Fatalf("the lean clients gave %T for %s", lean, srv.URL)
		}
		for _, q := range requests {
			got, err := lean.do(t.Context(), q)
			if err != nil {
				t.Fatalf("gzip %v, %s %s: %v", gz, q.method, q.path, err)
			}
			got.body = bytes.Clone(got.body)
			want, err := std.do(t.Context(), q)
			if err != nil {
				t.Fatalf("net/http, gzip %v, %s %s: %v", gz, q.method, q.path, err)
			}
			if got.status != want.status || got.replayed != want.replayed || !bytes.Equal(got.body, want.body) {
				t.Errorf("gzip %v, %s %s:\nlean     %d %v %.120q\nnet/http %d %v %.120q",
					gz, q.method, q.path, got.status, got.replayed, got.body, want.status, want.replayed, want.body)
			}
		}
		lean.close()
	}
}

// A base URL with a path, a server behind a prefix, reaches the same paths with both
// clients.
func TestClientsKeepTheBaseURLsPath(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(echoHandler(t))
	defer srv.Close()
	q := request{method: http.MethodGet, path: "/checkout_sessions/cs_1", apiVersion: "v1"}
	for _, kind := range []string{clientLean, clientStd} {
		r := newAgentClients(1, false, kind).forAgent(srv.URL + "/acp")
		resp, err := r.do(t.Context(), q)
		if err != nil || !strings.HasPrefix(string(resp.body), "GET /acp/checkout_sessions/cs_1 ") {
			t.Errorf("%s: %v, %q", kind, err, resp.body)
		}
		r.close()
	}
}

// An https URL goes through net/http: the lean client speaks plain HTTP/1.1 only.
func TestLeanClientsLeaveHTTPSToNetHTTP(t *testing.T) {
	t.Parallel()
	if _, ok := newAgentClients(1, true, clientLean).forAgent("https://shop.example").(*stdRequester); !ok {
		t.Error("an https URL must go through net/http")
	}
	if _, ok := newAgentClients(1, true, clientStd).forAgent("http://127.0.0.1:1").(*stdRequester); !ok {
		t.Error("-client net/http must give net/http's client")
	}
}

// A kept-alive connection that the server closed while idle is redialled for a GET or a
// keyed request, as net/http does, and not for a POST without a key, which the
// server might have run.
func TestLeanClientRedialsAClosedIdleConnection(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(echoHandler(t))
	defer srv.Close()
	l := newAgentClients(1, false, clientLean).forAgent(srv.URL)
	defer l.close()
	for _, q := range []request{
		{method: http.MethodGet, path: "/plain"},
		{method: http.MethodPost, path: "/plain", key: "k", body: "{}"},
	} {
		if _, err := l.do(t.Context(), q); err != nil {
			t.Fatal(err)
		}
		srv.CloseClientConnections()
		resp, err := l.do(t.Context(), q)
		if err != nil || resp.status != http.StatusOK {
			t.Errorf("%s with key %q after the server closed the connection: %v, status %d", q.method, q.key, err, resp.status)
		}
	}
	unkeyed := request{method: http.MethodPost, path: "/plain", body: "{}"}
	if _, err := l.do(t.Context(), unkeyed); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections()
	var noResponse *noResponseError
	if _, err := l.do(t.Context(), unkeyed); !errors.As(err, &noResponse) {
		t.Errorf("a POST without a key after the server closed the connection: %v, want it not sent again", err)
	}
	if resp, err := l.do(t.Context(), unkeyed); err != nil || resp.status != http.StatusOK {
		t.Errorf("the next request must dial again: %v, status %d", err, resp.status)
	}
}

// The end of the context interrupts a request waiting for its response.
func TestLeanClientStopsWithItsContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	l := newAgentClients(1, false, clientLean).forAgent(srv.URL)
	defer l.close()
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := l.do(ctx, request{method: http.MethodPost, path: "/wait", key: "k", body: "{}"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("returned after %s", waited)
	}
}

// What is not an HTTP/1.1 response, or is cut short, is an error, never a response.
func TestLeanClientRefusesBrokenResponses(t *testing.T) {
	t.Parallel()
	for name, answer := range map[string]string{
		"not HTTP":          "SSH-2.0-OpenSSH\r\n",
		"cut-short body":    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"bad length":        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"bad chunk size":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"header no colon":   "HTTP/1.1 200 OK\r\nbroken\r\n\r\n",
		"gzip not gzipped":  "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
		"nothing":           "",
		"interim response":  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"too long a body":   "HTTP/1.1 200 OK\r\nContent-Length: 17000000\r\n\r\n",
		"too long to close": "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("x", maxBody+1),
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = conn.Read(buf)
			_, _ = io.WriteString(conn, answer)
			_ = conn.Close()
		}()
		l := newAgentClients(1, true, clientLean).forAgent("http://" + ln.Addr().String())
		resp, err := l.do(t.Context(), request{method: http.MethodPost, path: "/", key: "k", body: "{}"})
		if err == nil {
			t.Errorf("%s: got status %d, body %q and no error", name, resp.status, resp.body)
		}
		l.close()
		_ = ln.Close()
	}
}
