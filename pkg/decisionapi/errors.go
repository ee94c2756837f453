package decisionapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Code is the machine-readable kind of an API error.
type Code string

// The error codes and the HTTP status each is sent with.
const (
	// CodeInvalidJSON (400): the body is not one well-formed JSON value of the right shape.
	CodeInvalidJSON Code = "invalid_json"
	// CodeInvalidField (400): a field (named in the error) has an invalid value or is unknown.
	CodeInvalidField Code = "invalid_field"
	// CodeUnauthorized (401): no bearer token, or an unknown one.
	CodeUnauthorized Code = "unauthorized"
	// CodeForbidden (403): the token's role or subject may not do this, or (open API) the request
	// came from a foreign Origin or named a non-loopback Host.
	CodeForbidden Code = "forbidden"
	// CodeNotFound (404): no such lease or approval.
	CodeNotFound Code = "not_found"
	// CodeMethodNotAllowed (405): the path exists but not for this method.
	CodeMethodNotAllowed Code = "method_not_allowed"
	// CodeRequestTimeout (408): the request body did not arrive within the server's read_timeout.
	CodeRequestTimeout Code = "request_timeout"
	// CodeConflict (409): the resource is not in a state that allows the operation (an approval
	// already resolved, a lease already released, an idempotency key reused with another body).
	CodeConflict Code = "conflict"
	// CodeBodyTooLarge (413): the body exceeds the server's limit.
	CodeBodyTooLarge Code = "body_too_large"
	// CodeUnsupportedMediaType (415): a request with a body whose Content-Type header is not
	// application/json.
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	// CodeRateLimited (429): the API itself is rate limited; retry after Retry-After.
	CodeRateLimited Code = "rate_limited"
	// CodeInternal (500): the server failed.
	CodeInternal Code = "internal"
	// CodeUnavailable (503): the ledger or policy is not available; retry after Retry-After.
	CodeUnavailable Code = "unavailable"
)

// Codes returns every error code.
func Codes() []Code {
	return []Code{CodeInvalidJSON, CodeInvalidField, CodeUnauthorized, CodeForbidden, CodeNotFound,
		CodeMethodNotAllowed, CodeRequestTimeout, CodeConflict, CodeBodyTooLarge, CodeUnsupportedMediaType,
		CodeRateLimited, CodeInternal, CodeUnavailable}
}

// Status returns the HTTP status code the error code is sent with (500 for an unknown code).
func (c Code) Status() int {
	switch c {
	case CodeInvalidJSON, CodeInvalidField:
		return http.StatusBadRequest
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeRequestTimeout:
		return http.StatusRequestTimeout
	case CodeConflict:
		return http.StatusConflict
	case CodeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ErrorResponse is the body of every error answer:
// {"error": {"code": "invalid_field", "field": "estimated_cost_usd", "message": "..."}}.
type ErrorResponse struct {
	Error APIError `json:"error"`
}

// APIError is an error answer of the API: the server returns it from handlers and writes it with
// WriteError; the client gets it back from a non-2xx response.
type APIError struct {
	// Status is the HTTP status code; it is not part of the body.
	Status int `json:"-"`
	// Code is the machine-readable kind of the error.
	Code Code `json:"code"`
	// Field names the request field at fault (400 only), e.g. "estimated_cost_usd" or
	// "constraints.max_tokens".
	Field string `json:"field,omitempty"`
	// Message explains the error to a human.
	Message string `json:"message"`
	// RetryAfterSec is sent as the Retry-After header (429, 503); it is not part of the body.
	RetryAfterSec int64 `json:"-"`
}

// NewError returns an APIError of code with its status and a formatted message.
func NewError(code Code, format string, args ...any) *APIError {
	return &APIError{Status: code.Status(), Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error formats the error as "400 invalid_field: estimated_cost_usd: ...".
func (e *APIError) Error() string {
	s := strconv.Itoa(e.Status) + " " + string(e.Code) + ": "
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Message
}

// FieldError reports an invalid request field. It maps to a 400 invalid_field APIError.
type FieldError struct {
	// Field is the field's JSON name, dotted for nested fields and indexed for list elements,
	// e.g. "risk_tags[3]".
	Field string
	// Message says what is wrong with the value.
	Message string
}

// Error formats the error as "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// APIError returns the error as a 400 invalid_field APIError.
func (e *FieldError) APIError() *APIError {
	return &APIError{Status: http.StatusBadRequest, Code: CodeInvalidField, Field: e.Field, Message: e.Message}
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// AsAPIError maps err to the APIError to answer with: an *APIError or *FieldError anywhere in its
// chain as itself, an *http.MaxBytesError as 413, anything else as 500 (without exposing its text).
// It returns nil for a nil error.
func AsAPIError(err error) *APIError {
	if err == nil {
		return nil
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.APIError()
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return NewError(CodeBodyTooLarge, "request body exceeds %d bytes", mbe.Limit)
	}
	return NewError(CodeInternal, "internal error")
}

// WriteError writes err as an error answer (see AsAPIError), with a Retry-After header when the
// error carries one.
func WriteError(w http.ResponseWriter, err error) {
	ae := AsAPIError(err)
	if ae == nil {
		ae = NewError(CodeInternal, "internal error")
	}
	status := ae.Status
	if status < 400 || status > 599 {
		status = ae.Code.Status()
	}
	if ae.RetryAfterSec > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(ae.RetryAfterSec, 10))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorResponse{Error: *ae})
}
