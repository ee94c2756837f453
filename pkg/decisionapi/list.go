package decisionapi

import (
	"net/url"
	"strconv"
)

// Paging of the list endpoints (GET /v1/approvals and GET /v1/budgets): a page holds at most
// limit items; a response with next_cursor has more, fetched by passing it back as cursor (with
// the same other parameters). No next_cursor means the last page. Cursors are opaque.
const (
	// QueryLimit and QueryCursor are the paging query parameters.
	QueryLimit  = "limit"
	QueryCursor = "cursor"
	// DefaultListLimit is the page size when limit is not given.
	DefaultListLimit = 100
	// MaxListLimit is the largest page size a caller may ask for.
	MaxListLimit = 1000
	// maxCursorLen bounds a cursor; the server's own are far shorter.
	maxCursorLen = 1024
)

// ListParams are a list request's paging parameters.
type ListParams struct {
	// Limit is the page size, 1 to MaxListLimit; 0 means DefaultListLimit.
	Limit int
	// Cursor is a previous page's next_cursor; empty for the first page.
	Cursor string
}

// PageSize returns the limit to apply: Limit, or DefaultListLimit when it is 0.
func (p ListParams) PageSize() int {
	if p.Limit <= 0 {
		return DefaultListLimit
	}
	return p.Limit
}

// ParseListParams reads limit and cursor from a list request's query. A limit that is not an
// integer from 1 to MaxListLimit, or an over-long cursor, is a *FieldError naming the parameter.
func ParseListParams(q url.Values) (ListParams, error) {
	var p ListParams
	if s := q.Get(QueryLimit); q.Has(QueryLimit) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			return ListParams{}, fieldErr(QueryLimit, "must be an integer from 1 to %d, got %q", MaxListLimit, s)
		}
		p.Limit = n
	}
	if c := q.Get(QueryCursor); q.Has(QueryCursor) {
		if c == "" || len(c) > maxCursorLen {
			return ListParams{}, fieldErr(QueryCursor, "is not a cursor this server issued")
		}
		p.Cursor = c
	}
	return p, nil
}

// Query returns the paging parameters as query values, leaving out the defaults.
func (p ListParams) Query() url.Values {
	q := url.Values{}
	if p.Limit > 0 {
		q.Set(QueryLimit, strconv.Itoa(p.Limit))
	}
	if p.Cursor != "" {
		q.Set(QueryCursor, p.Cursor)
	}
	return q
}
