package backoffhttp_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stormguard/stormguard/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// mustPanic calls f and fails the test if f does not panic.
func mustPanic(t *testing.T, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	f()
}

// countingTransport wraps a RoundTripper and counts the response bodies it
// hands out and the ones closed, and the bytes read from each.
type countingTransport struct {
	base   http.RoundTripper
	sent   atomic.Int64
	opened atomic.Int64
	closed atomic.Int64
}

type countedBody struct {
	io.ReadCloser
	t      *countingTransport
	once   sync.Once
	read   atomic.Int64
	closes atomic.Int64
}

func (b *countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *countedBody) Close() error {
	b.closes.Add(1)
	b.once.Do(func() { b.t.closed.Add(1) })
	return b.ReadCloser.Close()
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.sent.Add(1)
	resp, err := c.base.RoundTrip(req)
	if resp != nil {
		c.opened.Add(1)
		resp.Body = &countedBody{ReadCloser: resp.Body, t: c}
	}
	return resp, err
}

// open is how many bodies were handed out and not closed.
func (c *countingTransport) open() int64 { return c.opened.Load() - c.closed.Load() }

// newLoopback returns a real server on 127.0.0.1 and a fresh http.Transport
// wrapped in a counting transport, both cleaned up when t ends.
func newLoopback(t testing.TB, h http.Handler) (*httptest.Server, *countingTransport) {
	t.Helper()
	srv := httptest.NewServer(h)
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return srv, &countingTransport{base: tr}
}

// fakeBase answers from a script without a network, for synctest bubbles and
// properties: each answer is a status code (with an optional Retry-After), or
// an error when status is zero. It closes every request body it receives, as
// a RoundTripper must, and tracks the response bodies it hands out.
type fakeBase struct {
	mu        sync.Mutex
	answers   []answer
	requests  []*http.Request
	bodies    []string // the request bodies received
	responses []*trackedBody
	reqBodies []*trackedReqBody
}

type answer struct {
	status     int
	retryAfter string
	err        error
}

type trackedBody struct {
	*strings.Reader
	closed atomic.Int32
	read   atomic.Int64
	size   int
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (b *trackedBody) Close() error { b.closed.Add(1); return nil }

type trackedReqBody struct {
	io.Reader
	closed atomic.Int32
}

func (b *trackedReqBody) Close() error { b.closed.Add(1); return nil }

func (f *fakeBase) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		f.bodies = append(f.bodies, string(b))
		req.Body.Close()
	}
	if len(f.answers) == 0 {
		panic("fakeBase: no answer left")
	}
	a := f.answers[0]
	if len(f.answers) > 1 {
		f.answers = f.answers[1:]
	}
	if a.status == 0 {
		return nil, a.err
	}
	text := "answer " + strconv.Itoa(len(f.requests)) + ": " + strconv.Itoa(a.status) + strings.Repeat(".", 100)
	body := &trackedBody{Reader: strings.NewReader(text), size: len(text)}
	f.responses = append(f.responses, body)
	h := http.Header{}
	if a.retryAfter != "" {
		h.Set("Retry-After", a.retryAfter)
	}
	return &http.Response{StatusCode: a.status, Header: h, Body: body, Request: req}, nil
}

func (f *fakeBase) sent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}
