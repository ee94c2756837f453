package yamldoc

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type point struct {
	Line int    `yaml:",line"`
	Name string `yaml:"name,required"`
	X    int64  `yaml:"x"`
	Amt  string `yaml:"amt" check:"positive"`
}

type doc struct {
	Title  string            `yaml:"title,required"`
	On     *bool             `yaml:"on"`
	Ratio  float64           `yaml:"ratio"`
	Small  int8              `yaml:"small"`
	Points []point           `yaml:"points"`
	Labels map[string]string `yaml:"labels"`
	Inner  *struct {
		Tags []string `yaml:"tags"`
	} `yaml:"inner"`
	Bomb nest `yaml:"bomb"`
}

type nest []nest

var checks = Checks{"positive": func(s string) error {
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("%q is negative", s)
	}
	return nil
}}

func decodeErrors(t *testing.T, src string) []string {
	t.Helper()
	var d doc
	err := Decode("f.yaml", []byte(src), &d, checks)
	if err == nil {
		t.Fatalf("accepted: %+v", d)
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want *Errors", err)
	}
	var out []string
	for _, e := range errs.Errors {
		out = append(out, e.Error())
	}
	return out
}

func TestDecode(t *testing.T) {
	var d doc
	src := `title: t
on: true
ratio: 0.5
small: -3
points:
  - {name: a, x: 1, amt: "2.5"}
  - name: b
labels: {k: v}
inner: {tags: [x, y]}
`
	if err := Decode("f.yaml", []byte(src), &d, checks); err != nil {
		t.Fatal(err)
	}
	if d.Title != "t" || d.On == nil || !*d.On || d.Ratio != 0.5 || d.Small != -3 || d.Labels["k"] != "v" ||
		len(d.Inner.Tags) != 2 || d.Inner.Tags[1] != "y" {
		t.Fatalf("decoded %+v", d)
	}
	want := []point{{Line: 6, Name: "a", X: 1, Amt: "2.5"}, {Line: 7, Name: "b"}}
	if fmt.Sprint(d.Points) != fmt.Sprint(want) {
		t.Fatalf("points %+v, want %+v", d.Points, want)
	}
}

func TestDecodeReportsEveryProblem(t *testing.T) {
	got := decodeErrors(t, `on: maybe
ratio: fast
small: 300
points:
  - {x: 1.5, amt: "-1"}
  - {name: b, colour: red}
  - 7
labels: [a]
inner: {tags: {a: b}}
on: false
`)
	want := []string{
		`f.yaml:1: on: "maybe" is not true or false`,
		`f.yaml:1: title: missing`,
		`f.yaml:2: ratio: "fast" is not a number`,
		`f.yaml:3: small: 300 is out of range`,
		`f.yaml:5: points[0].x: "1.5" is not an integer`,
		`f.yaml:5: points[0].amt: "-1" is negative`,
		`f.yaml:5: points[0].name: missing`,
		`f.yaml:6: points[1].colour: unknown key (want one of: amt, name, x)`,
		`f.yaml:7: points[2]: want a mapping, got "7"`,
		`f.yaml:8: labels: want a mapping, got a list`,
		`f.yaml:9: inner.tags: want a list, got a mapping`,
		`f.yaml:10: on: duplicate key (first on line 1)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDocumentProblems: syntax errors name the 1-based line of the problem, whichever part of the
// YAML library found it; empty and multi-document files and merge keys are refused.
func TestDocumentProblems(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"parser, list", "title: t\npoints:\n  - name: [unclosed\n", `f.yaml:3: invalid YAML: did not find expected ',' or ']'`},
		{"parser, flow mapping", "title: t\nlabels: {a: 1\n", `f.yaml:2: invalid YAML: did not find expected ',' or '}'`},
		{"scanner", "title: t\npoints:\n  - name: a: b\n", `f.yaml:3: invalid YAML: mapping values are not allowed in this context`},
		{"tab", "title: t\n\tx: 1\n", `f.yaml:2: invalid YAML: found a tab character that violates indentation`},
		{"empty", "", `f.yaml:1: empty document`},
		{"comments", "# none\n", `f.yaml:1: empty document`},
		{"null", "~\n", `f.yaml:1: empty document`},
		{"two documents", "title: a\n---\ntitle: b\n", `f.yaml:2: the file holds one YAML document`},
		{"merge key", "title: t\nlabels: {<<: {a: b}}\n", `f.yaml:2: labels: merge keys (<<) are not supported`},
		{"not a mapping", "- a\n", `f.yaml:1: want a mapping, got a list`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := decodeErrors(t, c.src)
			if len(got) != 1 || got[0] != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestAliasBomb: aliases expanding far beyond the document's size stop at its node budget, with
// one error, instead of costing memory and time.
func TestAliasBomb(t *testing.T) {
	bomb := "title: t\nbomb:\n    - &a0 []\n"
	prev := "a0"
	for i := 1; i < 30; i++ {
		name := fmt.Sprintf("a%d", i)
		bomb += fmt.Sprintf("    - &%s [*%s, *%s]\n", name, prev, prev)
		prev = name
	}
	var errs Errors
	d := NewDecoder(&errs, "bomb.yaml")
	root := d.Document([]byte(bomb), "the file")
	visits := 0
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		visits++
		switch n.Kind {
		case yaml.MappingNode:
			d.Mapping(n, "", func(_ string, _, v *yaml.Node) { walk(v) })
		case yaml.SequenceNode:
			d.Sequence(n, "", func(_ int, v *yaml.Node) { walk(v) })
		}
	}
	walk(root)
	if d.Stopped() == nil || len(errs.Errors) != 1 || !strings.Contains(errs.Errors[0].Msg, "document too large (more than 100000 nodes") {
		t.Fatalf("stopped %v, errors %v", d.Stopped(), errs.Error())
	}
	if visits > MinNodes+10 {
		t.Fatalf("%d visits after the budget", visits)
	}
	var v doc
	if err := Decode("bomb.yaml", []byte(bomb), &v, nil); err == nil || !strings.Contains(err.Error(), "document too large") {
		t.Fatalf("Decode: %v", err)
	}
}

// TestAliasCycle: an alias inside the node it names makes a cycle; the walk stops at MaxDepth
// with one problem, quickly, in the generic decoder and in a parser's own walk alike.
func TestAliasCycle(t *testing.T) {
	for _, src := range []string{"title: t\nbomb: &b [*b, *b]\n", "title: t\nbomb: [&b [[*b]]]\n"} {
		var v doc
		err := Decode("cycle.yaml", []byte(src), &v, checks)
		var errs *Errors
		if !errors.As(err, &errs) || !strings.Contains(err.Error(), "nested deeper than 100 levels") {
			t.Fatalf("%q: %v", src, err)
		}
	}
	var errs Errors
	d := NewDecoder(&errs, "cycle.yaml")
	root := d.Document([]byte("&m {a: *m}\n"), "the file")
	var walk func(n *yaml.Node) error
	walk = func(n *yaml.Node) error {
		return d.Pairs(n, "", func(_ string, _, v *yaml.Node) error { return walk(v) }, nil)
	}
	if err := walk(root); err != nil || d.Stopped() == nil || d.Stopped().Line != 1 || len(errs.Errors) != 1 {
		t.Fatalf("walk: %v, stopped %v, %d problems", err, d.Stopped(), len(errs.Errors))
	}
}

func TestErrorCapAndOrder(t *testing.T) {
	var errs Errors
	a, b := NewDecoder(&errs, "a.yaml"), NewDecoder(&errs, "b.yaml")
	b.FailAt(1, "x", "in b")
	for i := range MaxErrors + 2 {
		a.FailAt(MaxErrors+2-i, "", "in a")
	}
	err := errs.Err("a.yaml", "b.yaml")
	if len(errs.Errors) != MaxErrors || errs.Omitted != 3 {
		t.Fatalf("%d errors, %d omitted", len(errs.Errors), errs.Omitted)
	}
	if errs.Errors[0].File != "a.yaml" || errs.Errors[0].Line != 4 || errs.Errors[MaxErrors-1].File != "b.yaml" {
		t.Fatalf("order: first %v, last %v", errs.Errors[0], errs.Errors[MaxErrors-1])
	}
	if !strings.HasSuffix(err.Error(), "\n... and 3 more") {
		t.Errorf("text %q", err.Error())
	}
	var none Errors
	if none.Err() != nil {
		t.Error("no problems, but an error")
	}
}

// span is a struct that checks itself as a whole once read.
type span struct {
	From int `yaml:"from"`
	To   int `yaml:"to"`
}

func (s *span) CheckYAML(fail func(field, format string, args ...any)) {
	if s.To < s.From {
		fail("to", "%d is before from (%d)", s.To, s.From)
	}
}

func TestDecodeRunsChecker(t *testing.T) {
	var v struct {
		Spans []span `yaml:"spans"`
	}
	err := Decode("f.yaml", []byte("spans:\n  - {from: 1, to: 2}\n  - {from: 5, to: 3}\n"), &v, nil)
	if err == nil || err.Error() != "f.yaml:3: spans[1].to: 3 is before from (5)" {
		t.Fatalf("got %v, want the second span's problem at line 3", err)
	}
	if len(v.Spans) != 2 || v.Spans[1].To != 3 {
		t.Fatalf("decoded %+v", v.Spans)
	}
}
