package openapicheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"
)

var (
	timeType      = reflect.TypeFor[time.Time]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
)

// CheckType compares the Go type of v (a value, or a reflect.Type) with the named schema,
// recursively, as encoding/json encodes it: every JSON field of a struct is a property and every
// property a field; the non-omitted fields (no omitempty or omitzero) are exactly the required
// properties; struct schemas forbid additional properties; maps have an additionalProperties
// schema; and each field's JSON type matches its property's type (time.Time is a date-time
// string). A required slice, map or pointer field must not encode as null unless its schema is
// nullable or its struct has its own MarshalJSON.
func (d *Document) CheckType(schema string, v any) error {
	s, ok := d.schemas[schema]
	if !ok {
		return fmt.Errorf("no schema %q", schema)
	}
	t, ok := v.(reflect.Type)
	if !ok {
		t = reflect.TypeOf(v)
	}
	c := typeChecker{d: d, seen: map[typePair]bool{}}
	c.check(s, t, schema)
	return errors.Join(c.errs...)
}

// CheckEnum checks that the named schema's enum holds exactly values.
func (d *Document) CheckEnum(schema string, values ...string) error {
	s := d.deref(d.schemas[schema])
	if s == nil {
		return fmt.Errorf("no schema %q", schema)
	}
	var doc []string
	for _, e := range s.Enum {
		doc = append(doc, fmt.Sprint(e))
	}
	want := slices.Clone(values)
	sort.Strings(doc)
	sort.Strings(want)
	if !slices.Equal(doc, want) {
		return fmt.Errorf("schema %s: enum %v, Go values %v", schema, doc, want)
	}
	return nil
}

type typePair struct {
	s *Schema
	t reflect.Type
}

type typeChecker struct {
	d    *Document
	seen map[typePair]bool
	errs []error
}

func (c *typeChecker) fail(at, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", at, fmt.Sprintf(format, args...)))
}

func (c *typeChecker) check(s *Schema, t reflect.Type, at string) {
	s = c.d.deref(s)
	if s == nil {
		c.fail(at, "schema does not resolve")
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if c.seen[typePair{s, t}] {
		return
	}
	c.seen[typePair{s, t}] = true
	want := jsonType(t)
	if want == "" {
		return // an interface: anything goes
	}
	if s.Type != want {
		c.fail(at, "Go type %s encodes as %s, the schema says %q", t, want, s.Type)
		return
	}
	switch {
	case t == timeType:
		if s.Format != "date-time" {
			c.fail(at, "Go time.Time needs format date-time, the schema says %q", s.Format)
		}
	case t.Kind() == reflect.Struct:
		c.checkStruct(s, t, at)
	case t.Kind() == reflect.Map:
		if len(s.Properties) > 0 || s.Additional == nil {
			c.fail(at, "Go map %s needs a schema with additionalProperties and no properties", t)
			return
		}
		c.check(s.Additional, t.Elem(), at+".*")
	case want == "array":
		c.check(s.Items, t.Elem(), at+"[]")
	}
}

func (c *typeChecker) checkStruct(s *Schema, t reflect.Type, at string) {
	if !s.AdditionalSet || s.Additional != nil {
		c.fail(at, "schema of Go struct %s must set additionalProperties: false", t)
	}
	fields := jsonFields(t)
	required := map[string]bool{}
	for _, r := range s.Required {
		required[r] = true
	}
	hasMarshaler := t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType)
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f := fields[name]
		ps, ok := s.Properties[name]
		if !ok {
			c.fail(at, "Go field %s.%s (json %q) has no property in the schema", t.Name(), f.goName, name)
			continue
		}
		switch {
		case f.omit && required[name]:
			c.fail(at+"."+name, "the schema requires it but Go field %s.%s is omitted when empty", t.Name(), f.goName)
		case !f.omit && !required[name]:
			c.fail(at+"."+name, "Go field %s.%s is always encoded but the schema does not require it", t.Name(), f.goName)
		}
		if !f.omit && !hasMarshaler && nullable(f.typ) && !c.d.deref(ps).Nullable {
			c.fail(at+"."+name, "Go field %s.%s (%s) encodes as null when nil, the schema is not nullable", t.Name(), f.goName, f.typ)
		}
		c.check(ps, f.typ, at+"."+name)
	}
	props := make([]string, 0, len(s.Properties))
	for p := range s.Properties {
		props = append(props, p)
	}
	sort.Strings(props)
	for _, p := range props {
		if _, ok := fields[p]; !ok {
			c.fail(at, "property %q has no field in Go struct %s", p, t)
		}
	}
}

func nullable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return true
	}
	return false
}

type jsonField struct {
	goName string
	typ    reflect.Type
	omit   bool
}

// jsonFields returns a struct's JSON fields as encoding/json sees them, embedded structs
// flattened (an outer field wins over an embedded one of the same name).
func jsonFields(t reflect.Type) map[string]jsonField {
	out := map[string]jsonField{}
	var embedded []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, f)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		omit := false
		for _, o := range strings.Split(opts, ",") {
			if o == "omitempty" || o == "omitzero" {
				omit = true
			}
		}
		out[name] = jsonField{goName: f.Name, typ: f.Type, omit: omit}
	}
	for _, f := range embedded {
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		for name, jf := range jsonFields(ft) {
			if _, ok := out[name]; !ok {
				out[name] = jf
			}
		}
	}
	return out
}

// jsonType is the JSON Schema type encoding/json gives values of t; "" for interfaces.
func jsonType(t reflect.Type) string {
	if t == timeType {
		return "string"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "string"
		}
		return "array"
	}
	return ""
}
