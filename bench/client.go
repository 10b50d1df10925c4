package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// httpError is an answer with an unexpected status, with the code of its error envelope.
type httpError struct {
	Status int
	Code   string // "" when the body is not an error envelope
}

func (e *httpError) Error() string {
	if e.Code == "" {
		return "HTTP " + strconv.Itoa(e.Status)
	}
	return "HTTP " + strconv.Itoa(e.Status) + " " + e.Code
}

// class names the error in the tally: the status and the envelope code, such as "503 unavailable".
func (e *httpError) class() string {
	if e.Code == "" {
		return strconv.Itoa(e.Status)
	}
	return strconv.Itoa(e.Status) + " " + e.Code
}

// newHTTPError reads the envelope {"error":{"code":...}} of a failed answer.
func newHTTPError(status int, body []byte) *httpError {
	return &httpError{Status: status, Code: envelopeCode(body)}
}

// envelopeCode returns the code of an error envelope, or "" if body is not one.
func envelopeCode(body []byte) string {
	if len(body) == 0 || !bytes.Contains(body, []byte(`"error"`)) {
		return ""
	}
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil {
		return ""
	}
	return env.Error.Code
}

// errClass names any request error for the tally: an HTTP status and code, or a "net ..." class
// for failures below HTTP.
func errClass(err error) string {
	var he *httpError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &he):
		return he.class()
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return "net timeout"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "net no_free_conns"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "net conn_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, fasthttp.ErrConnectionClosed):
		return "net conn_closed"
	default:
		return "net other"
	}
}

// responseClass names a finished exchange: "" when the status is want, else its error class.
func responseClass(err error, resp *fasthttp.Response, want int) string {
	if err != nil {
		return errClass(err)
	}
	if status := resp.StatusCode(); status != want {
		return newHTTPError(status, resp.Body()).class()
	}
	return ""
}

// endpoint is one listener of the target: a HostClient that dials only the loopback address it
// was given (it never follows redirects), and the base URL requests are built on.
type endpoint struct {
	hc      *fasthttp.HostClient
	base    string // "http://127.0.0.1:8080"
	timeout time.Duration
}

// newEndpoint returns an endpoint keeping at most conns keep-alive connections to addr.
func newEndpoint(addr string, conns int, timeout time.Duration) *endpoint {
	return &endpoint{
		hc: &fasthttp.HostClient{
			Addr: addr, MaxConns: conns, ReadTimeout: timeout, WriteTimeout: timeout,
			MaxConnWaitTimeout: timeout, MaxIdleConnDuration: 30 * time.Second,
			NoDefaultUserAgentHeader: true,
		},
		base:    "http://" + addr,
		timeout: timeout,
	}
}

// call sends one request and checks its status. A non-nil in is sent as JSON; a non-nil out
// receives the JSON answer. A status other than want is an *httpError.
func (e *endpoint) call(method, path, auth string, in any, want int, out any) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(e.base + path)
	if auth != "" {
		req.Header.Set(fasthttp.HeaderAuthorization, auth)
	}
	if in != nil {
		body, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}

	if err := e.hc.Do(req, resp); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode() != want {
		return fmt.Errorf("%s %s: %w", method, path, newHTTPError(resp.StatusCode(), resp.Body()))
	}
	if out != nil {
		if err := json.Unmarshal(resp.Body(), out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}
