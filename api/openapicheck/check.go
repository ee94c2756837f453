package openapicheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxErrors bounds the problems one check reports.
const maxErrors = 20

// Find returns the operation serving method and a concrete path such as
// "/v1/approvals/ap_1?state=pending" (the query is ignored). Of several matching templates the
// one with the most literal segments wins.
func (d *Document) Find(method, path string) (*Operation, error) {
	path, _, _ = strings.Cut(path, "?")
	segs := strings.Split(path, "/")
	var best *Operation
	bestLiterals, pathKnown := -1, false
	for _, op := range d.ops {
		literals, ok := match(op.segments, segs)
		if !ok {
			continue
		}
		pathKnown = true
		if op.Method == strings.ToUpper(method) && literals > bestLiterals {
			best, bestLiterals = op, literals
		}
	}
	switch {
	case best != nil:
		return best, nil
	case pathKnown:
		return nil, fmt.Errorf("%s %s: method not documented", method, path)
	}
	return nil, fmt.Errorf("%s %s: path not documented", method, path)
}

func match(tmpl, segs []string) (literals int, ok bool) {
	if len(tmpl) != len(segs) {
		return 0, false
	}
	for i, t := range tmpl {
		switch {
		case isParam(t):
			if segs[i] == "" {
				return 0, false
			}
		case t == segs[i]:
			literals++
		default:
			return 0, false
		}
	}
	return literals, true
}

// CheckResponse checks that status is documented for method and path and that body is valid
// against that response's JSON schema: types, required properties, no undocumented properties
// where additionalProperties is false, enums, formats and bounds. A response documented without
// content must have an empty body. All problems are reported, each with its JSON path.
func (d *Document) CheckResponse(method, path string, status int, body []byte) error {
	op, err := d.Find(method, path)
	if err != nil {
		return err
	}
	s, ok := op.responses[status]
	if !ok {
		return fmt.Errorf("%s %s: status %d is not documented (documented: %v)", method, op.Path, status, op.statuses())
	}
	if err := d.checkBody(s, body, false); err != nil {
		return fmt.Errorf("%s %s %d response: %w", method, op.Path, status, err)
	}
	return nil
}

// CheckRequest checks a request's query parameters and JSON body against the operation serving
// method and path (which may carry a query string).
func (d *Document) CheckRequest(method, path string, body []byte) error {
	op, err := d.Find(method, path)
	if err != nil {
		return err
	}
	var errs []error
	_, rawQuery, _ := strings.Cut(path, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		errs = append(errs, fmt.Errorf("query: %w", err))
	}
	for _, name := range op.QueryRequired {
		if !q.Has(name) {
			errs = append(errs, fmt.Errorf("required query parameter %q is missing", name))
		}
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s, ok := op.Query[k]
		if !ok {
			errs = append(errs, fmt.Errorf("query parameter %q is not documented", k))
			continue
		}
		for _, v := range q[k] {
			d.validate(s, v, "query."+k, &errs)
		}
	}
	if op.request == nil {
		if len(bytes.TrimSpace(body)) > 0 {
			errs = append(errs, errors.New("the operation takes no request body"))
		}
	} else if err := d.checkBody(op.request, body, !op.RequestRequired); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s %s request: %w", method, op.Path, errors.Join(errs...))
	}
	return nil
}

func (op *Operation) statuses() []int {
	var st []int
	for s := range op.responses {
		st = append(st, s)
	}
	sort.Ints(st)
	return st
}

func (d *Document) checkBody(s *Schema, body []byte, emptyOK bool) error {
	empty := len(bytes.TrimSpace(body)) == 0
	switch {
	case s == nil && !empty:
		return errors.New("body must be empty")
	case s == nil || empty && emptyOK:
		return nil
	case empty:
		return errors.New("body is empty")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	if dec.More() {
		return errors.New("body has data after the JSON value")
	}
	var errs []error
	d.validate(s, v, "$", &errs)
	return errors.Join(errs...)
}

// Validate checks a JSON value decoded with UseNumber (json.Number for numbers) against the named
// schema.
func (d *Document) Validate(schema string, v any) error {
	s, ok := d.schemas[schema]
	if !ok {
		return fmt.Errorf("no schema %q", schema)
	}
	var errs []error
	d.validate(s, v, "$", &errs)
	return errors.Join(errs...)
}

// deref follows $refs to the schema they name.
func (d *Document) deref(s *Schema) *Schema {
	for i := 0; s != nil && s.Ref != "" && i < 32; i++ {
		s = d.schemas[s.Ref]
	}
	return s
}

func fail(errs *[]error, at, format string, args ...any) {
	if len(*errs) < maxErrors {
		*errs = append(*errs, fmt.Errorf("%s: %s", at, fmt.Sprintf(format, args...)))
	}
}

func (d *Document) validate(s *Schema, v any, at string, errs *[]error) {
	s = d.deref(s)
	if s == nil {
		fail(errs, at, "schema does not resolve")
		return
	}
	if v == nil {
		if !s.Nullable && s.Type != "" {
			fail(errs, at, "is null, want %s", s.Type)
		}
		return
	}
	if len(s.Enum) > 0 && !inEnum(s.Enum, v) {
		fail(errs, at, "%s is not one of %v", show(v), s.Enum)
	}
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			fail(errs, at, "is %s, want an object", kind(v))
			return
		}
		d.validateObject(s, m, at, errs)
	case "array":
		a, ok := v.([]any)
		if !ok {
			fail(errs, at, "is %s, want an array", kind(v))
			return
		}
		if s.MinItems != nil && len(a) < *s.MinItems {
			fail(errs, at, "has %d items, want at least %d", len(a), *s.MinItems)
		}
		if s.MaxItems != nil && len(a) > *s.MaxItems {
			fail(errs, at, "has %d items, want at most %d", len(a), *s.MaxItems)
		}
		for i, e := range a {
			d.validate(s.Items, e, at+"["+strconv.Itoa(i)+"]", errs)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			fail(errs, at, "is %s, want a string", kind(v))
			return
		}
		validateString(s, str, at, errs)
	case "integer", "number":
		n, ok := v.(json.Number)
		if !ok {
			fail(errs, at, "is %s, want %s", kind(v), s.Type)
			return
		}
		validateNumber(s, n, at, errs)
	case "boolean":
		if _, ok := v.(bool); !ok {
			fail(errs, at, "is %s, want a boolean", kind(v))
		}
	}
}

func (d *Document) validateObject(s *Schema, m map[string]any, at string, errs *[]error) {
	for _, r := range s.Required {
		if _, ok := m[r]; !ok {
			fail(errs, at, "required property %q is missing", r)
		}
	}
	if s.MaxProperties != nil && len(m) > *s.MaxProperties {
		fail(errs, at, "has %d properties, want at most %d", len(m), *s.MaxProperties)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kat := at + "." + k
		if ps, ok := s.Properties[k]; ok {
			d.validate(ps, m[k], kat, errs)
			continue
		}
		switch {
		case s.AdditionalSet && s.Additional == nil:
			fail(errs, at, "property %q is not documented", k)
		case s.Additional != nil:
			d.validate(s.Additional, m[k], kat, errs)
		}
	}
}

func validateString(s *Schema, str, at string, errs *[]error) {
	n := utf8.RuneCountInString(str)
	if s.MinLength != nil && n < *s.MinLength {
		fail(errs, at, "is %d characters long, want at least %d", n, *s.MinLength)
	}
	if s.MaxLength != nil && n > *s.MaxLength {
		fail(errs, at, "is %d characters long, want at most %d", n, *s.MaxLength)
	}
	if s.Pattern != nil && !s.Pattern.MatchString(str) {
		fail(errs, at, "%q does not match %s", str, s.Pattern)
	}
	if s.Format == "date-time" {
		if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
			fail(errs, at, "%q is not an RFC 3339 date-time", str)
		}
	}
}

func validateNumber(s *Schema, n json.Number, at string, errs *[]error) {
	f, _, err := big.ParseFloat(n.String(), 10, 200, big.ToNearestEven)
	if err != nil {
		fail(errs, at, "%s is not a number", n)
		return
	}
	if s.Type == "integer" {
		if !f.IsInt() {
			fail(errs, at, "%s is not an integer", n)
		} else if s.Format == "int64" || s.Format == "int32" {
			bitsN := 63
			if s.Format == "int32" {
				bitsN = 31
			}
			i, _ := f.Int(nil)
			if i.BitLen() > bitsN {
				fail(errs, at, "%s does not fit %s", n, s.Format)
			}
		}
	}
	if s.Minimum != nil && f.Cmp(big.NewFloat(*s.Minimum)) < 0 {
		fail(errs, at, "%s is below the minimum %v", n, *s.Minimum)
	}
	if s.Maximum != nil && f.Cmp(big.NewFloat(*s.Maximum)) > 0 {
		fail(errs, at, "%s is above the maximum %v", n, *s.Maximum)
	}
}

func inEnum(enum []any, v any) bool {
	for _, e := range enum {
		switch ev := e.(type) {
		case string:
			if s, ok := v.(string); ok && s == ev {
				return true
			}
		case int, int64, float64:
			n, ok := v.(json.Number)
			if !ok {
				continue
			}
			a, _, err1 := big.ParseFloat(n.String(), 10, 200, big.ToNearestEven)
			b, _, err2 := big.ParseFloat(fmt.Sprint(ev), 10, 200, big.ToNearestEven)
			if err1 == nil && err2 == nil && a.Cmp(b) == 0 {
				return true
			}
		case bool:
			if b, ok := v.(bool); ok && b == ev {
				return true
			}
		}
	}
	return false
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

func show(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}
