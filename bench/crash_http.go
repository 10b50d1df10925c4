package main

import (
	"bytes"
	"errors"
	"mime/multipart"
	"net"
	"net/textproto"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// callSpec is one request of the crash mode, kept whole so that a retry sends the same bytes.
type callSpec struct {
	method, path string
	auth         string // the whole Authorization header, "" for none
	idem         string // Idempotency-Key, "" for none
	contentType  string
	body         []byte
}

// answer is what one attempt of a request got back: a transport error, or a status and body.
type answer struct {
	err        error
	status     int
	code       string // the error envelope's code
	body       []byte
	retryAfter time.Duration
	sha        string // X-Content-SHA256
}

// newCrashEndpoint returns an endpoint with one connection that never retries by itself: the
// crash mode must see every broken attempt to know which writes are in doubt.
func newCrashEndpoint(addr string, conns int, timeout time.Duration) *endpoint {
	ep := newEndpoint(addr, conns, timeout)
	ep.hc.RetryIfErr = func(*fasthttp.Request, int, error) (bool, bool) { return false, false }
	return ep
}

// exchange sends c once.
func (e *endpoint) exchange(c callSpec) answer {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(c.method)
	req.SetRequestURI(e.base + c.path)
	if c.auth != "" {
		req.Header.Set(fasthttp.HeaderAuthorization, c.auth)
	}
	if c.idem != "" {
		req.Header.Set("Idempotency-Key", c.idem)
	}
	if c.body != nil {
		req.Header.SetContentType(c.contentType)
		req.SetBodyRaw(c.body)
	}

	if err := e.hc.Do(req, resp); err != nil {
		return answer{err: err}
	}
	a := answer{status: resp.StatusCode(), body: bytes.Clone(resp.Body()),
		sha: string(resp.Header.Peek("X-Content-SHA256"))}
	if a.status >= 300 {
		a.code = envelopeCode(a.body)
	}
	if s, err := strconv.Atoi(string(resp.Header.Peek(fasthttp.HeaderRetryAfter))); err == nil {
		a.retryAfter = time.Duration(s) * time.Second
	}
	return a
}

// codeOrStatus names a refusal: its envelope code, or "HTTP <status>" without one.
func (a answer) codeOrStatus() string {
	if a.code != "" {
		return a.code
	}
	return "HTTP " + strconv.Itoa(a.status)
}

// attemptClass sorts one attempt by what it tells about the write.
type attemptClass int

const (
	attemptAcked      attemptClass = iota // 2xx: done
	attemptRefused                        // 4xx other than 429: not done
	attemptNotSent                        // no connection: the server never saw it
	attemptRetryLater                     // 429: not done, try again after Retry-After
	attemptInDoubt                        // broken connection, timeout or 5xx: maybe done
)

// classify sorts an attempt. A 503 may follow a commit that failed or an actor that answers
// late, so like any 5xx it leaves the write in doubt.
func classify(a answer) attemptClass {
	switch {
	case a.err != nil && notSent(a.err):
		return attemptNotSent
	case a.err != nil:
		return attemptInDoubt
	case a.status >= 200 && a.status < 300:
		return attemptAcked
	case a.status == fasthttp.StatusTooManyRequests:
		return attemptRetryLater
	case a.status >= 500:
		return attemptInDoubt
	default:
		return attemptRefused
	}
}

// notSent reports whether err means the request never reached a server: the connection was
// refused or could not be made, or no connection was free.
func notSent(err error) bool {
	var op *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, fasthttp.ErrNoFreeConns):
		return true
	case errors.As(err, &op) && op.Op == "dial":
		return true
	}
	return false
}

// multipartBody encodes a delivery as multipart/form-data: text, urls, and each file as a part
// with a file name. It returns the body and its content type.
func multipartBody(d *deliveryContent) ([]byte, string, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if d.Text != "" {
		if err := w.WriteField("text", d.Text); err != nil {
			return nil, "", err
		}
	}
	for _, u := range d.URLs {
		if err := w.WriteField("urls", u); err != nil {
			return nil, "", err
		}
	}
	for _, f := range d.Files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+f.Name+`"`)
		h.Set("Content-Type", "application/octet-stream")
		part, err := w.CreatePart(h)
		if err != nil {
			return nil, "", err
		}
		if _, err := part.Write(f.Data); err != nil {
			return nil, "", err
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}
