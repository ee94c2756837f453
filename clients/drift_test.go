// Package clients holds the Python and TypeScript clients of the decision API (see their
// READMEs); this Go test keeps their wire types identical to api/openapi.yaml.
package clients

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/api/openapicheck"
)

// field is one property of a client's wire type.
type field struct {
	name     string
	optional bool     // TypeScript "?"; always false for Python
	refs     []string // the client's wire types its type names
}

// wireType is one client class or interface, named after its schema.
type wireType struct {
	name   string
	fields []field
}

// clientWire is what a client declares: its types and its enum values (alias or group -> values).
type clientWire struct {
	types []wireType
	enums map[string][]string
}

var (
	pyClass    = regexp.MustCompile(`^class ([A-Z]\w*)\(_Wire\):`)
	pyField    = regexp.MustCompile(`^    ([a-z][a-z0-9_]*): (.+?)(?: = .*)?$`)
	pyNested   = regexp.MustCompile(`^(\w+)\._nested = \{(.*)\}$`)
	pyNestedKV = regexp.MustCompile(`"(\w+)": \((\w+), "(one|list|map)"\)`)
	pyConst    = regexp.MustCompile(`^[A-Z][A-Z_]* = "([a-z_]+)"$`)

	tsIface = regexp.MustCompile(`^export interface (\w+) \{$`)
	tsField = regexp.MustCompile(`^  ([a-z][a-z0-9_]*)(\??): (.+);$`)
	tsAlias = regexp.MustCompile(`^export type (\w+) = ((?:"[a-z_]+"(?: \| )?)+);$`)
	tsLit   = regexp.MustCompile(`"([a-z_]+)"`)
	ident   = regexp.MustCompile(`[A-Z]\w*`)
)

// parsePython reads clients/python/agentcost_guard/wire.py: dataclasses deriving _Wire with one
// "name: type = default" line per field, nested types in X._nested, and string constants.
func parsePython(src string) clientWire {
	w := clientWire{enums: map[string][]string{}}
	var cur *wireType
	nested := map[string]map[string]string{}
	for _, line := range strings.Split(src, "\n") {
		if m := pyClass.FindStringSubmatch(line); m != nil {
			w.types = append(w.types, wireType{name: m[1]})
			cur = &w.types[len(w.types)-1]
			continue
		}
		if line != "" && !strings.HasPrefix(line, " ") {
			cur = nil
		}
		if m := pyNested.FindStringSubmatch(line); m != nil {
			nested[m[1]] = map[string]string{}
			for _, kv := range pyNestedKV.FindAllStringSubmatch(m[2], -1) {
				nested[m[1]][kv[1]] = kv[2]
			}
		}
		if m := pyConst.FindStringSubmatch(line); m != nil {
			w.enums["constants"] = append(w.enums["constants"], m[1])
		}
		if m := pyField.FindStringSubmatch(line); m != nil && cur != nil && !strings.HasPrefix(m[2], "ClassVar") {
			cur.fields = append(cur.fields, field{name: m[1]})
		}
	}
	for i := range w.types {
		for j := range w.types[i].fields {
			f := &w.types[i].fields[j]
			if ref, ok := nested[w.types[i].name][f.name]; ok {
				f.refs = []string{ref}
			}
		}
	}
	return w
}

// parseTypeScript reads clients/typescript/src/wire.ts: "export interface X {" with one
// "name?: type;" line per property, and string-literal union aliases.
func parseTypeScript(src string) clientWire {
	w := clientWire{enums: map[string][]string{}}
	var cur *wireType
	for _, line := range strings.Split(src, "\n") {
		if m := tsIface.FindStringSubmatch(line); m != nil {
			w.types = append(w.types, wireType{name: m[1]})
			cur = &w.types[len(w.types)-1]
			continue
		}
		if line == "}" {
			cur = nil
		}
		if m := tsAlias.FindStringSubmatch(line); m != nil {
			for _, l := range tsLit.FindAllStringSubmatch(m[2], -1) {
				w.enums[m[1]] = append(w.enums[m[1]], l[1])
			}
		}
		if m := tsField.FindStringSubmatch(line); m != nil && cur != nil {
			f := field{name: m[1], optional: m[2] == "?"}
			for _, id := range ident.FindAllString(m[3], -1) {
				if id != "Record" {
					f.refs = append(f.refs, id)
				}
			}
			if lits := tsLit.FindAllStringSubmatch(m[3], -1); lits != nil {
				key := cur.name + "." + f.name
				for _, l := range lits {
					w.enums[key] = append(w.enums[key], l[1])
				}
			}
			cur.fields = append(cur.fields, f)
		}
	}
	return w
}

// required are the schemas every client must model.
var required = []string{"DecisionRequest", "DecisionResponse", "Constraints", "BudgetStatus", "ReleaseRequest",
	"ReleaseResponse", "Settlement", "Approval", "ApprovalList", "ApproveRequest", "DenyRequest", "ErrorResponse", "Error"}

// check compares a client's wire types with the document; enumSchemas maps each of the client's
// enum declarations to the schemas whose enum values it must equal.
func check(doc *openapicheck.Document, w clientWire, checkOptional bool, enumSchemas map[string][]string) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	declared := map[string]bool{}
	for _, t := range w.types {
		declared[t.name] = true
	}
	for _, name := range required {
		if !declared[name] {
			fail("%s: not declared", name)
		}
	}
	for _, t := range w.types {
		s, ok := doc.Schema(t.name)
		if !ok {
			fail("%s: no schema of that name in api/openapi.yaml", t.name)
			continue
		}
		seen := map[string]bool{}
		for _, f := range t.fields {
			seen[f.name] = true
			p, ok := s.Properties[f.name]
			if !ok {
				fail("%s.%s: not a property of the schema (properties: %s)", t.name, f.name, strings.Join(sortedKeys(s.Properties), ", "))
				continue
			}
			if checkOptional && f.optional == slices.Contains(s.Required, f.name) {
				fail("%s.%s: optional in the client is %v, but required in the schema is %v", t.name, f.name, f.optional, !f.optional)
			}
			target := refOf(p)
			var refs []string
			for _, r := range f.refs {
				if declared[r] {
					refs = append(refs, r)
				}
			}
			switch {
			case len(refs) > 1:
				fail("%s.%s: names several wire types %v", t.name, f.name, refs)
			case len(refs) == 1 && refs[0] != target:
				fail("%s.%s: client type %s, schema $ref %q", t.name, f.name, refs[0], target)
			case len(refs) == 0 && target != "" && isObject(doc, target):
				fail("%s.%s: the schema refers to object %s, the client does not model it", t.name, f.name, target)
			}
		}
		for _, r := range s.Required {
			if !seen[r] {
				fail("%s: required property %s is missing", t.name, r)
			}
		}
	}
	for decl, schemas := range enumSchemas {
		got := slices.Clone(w.enums[decl])
		var want []string
		for _, name := range schemas {
			s, ok := doc.Schema(name)
			if !ok {
				fail("enum %s: no schema %s", decl, name)
				continue
			}
			for _, v := range s.Enum {
				want = append(want, fmt.Sprint(v))
			}
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			fail("enum %s: client %v, schemas %v %v", decl, got, schemas, want)
		}
	}
	return errs
}

// refOf returns the schema a property refers to directly, as array items or as map values.
func refOf(p *openapicheck.Schema) string {
	switch {
	case p.Ref != "":
		return p.Ref
	case p.Items != nil:
		return p.Items.Ref
	case p.Additional != nil:
		return p.Additional.Ref
	}
	return ""
}

func isObject(doc *openapicheck.Document, name string) bool {
	s, ok := doc.Schema(name)
	return ok && s.Type == "object"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var (
	pyEnums = map[string][]string{"constants": {"Decision", "ApprovalState", "SettlementStatus"}}
	tsEnums = map[string][]string{
		"DecisionKind": {"Decision"}, "ApprovalState": {"ApprovalState"}, "SettlementStatus": {"SettlementStatus"},
		"Settlement.source": {"CostSource"},
	}
)

type client struct {
	name, path    string
	parse         func(string) clientWire
	checkOptional bool
	enums         map[string][]string
}

var clientsUnderTest = []client{
	{"python", "python/agentcost_guard/wire.py", parsePython, false, pyEnums},
	{"typescript", "typescript/src/wire.ts", parseTypeScript, true, tsEnums},
}

// TestClientsMatchOpenAPI fails when a client's wire types drift from api/openapi.yaml: a
// property the schema does not have (a misspelling), a required one missing, a nested type that
// is not the schema's $ref, optionality (TypeScript) or enum values that differ.
func TestClientsMatchOpenAPI(t *testing.T) {
	doc, err := openapicheck.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clientsUnderTest {
		t.Run(c.name, func(t *testing.T) {
			src, err := os.ReadFile(c.path)
			if err != nil {
				t.Fatal(err)
			}
			w := c.parse(string(src))
			for _, e := range check(doc, w, c.checkOptional, c.enums) {
				t.Errorf("%s: %s", c.path, e)
			}
			n := 0
			for _, typ := range w.types {
				n += len(typ.fields)
			}
			if n < 80 { // the parser must see the fields, or the check above proves nothing
				t.Errorf("%s: parsed only %d fields of %d types", c.path, n, len(w.types))
			}
		})
	}
}

// TestDriftIsCaught mutates each client's source the way drift happens and expects the check to
// fail, naming the place.
func TestDriftIsCaught(t *testing.T) {
	doc, err := openapicheck.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clientsUnderTest {
		raw, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		src := string(raw)
		mutations := []struct{ name, old, new, want string }{
			{"misspelt request field", "estimated_cost_usd", "estimated_cost_usdd", "DecisionRequest.estimated_cost_usdd: not a property"},
			{"misspelt response field", "retry_after_sec", "retry_after_secs", "DecisionResponse.retry_after_secs: not a property"},
			{"removed required field", "policy_version", "policy_ver", "DecisionResponse: required property policy_version is missing"},
			{"enum value", `"require_approval"`, `"needs_approval"`, "enum"},
		}
		if c.name == "python" {
			mutations = append(mutations, struct{ name, old, new, want string }{"nested type",
				`"settlement": (Settlement, "one")`, `"settlement": (Constraints, "one")`, "ReleaseResponse.settlement: client type Constraints"})
		} else {
			mutations = append(mutations,
				struct{ name, old, new, want string }{"nested type", "settlement: Settlement;", "settlement: Constraints;", "ReleaseResponse.settlement: client type Constraints"},
				struct{ name, old, new, want string }{"optionality", "  decision_id: string;\n  rule_id", "  decision_id?: string;\n  rule_id", "DecisionResponse.decision_id: optional"})
		}
		for _, m := range mutations {
			t.Run(c.name+"/"+m.name, func(t *testing.T) {
				if !strings.Contains(src, m.old) {
					t.Fatalf("%s no longer contains %q; update the mutation", c.path, m.old)
				}
				errs := check(doc, c.parse(strings.Replace(src, m.old, m.new, 1)), c.checkOptional, c.enums)
				if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, m.want) }) {
					t.Errorf("want an error containing %q, got %q", m.want, errs)
				}
			})
		}
	}
}
