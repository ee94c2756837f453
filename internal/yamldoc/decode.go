package yamldoc

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Checks are named checks of a scalar's text, which a struct field selects with a `check:"name"`
// tag; a check's error is reported at the value's line.
type Checks map[string]func(string) error

// Decode reads data, which must hold one YAML document, into v (a pointer to a struct) strictly:
// every unknown or duplicate key, value of the wrong kind, failed check and missing required field
// is reported, all at once, as an *Errors of `file:line: field: message`.
//
// Struct fields are named by their `yaml:"name"` tag (fields without one, or tagged "-", are not
// read); the option `required` makes a key mandatory, and an int field tagged `yaml:",line"`
// receives the line of its mapping. Strings, booleans, integers, floats, pointers, slices and
// maps with string keys are read; a null value leaves a field as it is.
func Decode(file string, data []byte, v any, checks Checks) error {
	var errs Errors
	d := NewDecoder(&errs, file)
	if root := d.Document(data, "the file"); root != nil {
		d.Value(root, "", reflect.ValueOf(v).Elem(), checks)
	}
	return errs.Err()
}

// Value reads n into v strictly, as Decode describes; field is n's path.
func (d *Decoder) Value(n *yaml.Node, field string, v reflect.Value, checks Checks) {
	if isNull(n) {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.Value(n, field, v.Elem(), checks)
	case reflect.Struct:
		d.structValue(n, field, v, checks)
	case reflect.Slice:
		d.Sequence(n, field, func(i int, item *yaml.Node) {
			e := reflect.New(v.Type().Elem()).Elem()
			d.Value(item, Index(field, i), e, checks)
			v.Set(reflect.Append(v, e))
		})
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			panic("yamldoc: map keys must be strings: " + v.Type().String())
		}
		d.Mapping(n, field, func(key string, _, val *yaml.Node) {
			if v.IsNil() {
				v.Set(reflect.MakeMap(v.Type()))
			}
			e := reflect.New(v.Type().Elem()).Elem()
			d.Value(val, Join(field, key), e, checks)
			v.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), e)
		})
	default:
		d.scalarValue(n, field, v)
	}
}

func (d *Decoder) scalarValue(n *yaml.Node, field string, v reflect.Value) {
	s, ok := d.Scalar(n, field)
	if !ok {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		if b, ok := d.Boolean(n, field); ok {
			v.SetBool(b)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if i, ok := d.Integer(n, field, math.MinInt64); ok {
			if v.OverflowInt(i) {
				d.Fail(n, field, "%d is out of range", i)
				return
			}
			v.SetInt(i)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if i, ok := d.Integer(n, field, 0); ok {
			if v.OverflowUint(uint64(i)) {
				d.Fail(n, field, "%d is out of range", i)
				return
			}
			v.SetUint(uint64(i))
		}
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") {
			d.Fail(n, field, "%q is not a number", s)
			return
		}
		v.SetFloat(f)
	default:
		panic("yamldoc: cannot decode into " + v.Type().String())
	}
}

// fieldInfo is one field of a struct as Decode reads it.
type fieldInfo struct {
	index    int
	name     string
	required bool
	check    string
}

func structFields(t reflect.Type) (fields []fieldInfo, line int) {
	line = -1
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("yaml")
		if !ok || tag == "-" || !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" && opts == "line" {
			line = i
			continue
		}
		fields = append(fields, fieldInfo{index: i, name: name, required: slices.Contains(strings.Split(opts, ","), "required"),
			check: sf.Tag.Get("check")})
	}
	return fields, line
}

func (d *Decoder) structValue(n *yaml.Node, field string, v reflect.Value, checks Checks) {
	fields, lineField := structFields(v.Type())
	if lineField >= 0 {
		v.Field(lineField).SetInt(int64(n.Line))
	}
	var want []string
	seen := map[string]bool{}
	if !d.Mapping(n, field, func(key string, k, val *yaml.Node) {
		i := slices.IndexFunc(fields, func(f fieldInfo) bool { return f.name == key })
		if i < 0 {
			if want == nil {
				for _, f := range fields {
					want = append(want, f.name)
				}
				slices.Sort(want)
			}
			d.Unknown(k, field, key, strings.Join(want, ", "))
			return
		}
		seen[key] = true
		f, path := fields[i], Join(field, key)
		if f.check != "" && !isNull(val) {
			check, ok := checks[f.check]
			if !ok {
				panic(fmt.Sprintf("yamldoc: no check %q for %s", f.check, v.Type()))
			}
			s, ok := d.Scalar(val, path)
			if !ok {
				return
			}
			if err := check(s); err != nil {
				d.Fail(val, path, "%v", err)
				return
			}
		}
		d.Value(val, path, v.Field(f.index), checks)
	}) {
		return
	}
	for _, f := range fields {
		if f.required && !seen[f.name] {
			d.Fail(n, Join(field, f.name), "missing")
		}
	}
	if c, ok := v.Addr().Interface().(Checker); ok {
		c.CheckYAML(func(sub, format string, args ...any) { d.Fail(n, Join(field, sub), format, args...) })
	}
}

// Checker is a struct that checks its values as a whole once Decode has read them. CheckYAML
// calls fail for each problem with the field's path below the struct; the problem is reported at
// the struct's line.
type Checker interface {
	CheckYAML(fail func(field, format string, args ...any))
}
