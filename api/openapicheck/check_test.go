package openapicheck

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/yamldoc"
)

const testDoc = `
openapi: 3.0.3
info: {title: t, version: v}
paths:
  /v1/things/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Thing'}
        '404': {$ref: '#/components/responses/Err'}
        '204': {description: none}
  /v1/things/special:
    get:
      responses:
        '200': {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/Err'}}}}
  /v1/things:
    get:
      parameters:
        - {name: state, in: query, schema: {type: string, enum: [a, b]}}
        - {name: view, in: query, required: true, schema: {type: string}}
      responses:
        '200': {description: ok}
    post:
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: '#/components/schemas/Thing'}}}
      responses:
        '200': {description: ok}
components:
  responses:
    Err:
      description: error
      content: {application/json: {schema: {$ref: '#/components/schemas/Err'}}}
  schemas:
    Err:
      type: object
      additionalProperties: false
      required: [message]
      properties:
        message: {type: string}
    Thing:
      type: object
      additionalProperties: false
      required: [id, count, kind, at, tags]
      properties:
        id: {type: string, minLength: 1, maxLength: 4, pattern: '^[a-z]+$'}
        count: {type: integer, format: int64, minimum: 0, maximum: 10}
        ratio: {type: number, minimum: 0}
        kind: {type: string, enum: [x, y]}
        level: {type: integer, enum: [0, 1, 2]}
        at: {type: string, format: date-time}
        ok: {type: boolean}
        tags: {type: array, maxItems: 2, items: {type: string}}
        labels: {type: object, additionalProperties: {type: integer}}
        note: {type: string, nullable: true}
`

func mustLoad(t *testing.T, src string) *Document {
	t.Helper()
	d, err := Load([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCheckResponse(t *testing.T) {
	d := mustLoad(t, testDoc)
	valid := `{"id":"ab","count":3,"kind":"x","at":"2026-03-02T10:00:00Z","tags":["p"]}`
	cases := []struct {
		name   string
		method string
		path   string
		status int
		body   string
		want   []string // substrings of the error; none means valid
	}{
		{"valid", "GET", "/v1/things/t1", 200, valid, nil},
		{"valid full", "GET", "/v1/things/t1?x=1", 200, `{"id":"ab","count":10,"ratio":0.5,"kind":"y","level":2,"at":"2026-03-02T10:00:00.123+01:00","ok":true,"tags":[],"labels":{"a":1},"note":null}`, nil},
		{"literal path wins", "GET", "/v1/things/special", 200, `{"message":"m"}`, nil},
		{"error response via ref", "GET", "/v1/things/zz", 404, `{"message":"gone"}`, nil},
		{"no-content response", "GET", "/v1/things/zz", 204, ``, nil},
		{"no-content response with body", "GET", "/v1/things/zz", 204, `{}`, []string{"body must be empty"}},
		{"undocumented status", "GET", "/v1/things/t1", 500, `{}`, []string{"status 500 is not documented"}},
		{"unknown path", "GET", "/v2/things", 200, `{}`, []string{"path not documented"}},
		{"unknown method", "DELETE", "/v1/things", 200, ``, []string{"method not documented"}},
		{"empty segment is no id", "GET", "/v1/things/", 200, valid, []string{"path not documented"}},
		{"missing required", "GET", "/v1/things/t1", 200, `{"id":"ab","kind":"x","at":"2026-03-02T10:00:00Z","tags":[]}`, []string{`required property "count" is missing`}},
		{"unknown property", "GET", "/v1/things/t1", 200, strings.Replace(valid, `"id"`, `"extra":1,"id"`, 1), []string{`property "extra" is not documented`}},
		{"wrong types", "GET", "/v1/things/t1", 200, `{"id":5,"count":"3","kind":"x","at":"2026-03-02T10:00:00Z","tags":"p","ok":"yes"}`,
			[]string{"$.id: is a number, want a string", "$.count: is a string, want integer", "$.tags: is a string, want an array", "$.ok: is a string, want a boolean"}},
		{"not an integer", "GET", "/v1/things/t1", 200, strings.Replace(valid, `"count":3`, `"count":3.5`, 1), []string{"3.5 is not an integer"}},
		{"integer bounds", "GET", "/v1/things/t1", 200, strings.Replace(valid, `"count":3`, `"count":11`, 1), []string{"above the maximum"}},
		{"negative number", "GET", "/v1/things/t1", 200, strings.Replace(valid, `"count":3`, `"count":3,"ratio":-0.1`, 1), []string{"below the minimum"}},
		{"enum", "GET", "/v1/things/t1", 200, strings.Replace(valid, `"kind":"x"`, `"kind":"z","level":3`, 1), []string{`"z" is not one of`, "3 is not one of"}},
		{"date-time", "GET", "/v1/things/t1", 200, strings.Replace(valid, `2026-03-02T10:00:00Z`, `2026-03-02 10:00`, 1), []string{"not an RFC 3339 date-time"}},
		{"string bounds", "GET", "/v1/things/t1", 200, strings.Replace(valid, `"id":"ab"`, `"id":"abcde"`, 1), []string{"want at most 4"}},
		{"pattern", "GET", "/v1/things/t1", 200, strings.Replace(valid, `"id":"ab"`, `"id":"A1"`, 1), []string{"does not match"}},
		{"array bounds and items", "GET", "/v1/things/t1", 200, strings.Replace(valid, `["p"]`, `["p",1,"r"]`, 1), []string{"has 3 items", "$.tags[1]: is a number"}},
		{"map values", "GET", "/v1/things/t1", 200, strings.Replace(valid, `"id"`, `"labels":{"a":"b"},"id"`, 1), []string{"$.labels.a: is a string, want integer"}},
		{"null not nullable", "GET", "/v1/things/t1", 200, strings.Replace(valid, `"kind":"x"`, `"kind":null`, 1), []string{"$.kind: is null"}},
		{"not JSON", "GET", "/v1/things/t1", 200, `{"id":`, []string{"not JSON"}},
		{"trailing data", "GET", "/v1/things/t1", 200, valid + `{}`, []string{"after the JSON value"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := d.CheckResponse(c.method, c.path, c.status, []byte(c.body))
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("CheckResponse = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckResponse accepted %s", c.body)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestCheckRequest(t *testing.T) {
	d := mustLoad(t, testDoc)
	valid := `{"id":"ab","count":3,"kind":"x","at":"2026-03-02T10:00:00Z","tags":[]}`
	cases := []struct {
		name, method, path, body string
		want                     string
	}{
		{"valid body", "POST", "/v1/things", valid, ""},
		{"required body missing", "POST", "/v1/things", "", "body is empty"},
		{"invalid body", "POST", "/v1/things", `{"id":"ab"}`, `required property "count" is missing`},
		{"query ok", "GET", "/v1/things?state=a&view=full", "", ""},
		{"query enum", "GET", "/v1/things?state=c&view=full", "", `query.state: "c" is not one of`},
		{"query unknown", "GET", "/v1/things?page=2&view=full", "", `query parameter "page" is not documented`},
		{"query required", "GET", "/v1/things?state=a", "", `required query parameter "view" is missing`},
		{"unexpected body", "GET", "/v1/things?view=full", `{}`, "takes no request body"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := d.CheckRequest(c.method, c.path, []byte(c.body))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("CheckRequest = %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("CheckRequest = %v, want %q", err, c.want)
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	cases := []struct {
		name, old, new, want string
	}{
		{"unsupported keyword", "        ok: {type: boolean}", "        ok: {type: boolean, oneOf: []}", "components.schemas.Thing.properties.ok.oneOf: unsupported schema keyword"},
		{"dangling schema ref", "{$ref: '#/components/schemas/Err'}}}}", "{$ref: '#/components/schemas/Nope'}}}}", `$ref "#/components/schemas/Nope" does not resolve`},
		{"dangling response ref", "'404': {$ref: '#/components/responses/Err'}", "'404': {$ref: '#/components/responses/Gone'}", "does not resolve"},
		{"ref with siblings", "schema: {$ref: '#/components/schemas/Thing'}\n", "schema: {$ref: '#/components/schemas/Thing', type: object}\n", "$ref must stand alone"},
		{"undeclared path parameter", "        - {name: id, in: path, required: true, schema: {type: string}}\n", "", "path parameter {id} is not declared"},
		{"required not a property", "required: [message]", "required: [message, code]", `required property "code" is not among the properties`},
		{"array without items", "tags: {type: array, maxItems: 2, items: {type: string}}", "tags: {type: array}", "type array needs items"},
		{"bad type", "ok: {type: boolean}", "ok: {type: bool}", `unknown type "bool"`},
		{"bad pattern", "pattern: '^[a-z]+$'", "pattern: '^[a-z+$'", "pattern"},
		{"default response", "'204': {description: none}", "default: {description: none}", "default is not supported"},
		{"duplicate key", "        ok: {type: boolean}", "        ok: {type: boolean, type: string}", "properties.ok.type: duplicate key (first on line"},
		{"alias cycle", "        ok: {type: boolean}", "        ok: &c {type: object, properties: {again: *c}}", "nested deeper than 100 levels"},
		{"not 3.0", "openapi: 3.0.3", "openapi: 3.1.0", "want an OpenAPI 3.0 document"},
		{"path-level parameters", "  /v1/things:\n    get:", "  /v1/things:\n    parameters: []\n    get:", "path-level parameters are not supported"},
		{"other media type", "content: {application/json: {schema: {$ref: '#/components/schemas/Thing'}}}", "content: {text/plain: {schema: {type: string}}}", `media type "text/plain" is not supported`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(testDoc, c.old) {
				t.Fatalf("test document lacks %q", c.old)
			}
			_, err := Load([]byte(strings.Replace(testDoc, c.old, c.new, 1)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load = %v, want %q", err, c.want)
			}
			if c.name == "unsupported keyword" || c.name == "duplicate key" {
				line := strings.Count(testDoc[:strings.Index(testDoc, c.old)], "\n") + 1
				if ne, ok := err.(*yamldoc.Error); !ok || ne.Line != line {
					t.Errorf("error %#v does not name line %d, the line of the edit", err, line)
				}
			}
		})
	}
}

func TestCheckType(t *testing.T) {
	d := mustLoad(t, testDoc)
	type good struct {
		ID     string           `json:"id"`
		Count  int64            `json:"count"`
		Ratio  float64          `json:"ratio,omitempty"`
		Kind   string           `json:"kind"`
		Level  int              `json:"level,omitempty"`
		At     time.Time        `json:"at"`
		OK     *bool            `json:"ok,omitempty"`
		Tags   [1]string        `json:"tags"`
		Labels map[string]int64 `json:"labels,omitempty"`
		Note   *string          `json:"note,omitempty"`
		Skip   string           `json:"-"`
	}
	type base struct {
		ID    string `json:"id"`
		Count int64  `json:"count"`
	}
	type embedded struct {
		base
		Kind   string           `json:"kind"`
		Ratio  float64          `json:"ratio,omitzero"`
		Level  int              `json:"level,omitempty"`
		At     time.Time        `json:"at"`
		OK     bool             `json:"ok,omitempty"`
		Tags   tagList          `json:"tags"`
		Labels map[string]int64 `json:"labels,omitempty"`
		Note   *string          `json:"note,omitempty"`
	}
	type missing struct {
		ID    string    `json:"id"`
		Count int64     `json:"count"`
		Kind  string    `json:"kind"`
		At    time.Time `json:"at"`
		Tags  []string  `json:"tags"`
		Extra string    `json:"extra,omitempty"`
	}
	type wrong struct {
		ID     int               `json:"id"`
		Count  int64             `json:"count,omitempty"`
		Ratio  float64           `json:"ratio"`
		Kind   string            `json:"kind"`
		Level  int               `json:"level,omitempty"`
		At     string            `json:"at"`
		OK     bool              `json:"ok,omitempty"`
		Tags   []int             `json:"tags"`
		Labels map[string]string `json:"labels,omitempty"`
		Note   string            `json:"note,omitempty"`
	}
	if err := d.CheckType("Thing", good{}); err != nil {
		t.Errorf("good: %v", err)
	}
	err := d.CheckType("Thing", embedded{})
	if err == nil {
		t.Fatal("embedded struct with an optional note passed")
	}
	// The only difference of embedded is note: omitempty where the schema does not require it
	// — which is fine — and tags, a slice encoded as null when nil.
	if strings.Count(err.Error(), "\n")+1 != 1 || !strings.Contains(err.Error(), "$.tags") && !strings.Contains(err.Error(), "Thing.tags") {
		t.Errorf("embedded: want exactly the tags null error, got %v", err)
	}
	err = d.CheckType("Thing", missing{})
	for _, w := range []string{`Go field missing.Extra (json "extra") has no property`, `property "ratio" has no field`, `property "labels" has no field`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing: error %v lacks %q", err, w)
		}
	}
	err = d.CheckType("Thing", wrong{})
	for _, w := range []string{
		`Thing.id: Go type int encodes as integer, the schema says "string"`,
		"Thing.count: the schema requires it but Go field wrong.Count is omitted when empty",
		"Thing.ratio: Go field wrong.Ratio is always encoded but the schema does not require it",
		`Thing.tags[]: Go type int encodes as integer, the schema says "string"`,
		`Thing.labels.*: Go type string encodes as string, the schema says "integer"`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("wrong: error lacks %q", w)
		}
	}
	// A plain string for a date-time property is allowed; only time.Time demands the format.
	if err == nil || strings.Contains(err.Error(), "Thing.at") {
		t.Errorf("wrong: unexpected at error: %v", err)
	}
	if err := d.CheckEnum("Err", "x"); err == nil {
		t.Error("CheckEnum on a schema without enum passed")
	}
	if err := d.CheckType("Nope", good{}); err == nil {
		t.Error("CheckType on an unknown schema passed")
	}
}

type tagList []string

func TestDefaultDocumentLoads(t *testing.T) {
	d, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range d.Operations() {
		got = append(got, op.Method+" "+op.Path)
	}
	slices.Sort(got)
	want := []string{
		"DELETE /v1/freezes/{id}", "GET /v1/approvals", "GET /v1/approvals/{id}", "GET /v1/budgets",
		"GET /v1/evidence/{id}", "GET /v1/freezes", "GET /v1/leases/{id}", "POST /v1/approvals/{id}/approve", "POST /v1/approvals/{id}/deny",
		"POST /v1/decisions", "POST /v1/explain", "POST /v1/freezes", "POST /v1/leases/{id}/release",
	}
	if !slices.Equal(got, want) {
		t.Errorf("operations %q, want the decision API's %q", got, want)
	}
	if err := CheckResponse("GET", "/v1/approvals/ap_1", 404, []byte(`{"error":{"code":"not_found","message":"no approval"}}`)); err != nil {
		t.Error(err)
	}
	if err := CheckResponse("GET", "/v1/approvals/ap_1", 404, []byte(`{"error":{"code":"gone","message":"no approval"}}`)); err == nil {
		t.Error("unknown error code accepted")
	}
	if err := CheckRequest("GET", "/v1/approvals?state=pending", nil); err != nil {
		t.Error(err)
	}
	if err := CheckRequest("GET", "/v1/approvals?state=waiting", nil); err == nil {
		t.Error("unknown approval state accepted")
	}
}
