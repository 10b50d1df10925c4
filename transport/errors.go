package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/heepr/heeprd/actors"
)

// Errors the transport itself raises, beside the actors' sentinels.
var (
	ErrMissingCredentials = errors.New("missing credentials")
	ErrUnsupportedMedia   = errors.New("unsupported media type")
	ErrMethodNotAllowed   = errors.New("method not allowed")
)

// apiError is how one sentinel appears on the wire.
type apiError struct {
	sentinel error
	status   int
	code     string
}

// apiErrors maps every sentinel to its status and code; the first match wins.
var apiErrors = []apiError{
	{actors.ErrInvalidRequest, fasthttp.StatusBadRequest, "invalid_request"},
	{ErrMissingCredentials, fasthttp.StatusUnauthorized, "missing_credentials"},
	{actors.ErrKeyUnknown, fasthttp.StatusUnauthorized, "key_unknown"},
	{actors.ErrKeyRevoked, fasthttp.StatusUnauthorized, "key_revoked"},
	{actors.ErrKeyExpired, fasthttp.StatusUnauthorized, "key_expired"},
	{actors.ErrBootstrapUnknown, fasthttp.StatusUnauthorized, "bootstrap_unknown"},
	{actors.ErrBootstrapUsed, fasthttp.StatusUnauthorized, "bootstrap_used"},
	{actors.ErrBootstrapExpired, fasthttp.StatusUnauthorized, "bootstrap_expired"},
	{actors.ErrForbidden, fasthttp.StatusForbidden, "forbidden"},
	{actors.ErrNotFound, fasthttp.StatusNotFound, "not_found"},
	{ErrMethodNotAllowed, fasthttp.StatusMethodNotAllowed, "method_not_allowed"},
	{actors.ErrActiveKeyExists, fasthttp.StatusConflict, "active_key_exists"},
	{actors.ErrInvalidState, fasthttp.StatusConflict, "invalid_state"},
	{actors.ErrAgentPaused, fasthttp.StatusConflict, "agent_paused"},
	{actors.ErrTooLarge, fasthttp.StatusRequestEntityTooLarge, "payload_too_large"},
	{ErrUnsupportedMedia, fasthttp.StatusUnsupportedMediaType, "unsupported_media_type"},
	{actors.ErrIdempotencyReused, fasthttp.StatusUnprocessableEntity, "idempotency_key_reused"},
	{actors.ErrRateLimited, fasthttp.StatusTooManyRequests, "rate_limited"},
	{actors.ErrUnavailable, fasthttp.StatusServiceUnavailable, "unavailable"},
}

var internalError = apiError{actors.ErrInternal, fasthttp.StatusInternalServerError, "internal"}

// classify finds the wire form of an error.
func classify(err error) apiError {
	for _, e := range apiErrors {
		if errors.Is(err, e.sentinel) {
			return e
		}
	}
	return internalError
}

// message is the text a client sees. Errors from inside the server (storage, timeouts, bugs)
// get a fixed text: their detail may name paths or internals and belongs in the log.
func message(e apiError, err error) string {
	switch e.status {
	case fasthttp.StatusServiceUnavailable:
		return "the server cannot answer this now; retry after the Retry-After delay"
	case fasthttp.StatusInternalServerError:
		return "internal error; the server logged the details"
	}
	return err.Error()
}

// retryAfter is the Retry-After header for an error, in whole seconds (at least 1), or "".
func retryAfter(err error, status int) string {
	var limited *actors.RateLimitError
	switch {
	case errors.As(err, &limited):
		return strconv.FormatInt(limited.RetryAfterSeconds(), 10)
	case status == fasthttp.StatusServiceUnavailable:
		return "1"
	}
	return ""
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeError answers with the error envelope and returns the code it used.
func writeError(ctx *fasthttp.RequestCtx, err error) string {
	e := classify(err)
	if after := retryAfter(err, e.status); after != "" {
		ctx.Response.Header.Set("Retry-After", after)
	}
	body, merr := json.Marshal(errorBody{Error: errorDetail{Code: e.code, Message: message(e, err)}})
	if merr != nil {
		panic(fmt.Sprintf("BUG: encode error body: %v", merr))
	}
	ctx.Response.Header.SetContentType(contentJSON)
	ctx.SetStatusCode(e.status)
	ctx.SetBody(body)
	return e.code
}

// invalid wraps ErrInvalidRequest with a message for the client.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", actors.ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// tooLarge wraps ErrTooLarge, naming the limit that was hit.
func tooLarge(what string, limit int64) error {
	return fmt.Errorf("%w: %s exceeds the limit of %d bytes", actors.ErrTooLarge, what, limit)
}
