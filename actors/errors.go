package actors

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Sentinel errors, one per API error code an agent's state can produce. Handlers wrap them with
// the detail a caller needs ("order is delivered"); the transport maps each to its status and code
// with errors.Is, so the wrapped text becomes the error message.
var (
	ErrInvalidRequest   = errors.New("invalid request")
	ErrKeyUnknown       = errors.New("the API key matches no agent")
	ErrKeyRevoked       = errors.New("the API key was revoked by the owner")
	ErrKeyExpired       = errors.New("the API key is past its expiry; ask the owner to rotate it")
	ErrBootstrapUnknown = errors.New("the bootstrap token matches no live token")
	ErrBootstrapUsed    = errors.New(
		"the bootstrap token was already redeemed; ask the owner for a new one")
	ErrBootstrapExpired = errors.New(
		"the bootstrap token is past its expiry; ask the owner for a new one")
	ErrActiveKeyExists = errors.New("the agent already has a live API key; " +
		"the owner must revoke it before the agent registers again")
	ErrForbidden         = errors.New("forbidden")
	ErrNotFound          = errors.New("not found")
	ErrInvalidState      = errors.New("invalid state")
	ErrAgentPaused       = errors.New("the agent is paused and takes no new orders")
	ErrTooLarge          = errors.New("payload too large")
	ErrIdempotencyReused = errors.New(
		"the Idempotency-Key was already used with a different request")
	// ErrRateLimited is matched by every RateLimitError.
	ErrRateLimited = errors.New("the agent's request budget is used up")
	// ErrUnavailable means the agent's actor did not answer, is stopping, or its change could not
	// be made durable; the caller may retry.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrInternal means a handler failed in a way no request should cause (a recovered panic).
	ErrInternal = errors.New("internal error")
)

// RateLimitError says how long the caller should wait before its next request, and why.
type RateLimitError struct {
	RetryAfter time.Duration
	Reason     string // what was used up; empty means the agent's request budget
}

func (e *RateLimitError) Error() string {
	reason := e.Reason
	if reason == "" {
		reason = ErrRateLimited.Error()
	}
	return fmt.Sprintf("%s; retry after %d s", reason, e.RetryAfterSeconds())
}

// Unwrap lets errors.Is match ErrRateLimited.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// RetryAfterSeconds is the wait in whole seconds, rounded up and at least 1, as the Retry-After
// header says it.
func (e *RateLimitError) RetryAfterSeconds() int64 {
	return max(int64(math.Ceil(e.RetryAfter.Seconds())), 1)
}
