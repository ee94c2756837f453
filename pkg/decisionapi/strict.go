package decisionapi

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// strictScan checks a body for what encoding/json lets through silently: a duplicate key (the
// last one would win), a key that names a field only in another case (`AGENT_ID` would fill
// agent_id), invalid UTF-8 and lone UTF-16 surrogates (both would become U+FFFD), and unknown
// fields, naming the field in every case. It walks data along t, the type it decodes into, and
// stops quietly at a syntax error, which the decoder then reports with its offset.
func strictScan(data []byte, t reflect.Type) *APIError {
	s := scanner{data: data}
	s.path = s.pathBuf[:0]
	s.value(t)
	return s.err
}

// step is one step of the path to a value: a key of an object, or (key nil) an index of an array.
// The path is only formatted for an error, so that a valid body costs no path strings.
type step struct {
	key   []byte
	index int
}

// field formats the path as a field name: "constraints.max_tokens", "risk_tags[3]".
func (s *scanner) field() string {
	var b strings.Builder
	for _, st := range s.path {
		switch {
		case st.key == nil:
			b.WriteString("[" + strconv.Itoa(st.index) + "]")
		case b.Len() > 0:
			b.WriteByte('.')
			b.Write(st.key)
		default:
			b.Write(st.key)
		}
	}
	return b.String()
}

type scanner struct {
	data []byte
	i    int
	// path leads to the value being walked.
	path    []step
	pathBuf [8]step
	// err is the first violation found.
	err *APIError
	// stop is set at a violation or a syntax error: the walk ends.
	stop bool
}

// fail records a violation at the current path (the body itself when it is empty) and stops the
// walk.
func (s *scanner) fail(format string, args ...any) {
	field := s.field()
	if field == "" {
		s.err = NewError(CodeInvalidJSON, "request body: "+format, args...)
	} else {
		s.err = fieldErr(field, format, args...).APIError()
	}
	s.stop = true
}

func (s *scanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value walks one JSON value that decodes into t (nil: any type) at field path.
func (s *scanner) value(t reflect.Type) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	s.ws()
	if s.i >= len(s.data) {
		s.stop = true
		return
	}
	switch s.data[s.i] {
	case '{':
		s.object(t)
	case '[':
		s.array(t)
	case '"':
		s.str()
	default:
		// A number or a literal: the decoder checks it.
		for s.i < len(s.data) {
			switch s.data[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return
			}
			s.i++
		}
	}
}

func (s *scanner) array(t reflect.Type) {
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	s.i++ // [
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == ']' {
		s.i++
		return
	}
	for n := 0; !s.stop; n++ {
		s.path = append(s.path, step{index: n})
		s.value(elem)
		s.path = s.path[:len(s.path)-1]
		if s.next(']') {
			return
		}
	}
}

func (s *scanner) object(t reflect.Type) {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch {
	case t == nil || customDecoding(t):
	case t.Kind() == reflect.Struct:
		fields = fieldsOf(t)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	s.i++ // {
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		return
	}
	var seenBuf [16][]byte
	seen := seenBuf[:0]
	var seenSet map[string]struct{}
	for !s.stop {
		s.ws()
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			s.stop = true
			return
		}
		key, ok := s.str()
		if !ok {
			return
		}
		s.path = append(s.path, step{key: key})
		if seenSet != nil {
			if _, dup := seenSet[string(key)]; dup {
				s.fail("duplicate key")
				return
			}
			seenSet[string(key)] = struct{}{}
		} else {
			for _, k := range seen {
				if bytes.Equal(k, key) {
					s.fail("duplicate key")
					return
				}
			}
			if seen = append(seen, key); len(seen) == cap(seenBuf) {
				seenSet = make(map[string]struct{}, 2*len(seen))
				for _, k := range seen {
					seenSet[string(k)] = struct{}{}
				}
			}
		}
		vt := elem
		if fields != nil {
			ft, known := fields[string(key)]
			if !known {
				for name := range fields {
					if equalFoldASCII(name, string(key)) {
						s.fail("unknown field (field names are case-sensitive: %q)", name)
						return
					}
				}
				s.fail("unknown field")
				return
			}
			vt = ft
		}
		s.ws()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			s.stop = true
			return
		}
		s.i++
		s.value(vt)
		s.path = s.path[:len(s.path)-1]
		if s.next('}') {
			return
		}
	}
}

// next consumes the separator after a member or element: a comma (false: another follows) or the
// closing byte (true). Anything else, or the end of the data, stops the scan (true).
func (s *scanner) next(closing byte) bool {
	s.ws()
	if s.stop || s.i >= len(s.data) {
		s.stop = true
		return true
	}
	switch s.data[s.i] {
	case ',':
		s.i++
		return false
	case closing:
		s.i++
		return true
	}
	s.stop = true
	return true
}

// str walks a string at data[i] == '"', checking its UTF-8 and its escapes, and returns its
// value (decoded only when it has escapes). The path names the field for a violation.
func (s *scanner) str() ([]byte, bool) {
	start := s.i
	s.i++
	escaped := false
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			raw := s.data[start:s.i]
			if !escaped {
				return raw[1 : len(raw)-1], true
			}
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				s.stop = true
				return nil, false
			}
			return []byte(v), true
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.data) {
				s.stop = true
				return nil, false
			}
			if s.data[s.i+1] != 'u' {
				s.i += 2
				continue
			}
			r, ok := s.hex4(s.i + 2)
			if !ok {
				s.stop = true
				return nil, false
			}
			s.i += 6
			switch {
			case r >= 0xDC00 && r < 0xE000:
				s.fail("lone UTF-16 surrogate \\u%04X in a string", r)
				return nil, false
			case r >= 0xD800 && r < 0xDC00:
				low, ok := rune(0), false
				if s.i+1 < len(s.data) && s.data[s.i] == '\\' && s.data[s.i+1] == 'u' {
					low, ok = s.hex4(s.i + 2)
				}
				if !ok || low < 0xDC00 || low >= 0xE000 {
					s.fail("lone UTF-16 surrogate \\u%04X in a string", r)
					return nil, false
				}
				s.i += 6
			}
		case c < 0x20:
			s.stop = true // a control character: the decoder reports it
			return nil, false
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, size := utf8.DecodeRune(s.data[s.i:])
			if r == utf8.RuneError && size == 1 {
				s.fail("invalid UTF-8 at byte %d", s.i)
				return nil, false
			}
			s.i += size
		}
	}
	s.stop = true
	return nil, false
}

// hex4 reads four hex digits at data[at:].
func (s *scanner) hex4(at int) (rune, bool) {
	if at+4 > len(s.data) {
		return 0, false
	}
	var r rune
	for _, c := range s.data[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// customDecoding reports whether t decodes itself, so that its keys are not its fields.
func customDecoding(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshaler) || p.Implements(jsonUnmarshaler) || p.Implements(textUnmarshaler)
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// fieldsOf returns the JSON names of a struct's fields and their types, embedded structs
// flattened, as encoding/json sees them.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	addFields(t, out)
	fieldCache.Store(t, out)
	return out
}

func addFields(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name := tag
		if j := strings.IndexByte(tag, ','); j >= 0 {
			name = tag[:j]
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(ft, out)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, ok := out[name]; !ok {
			out[name] = f.Type
		}
	}
}
