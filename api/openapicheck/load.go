// Package openapicheck loads the decision API's OpenAPI document and checks JSON bodies and Go
// types against it: HTTP tests of the server validate real responses with CheckResponse, and the
// wire types' tests compare each Go struct with its schema with CheckType, so the document and the
// code cannot drift.
//
// It understands the subset of OpenAPI 3.0 the document uses and refuses any other schema
// keyword, so that nothing in the document is silently ignored: type, properties, required,
// additionalProperties, items, enum, format (date-time is checked), minimum, maximum, minLength,
// maxLength, minItems, maxItems, maxProperties, pattern, nullable, $ref, description, example.
package openapicheck

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/api"
	"github.com/agentcost/agentcost/internal/yamldoc"
)

// Document is a loaded OpenAPI document.
type Document struct {
	schemas map[string]*Schema
	ops     []*Operation
}

// Operation is one method on one path of the document.
type Operation struct {
	// Method is the upper-case HTTP method.
	Method string
	// Path is the path template, e.g. "/v1/leases/{id}/release".
	Path string
	// Request is the JSON request body's schema name in components.schemas; empty without a body.
	Request string
	// RequestRequired reports whether the request body is required.
	RequestRequired bool
	// Responses maps each documented status to its JSON body's schema name; empty for no body.
	Responses map[int]string
	// Query lists the query parameters.
	Query map[string]*Schema
	// QueryRequired lists the required query parameters.
	QueryRequired []string

	segments  []string
	request   *Schema
	responses map[int]*Schema
}

// Schema is a parsed schema object.
type Schema struct {
	// Name is the components.schemas name for a named schema, empty for an inline one.
	Name string
	// Ref is the referenced schema's name when this schema is a $ref.
	Ref string

	// The other fields are the schema keywords of the same name, nil or zero when absent.
	Type          string
	Format        string
	Enum          []any
	Properties    map[string]*Schema
	Required      []string
	AdditionalSet bool    // additionalProperties is present
	Additional    *Schema // its schema; nil with AdditionalSet means false, empty means true
	Items         *Schema
	Minimum       *float64
	Maximum       *float64
	MinLength     *int
	MaxLength     *int
	MinItems      *int
	MaxItems      *int
	MaxProperties *int
	Pattern       *regexp.Regexp
	Nullable      bool
}

var defaultDoc = sync.OnceValues(func() (*Document, error) { return Load(api.OpenAPI) })

// Default returns the decision API's document (api.OpenAPI), loaded once.
func Default() (*Document, error) { return defaultDoc() }

// CheckResponse checks a response against the decision API's document; see Document.CheckResponse.
func CheckResponse(method, path string, status int, body []byte) error {
	d, err := Default()
	if err != nil {
		return err
	}
	return d.CheckResponse(method, path, status, body)
}

// CheckRequest checks a request against the decision API's document; see Document.CheckRequest.
func CheckRequest(method, path string, body []byte) error {
	d, err := Default()
	if err != nil {
		return err
	}
	return d.CheckRequest(method, path, body)
}

// Load parses an OpenAPI 3.0 document given as YAML (or JSON) and checks that every $ref resolves,
// every schema uses only supported keywords, and every path parameter is declared. The document is
// read with yamldoc (one document, no duplicate keys, aliases within a node budget); errors are
// *yamldoc.Error values naming openapi.yaml, the line and the field.
func Load(doc []byte) (*Document, error) {
	var errs yamldoc.Errors
	y := yamldoc.NewDecoder(&errs, docName)
	root := y.Document(doc, "an OpenAPI document")
	if root == nil {
		return nil, errs.Err()
	}
	l := loader{y: y, root: root, d: &Document{schemas: map[string]*Schema{}}}
	if err := l.load(); err != nil {
		return nil, err
	}
	return l.d, nil
}

// Schema returns the named schema of components.schemas.
func (d *Document) Schema(name string) (*Schema, bool) {
	s, ok := d.schemas[name]
	return s, ok
}

// SchemaNames returns the names of components.schemas, sorted.
func (d *Document) SchemaNames() []string {
	names := make([]string, 0, len(d.schemas))
	for n := range d.schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Operations returns the document's operations in path, then method order.
func (d *Document) Operations() []*Operation { return d.ops }

// docName names the document in errors.
const docName = "openapi.yaml"

type loader struct {
	y    *yamldoc.Decoder
	root *yaml.Node
	d    *Document
}

func errAt(n *yaml.Node, at, format string, args ...any) error {
	return &yamldoc.Error{File: docName, Line: n.Line, Field: at, Msg: fmt.Sprintf(format, args...)}
}

// get returns the value of key in mapping n, or nil.
func (l *loader) get(n *yaml.Node, key string) *yaml.Node {
	n = l.y.Node(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return l.y.Node(n.Content[i+1])
		}
	}
	return nil
}

// pairs calls fn for each key and value of mapping n (yamldoc.Decoder.Pairs: no duplicate, merge
// or non-string keys, aliases within the document's node budget).
func (l *loader) pairs(n *yaml.Node, at string, fn func(k string, v *yaml.Node) error) error {
	if err := l.y.Pairs(l.y.Node(n), at, func(k string, _, v *yaml.Node) error { return fn(k, v) }, nil); err != nil {
		return err
	}
	if e := l.y.Stopped(); e != nil {
		return e
	}
	return nil
}

func (l *loader) load() error {
	if v := l.get(l.root, "openapi"); v == nil || !strings.HasPrefix(v.Value, "3.0") {
		return errAt(l.root, "openapi", "want an OpenAPI 3.0 document")
	}
	comps := l.get(l.root, "components")
	schemas := l.get(comps, "schemas")
	if schemas == nil || schemas.Kind != yaml.MappingNode {
		return errAt(l.root, "components.schemas", "missing")
	}
	// Register names first so that $refs resolve in any order.
	if err := l.pairs(schemas, "components.schemas", func(k string, v *yaml.Node) error {
		l.d.schemas[k] = &Schema{Name: k}
		return nil
	}); err != nil {
		return err
	}
	if err := l.pairs(schemas, "components.schemas", func(k string, v *yaml.Node) error {
		s, err := l.schema(v, "components.schemas."+k)
		if err != nil {
			return err
		}
		s.Name = k
		*l.d.schemas[k] = *s
		return nil
	}); err != nil {
		return err
	}
	paths := l.get(l.root, "paths")
	if paths == nil || paths.Kind != yaml.MappingNode {
		return errAt(l.root, "paths", "missing")
	}
	return l.pairs(paths, "paths", func(p string, item *yaml.Node) error {
		if !strings.HasPrefix(p, "/") {
			return errAt(item, "paths."+p, "path must start with /")
		}
		return l.pairs(item, "paths."+p, func(method string, opNode *yaml.Node) error {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
			case "summary", "description":
				return nil
			case "parameters":
				return errAt(opNode, "paths."+p+".parameters", "path-level parameters are not supported; declare them on each operation")
			default:
				return errAt(opNode, "paths."+p+"."+method, "unknown key")
			}
			op, err := l.operation(p, strings.ToUpper(method), opNode)
			if err != nil {
				return err
			}
			l.d.ops = append(l.d.ops, op)
			return nil
		})
	})
}

func (l *loader) operation(path, method string, n *yaml.Node) (*Operation, error) {
	at := "paths." + path + "." + strings.ToLower(method)
	op := &Operation{Method: method, Path: path, Responses: map[int]string{}, Query: map[string]*Schema{},
		segments: strings.Split(path, "/"), responses: map[int]*Schema{}}
	declared := map[string]bool{}
	if params := l.get(n, "parameters"); params != nil {
		for i, pn := range params.Content {
			pat := fmt.Sprintf("%s.parameters[%d]", at, i)
			pn, err := l.resolve(l.y.Node(pn), "parameters", pat)
			if err != nil {
				return nil, err
			}
			name, in := l.get(pn, "name"), l.get(pn, "in")
			if name == nil || in == nil {
				return nil, errAt(pn, pat, "a parameter needs name and in")
			}
			s, err := l.schema(l.get(pn, "schema"), pat+".schema")
			if err != nil {
				return nil, err
			}
			switch in.Value {
			case "path":
				if r := l.get(pn, "required"); r == nil || r.Value != "true" {
					return nil, errAt(pn, pat, "path parameter %q must be required", name.Value)
				}
				declared[name.Value] = true
			case "query":
				op.Query[name.Value] = s
				if r := l.get(pn, "required"); r != nil && r.Value == "true" {
					op.QueryRequired = append(op.QueryRequired, name.Value)
				}
			case "header", "cookie":
			default:
				return nil, errAt(in, pat+".in", "unknown location %q", in.Value)
			}
		}
	}
	for _, seg := range op.segments {
		if isParam(seg) && !declared[seg[1:len(seg)-1]] {
			return nil, errAt(n, at, "path parameter %s is not declared", seg)
		}
	}
	if rb := l.get(n, "requestBody"); rb != nil {
		s, name, err := l.jsonContent(rb, at+".requestBody")
		if err != nil {
			return nil, err
		}
		op.request, op.Request = s, name
		op.RequestRequired = l.get(rb, "required") != nil && l.get(rb, "required").Value == "true"
	}
	resps := l.get(n, "responses")
	if resps == nil || len(resps.Content) == 0 {
		return nil, errAt(n, at, "an operation needs responses")
	}
	err := l.pairs(resps, at+".responses", func(code string, rn *yaml.Node) error {
		rat := at + ".responses." + code
		status, err := strconv.Atoi(code)
		if err != nil || status < 100 || status > 599 {
			return errAt(rn, rat, "status must be a number from 100 to 599 (default is not supported)")
		}
		rn, err = l.resolve(rn, "responses", rat)
		if err != nil {
			return err
		}
		if l.get(rn, "description") == nil {
			return errAt(rn, rat, "a response needs a description")
		}
		if h := l.get(rn, "headers"); h != nil {
			if err := l.pairs(h, rat+".headers", func(k string, hn *yaml.Node) error {
				_, err := l.resolve(hn, "headers", rat+".headers."+k)
				return err
			}); err != nil {
				return err
			}
		}
		s, name, err := l.jsonContent(rn, rat)
		if err != nil {
			return err
		}
		op.responses[status], op.Responses[status] = s, name
		return nil
	})
	return op, err
}

// jsonContent returns the application/json schema of a request body or response (nil without
// content) and its name when it is a $ref to a named schema.
func (l *loader) jsonContent(n *yaml.Node, at string) (*Schema, string, error) {
	content := l.get(n, "content")
	if content == nil {
		return nil, "", nil
	}
	var s *Schema
	err := l.pairs(content, at+".content", func(mt string, mn *yaml.Node) error {
		if mt != "application/json" {
			return errAt(mn, at+".content", "media type %q is not supported", mt)
		}
		var err error
		s, err = l.schema(l.get(mn, "schema"), at+".content.application/json.schema")
		return err
	})
	if err != nil || s == nil {
		return s, "", err
	}
	return s, s.Ref, nil
}

// resolve follows a $ref into components.<kind>.
func (l *loader) resolve(n *yaml.Node, kind, at string) (*yaml.Node, error) {
	ref := l.get(n, "$ref")
	if ref == nil {
		return n, nil
	}
	prefix := "#/components/" + kind + "/"
	if !strings.HasPrefix(ref.Value, prefix) {
		return nil, errAt(ref, at, "$ref %q does not point into components.%s", ref.Value, kind)
	}
	target := l.get(l.get(l.get(l.root, "components"), kind), strings.TrimPrefix(ref.Value, prefix))
	if target == nil {
		return nil, errAt(ref, at, "$ref %q does not resolve", ref.Value)
	}
	return target, nil
}

var schemaKeywords = map[string]bool{
	"$ref": true, "type": true, "format": true, "enum": true, "properties": true, "required": true,
	"additionalProperties": true, "items": true, "minimum": true, "maximum": true, "minLength": true,
	"maxLength": true, "minItems": true, "maxItems": true, "maxProperties": true, "pattern": true,
	"nullable": true, "description": true, "example": true,
}

func (l *loader) schema(n *yaml.Node, at string) (*Schema, error) {
	if n == nil {
		return nil, fmt.Errorf("OpenAPI document: %s: missing schema", at)
	}
	if n.Kind != yaml.MappingNode {
		return nil, errAt(n, at, "a schema must be a mapping")
	}
	s := &Schema{}
	if ref := l.get(n, "$ref"); ref != nil {
		if len(n.Content) != 2 {
			return nil, errAt(n, at, "$ref must stand alone (OpenAPI 3.0 ignores its siblings)")
		}
		name, ok := strings.CutPrefix(ref.Value, "#/components/schemas/")
		if !ok || l.d.schemas[name] == nil {
			return nil, errAt(ref, at, "$ref %q does not resolve", ref.Value)
		}
		s.Ref = name
		return s, nil
	}
	err := l.pairs(n, at, func(k string, v *yaml.Node) error {
		kat := at + "." + k
		if !schemaKeywords[k] {
			return errAt(v, kat, "unsupported schema keyword")
		}
		var err error
		switch k {
		case "type":
			switch v.Value {
			case "object", "array", "string", "integer", "number", "boolean":
				s.Type = v.Value
			default:
				return errAt(v, kat, "unknown type %q", v.Value)
			}
		case "format":
			s.Format = v.Value
		case "enum":
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				return errAt(v, kat, "enum must be a non-empty list")
			}
			for _, e := range v.Content {
				var val any
				if err := e.Decode(&val); err != nil {
					return errAt(e, kat, "%v", err)
				}
				s.Enum = append(s.Enum, val)
			}
		case "properties":
			s.Properties = map[string]*Schema{}
			err = l.pairs(v, kat, func(pk string, pv *yaml.Node) error {
				ps, err := l.schema(pv, kat+"."+pk)
				s.Properties[pk] = ps
				return err
			})
		case "required":
			err = v.Decode(&s.Required)
		case "additionalProperties":
			s.AdditionalSet = true
			if v.Kind == yaml.ScalarNode {
				var b bool
				if err := v.Decode(&b); err != nil {
					return errAt(v, kat, "must be a boolean or a schema")
				}
				if b {
					s.Additional = &Schema{}
				}
				return nil
			}
			s.Additional, err = l.schema(v, kat)
		case "items":
			s.Items, err = l.schema(v, kat)
		case "minimum":
			s.Minimum, err = decodePtr[float64](v)
		case "maximum":
			s.Maximum, err = decodePtr[float64](v)
		case "minLength":
			s.MinLength, err = decodePtr[int](v)
		case "maxLength":
			s.MaxLength, err = decodePtr[int](v)
		case "minItems":
			s.MinItems, err = decodePtr[int](v)
		case "maxItems":
			s.MaxItems, err = decodePtr[int](v)
		case "maxProperties":
			s.MaxProperties, err = decodePtr[int](v)
		case "pattern":
			s.Pattern, err = regexp.Compile(v.Value)
		case "nullable":
			err = v.Decode(&s.Nullable)
		}
		if err != nil {
			if _, ok := err.(*yamldoc.Error); ok {
				return err
			}
			return errAt(v, kat, "%v", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range s.Required {
		if s.Properties[r] == nil {
			return nil, errAt(n, at+".required", "required property %q is not among the properties", r)
		}
	}
	if s.Items != nil && s.Type != "array" || s.Type == "array" && s.Items == nil {
		return nil, errAt(n, at, "items goes with type array, and type array needs items")
	}
	return s, nil
}

func decodePtr[T any](n *yaml.Node) (*T, error) {
	var v T
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return &v, nil
}

func isParam(seg string) bool {
	return len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}'
}
