package decisionapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// DefaultBodyLimit is a request body limit that fits every valid request with room to spare: the
// largest valid decision request (64 risk tags, 32 metadata entries) is under 20 KiB.
const DefaultBodyLimit = 64 << 10

// Decode reads one JSON object from r into v, strictly: at most limit bytes (413 beyond), no
// unknown fields, no duplicate keys, no key in another case than its field's (`AGENT_ID`), no
// invalid UTF-8 or lone surrogates (which encoding/json would replace silently), no trailing data.
// An empty body leaves v as it is. Every error is an *APIError: 413 body_too_large, 400
// invalid_field naming the field for those violations and values of the wrong type, 400
// invalid_json otherwise. A limit of 0 or less means DefaultBodyLimit. Decode does not validate
// values; call Validate.
func Decode(r io.Reader, limit int64, v any) error {
	if limit <= 0 {
		limit = DefaultBodyLimit
	}
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return NewError(CodeBodyTooLarge, "request body exceeds %d bytes", mbe.Limit)
		}
		return NewError(CodeInvalidJSON, "reading request body: %v", err)
	}
	if int64(len(body)) > limit {
		return NewError(CodeBodyTooLarge, "request body exceeds %d bytes", limit)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := strictScan(body, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
		return NewError(CodeInvalidJSON, "unexpected data after the JSON object at byte %d", dec.InputOffset())
	}
	return nil
}

// unknownFieldPrefix is how encoding/json reports an unknown field; it has no typed error for it.
const unknownFieldPrefix = "json: unknown field "

func decodeError(err error) *APIError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return NewError(CodeInvalidJSON, "malformed JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		want := jsonKind(typ.Type.Kind().String())
		if typ.Field == "" {
			return NewError(CodeInvalidJSON, "request body must be %s, not %s", strings.Replace(want, "an ", "a JSON ", 1), jsonValue(typ.Value))
		}
		// A number of the right kind that does not fit: 1e400, or an integer past int64.
		if num, ok := strings.CutPrefix(typ.Value, "number "); ok &&
			(want == "a number" || want == "an integer" && !strings.ContainsAny(num, ".eE")) {
			return fieldErr(typ.Field, "%s is out of range", num).APIError()
		}
		return fieldErr(typ.Field, "must be %s, not %s", want, jsonValue(typ.Value)).APIError()
	case errors.Is(err, io.ErrUnexpectedEOF):
		return NewError(CodeInvalidJSON, "truncated JSON")
	case strings.HasPrefix(err.Error(), unknownFieldPrefix):
		name := strings.TrimPrefix(err.Error(), unknownFieldPrefix)
		if s, uerr := strconv.Unquote(name); uerr == nil {
			name = s
		}
		return fieldErr(name, "unknown field").APIError()
	}
	return NewError(CodeInvalidJSON, "invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonValue names the JSON value encoding/json describes as "string", "object", "number 1.5"...
func jsonValue(v string) string {
	switch v {
	case "string", "bool", "array", "object":
		return jsonKind(v)
	}
	if num, ok := strings.CutPrefix(v, "number "); ok {
		return num
	}
	return v
}

// jsonKind names a Go kind as the JSON value it decodes from.
func jsonKind(kind string) string {
	switch {
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "a boolean"
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "slice", kind == "array":
		return "an array"
	case kind == "map", kind == "struct", kind == "object":
		return "an object"
	}
	return "a " + kind
}
