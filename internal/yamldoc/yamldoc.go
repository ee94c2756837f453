// Package yamldoc reads the YAML files the distribution loads (policy and overlay files, price
// files, policy test cases, the OpenAPI document) one way: one document, a walk over its nodes
// that bounds alias expansion and nesting, and every problem reported at once as
// `file:line: field: message`. Callers read the files through internal/boundedfile, the one size
// bound, before parsing.
//
// A Decoder walks the node tree for parsers with rules of their own (the policy, the price file);
// Decode fills typed structs strictly (unknown keys, wrong kinds, bad values and missing required
// fields are all reported).
package yamldoc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

const (
	// MaxErrors bounds the problems one load reports; further ones are counted in Errors.Omitted.
	MaxErrors = 50
	// MinNodes is the least number of node visits, after aliases, a document may cost. A
	// document's budget is the larger of MinNodes and twice its size in bytes, so that a file
	// without aliases never reaches it and an alias bomb stops early.
	MinNodes = 100_000
	// MaxDepth bounds how deep mappings and lists nest (an alias may make a cycle, which would
	// nest without end).
	MaxDepth = 100
	// maxAliasChain bounds how many aliases are followed to reach a node.
	maxAliasChain = 64
)

// Error is one problem in a file, located by file, line and field path.
type Error struct {
	// File is the file's name.
	File string
	// Line is the 1-based line, 0 when unknown.
	Line int
	// Field is the path of the field, e.g. rules[1].constraints.rate_limit; empty for the document.
	Field string
	// Msg says what is wrong.
	Msg string
}

// Error formats the problem as `file:line: field: message`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors lists every problem found in one load (a file, or a file and its overlays), in file and
// line order once sorted by Err.
type Errors struct {
	// Errors are the problems found, at most MaxErrors.
	Errors []*Error
	// Omitted counts further problems left out after the first MaxErrors.
	Omitted int
}

// Error returns one problem per line.
func (e *Errors) Error() string {
	lines := make([]string, 0, len(e.Errors)+1)
	for _, fe := range e.Errors {
		lines = append(lines, fe.Error())
	}
	if e.Omitted > 0 {
		lines = append(lines, fmt.Sprintf("... and %d more", e.Omitted))
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual problems.
func (e *Errors) Unwrap() []error {
	out := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		out[i] = fe
	}
	return out
}

// Add records a problem, or counts it as omitted beyond MaxErrors.
func (e *Errors) Add(fe *Error) {
	if len(e.Errors) >= MaxErrors {
		e.Omitted++
		return
	}
	e.Errors = append(e.Errors, fe)
}

// Err sorts the problems by file (in the order files lists them; others last) and line, and
// returns e, or nil when there is none.
func (e *Errors) Err(files ...string) error {
	if len(e.Errors) == 0 {
		return nil
	}
	rank := func(file string) int {
		if i := slices.Index(files, file); i >= 0 {
			return i
		}
		return len(files)
	}
	slices.SortStableFunc(e.Errors, func(x, y *Error) int {
		if x.File != y.File {
			return rank(x.File) - rank(y.File)
		}
		return x.Line - y.Line
	})
	return e
}

// Decoder walks one file's node tree and records its problems, each with a line.
type Decoder struct {
	errs   *Errors
	file   string
	nodes  int
	budget int
	depth  int
	big    bool
	stop   *Error // why the walk stopped, when big
}

// NewDecoder returns a decoder for the file named file whose problems go to errs.
func NewDecoder(errs *Errors, file string) *Decoder {
	return &Decoder{errs: errs, file: file, budget: MinNodes}
}

// Stopped returns the problem that ended the walk early (the node budget or MaxDepth exceeded),
// nil while it goes on. It is recorded already; a parser that stops at its first problem returns it.
func (d *Decoder) Stopped() *Error { return d.stop }

// halt ends the walk with a problem.
func (d *Decoder) halt(n *yaml.Node, format string, args ...any) {
	d.big = true
	d.stop = d.errorAt(n, "", format, args...)
	d.errs.Add(d.stop)
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the problems go.yaml.in/yaml/v3 raises in its parser (not its
// scanner): it prints their 0-based mark line as is, so the 1-based line is one more.
var yamlParserProblems = []string{
	"did not find expected <stream-start>", "did not find expected <document start>",
	"did not find expected node content", "did not find expected '-' indicator",
	"did not find expected key", "did not find expected ',' or ']'", "did not find expected ',' or '}'",
	"found undefined tag handle", "found duplicate %YAML directive", "found incompatible YAML document",
	"found duplicate %TAG directive",
}

// Document parses data, which must hold one YAML document, and returns its root node; nil when
// the document is empty, null or unparsable (each reported). what names the file's kind in the
// error for a second document ("a policy file").
func (d *Decoder) Document(data []byte, what string) *yaml.Node {
	d.budget = max(MinNodes, 2*len(data))
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.FailAt(1, "", "empty document")
			return nil
		}
		d.syntax(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			d.syntax(err)
		} else {
			d.FailAt(extra.Line, "", "%s holds one YAML document", what)
		}
		return nil
	}
	if len(doc.Content) == 0 {
		d.FailAt(1, "", "empty document")
		return nil
	}
	root := d.Node(doc.Content[0])
	if isNull(root) {
		d.Fail(root, "", "empty document")
		return nil
	}
	return root
}

// syntax reports a parser error with its 1-based line.
func (d *Decoder) syntax(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if slices.Contains(yamlParserProblems, msg) {
		line++ // also right without a line: both marks were on line 0
	}
	d.FailAt(line, "", "invalid YAML: %s", msg)
}

// FailAt records a problem at a line.
func (d *Decoder) FailAt(line int, field, format string, args ...any) {
	d.errs.Add(d.errorLine(line, field, format, args...))
}

// Fail records a problem at a node's line.
func (d *Decoder) Fail(n *yaml.Node, field, format string, args ...any) {
	d.errs.Add(d.errorAt(n, field, format, args...))
}

// Node follows aliases and counts the visit, so an alias bomb stops at the document's budget.
func (d *Decoder) Node(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxAliasChain; i++ {
		n = n.Alias
	}
	d.nodes++
	if d.nodes > d.budget && !d.big {
		d.halt(n, "document too large (more than %d nodes after aliases)", d.budget)
	}
	return n
}

// enter counts a level of nesting; false (reported once) beyond MaxDepth, which stops the walk.
func (d *Decoder) enter(n *yaml.Node) bool {
	if d.big {
		return false
	}
	d.depth++
	if d.depth > MaxDepth {
		d.depth--
		d.halt(n, "document nested deeper than %d levels (an alias cycle?)", MaxDepth)
		return false
	}
	return true
}

func (d *Decoder) leave() { d.depth-- }

// isNull reports whether n is absent: nil, null, or an alias left unresolved.
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.AliasNode || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// kindName names what n is, for messages: a mapping, a list, or its quoted value.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

// Join returns the path of key under field: field.key.
func Join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// Entry returns the path of a user-named entry of field: field["key"].
func Entry(field, key string) string { return field + "[" + strconv.Quote(key) + "]" }

// Index returns the path of a list item: field[i].
func Index(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

// Mapping calls fn for each key of a mapping node, rejecting (and skipping) duplicate, merge and
// non-string keys. It reports false when n is absent (null) or not a mapping (reported).
func (d *Decoder) Mapping(n *yaml.Node, field string, fn func(key string, k, v *yaml.Node)) bool {
	if isNull(n) {
		return false
	}
	err := d.Pairs(n, field, func(key string, k, v *yaml.Node) error {
		fn(key, k, v)
		return nil
	}, func(e *Error) { d.errs.Add(e) })
	if e := (*Error)(nil); errors.As(err, &e) {
		d.errs.Add(e)
		return false
	}
	return true
}

// Pairs calls fn for each key of mapping node n, following aliases within the document's budget,
// and stops at the first error fn returns. A bad key (duplicate, merge or not a string) is an
// *Error that goes to skip when skip is not nil, which lets the walk go on, and stops it
// otherwise. Pairs returns the error that stopped it; n not being a mapping is one (an *Error).
func (d *Decoder) Pairs(n *yaml.Node, field string, fn func(key string, k, v *yaml.Node) error, skip func(*Error)) error {
	if n == nil || n.Kind != yaml.MappingNode {
		what := "nothing"
		if n != nil {
			what = kindName(n)
		}
		return d.errorAt(n, field, "want a mapping, got %s", what)
	}
	if !d.enter(n) {
		return nil
	}
	defer d.leave()
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content) && !d.big; i += 2 {
		k, v := d.Node(n.Content[i]), d.Node(n.Content[i+1])
		var bad *Error
		switch {
		case k == nil || k.Kind != yaml.ScalarNode:
			bad = d.errorAt(k, field, "keys must be strings")
		case k.ShortTag() == "!!merge":
			bad = d.errorAt(k, field, "merge keys (<<) are not supported")
		default:
			if first, dup := seen[k.Value]; dup {
				bad = d.errorAt(k, Join(field, k.Value), "duplicate key (first on line %d)", first)
			}
		}
		if bad != nil {
			if skip == nil {
				return bad
			}
			skip(bad)
			continue
		}
		seen[k.Value] = k.Line
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

// errorAt returns a problem at n's line, not recorded.
func (d *Decoder) errorAt(n *yaml.Node, field, format string, args ...any) *Error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return d.errorLine(line, field, format, args...)
}

func (d *Decoder) errorLine(line int, field, format string, args ...any) *Error {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &Error{File: d.file, Line: line, Field: field, Msg: msg}
}

// Object is Mapping for a value that must be present: a missing value is reported as such, want
// saying what it should hold.
func (d *Decoder) Object(n *yaml.Node, field, want string, fn func(key string, k, v *yaml.Node)) bool {
	if isNull(n) {
		d.Fail(n, field, "missing (want a mapping with %s)", want)
		return false
	}
	return d.Mapping(n, field, fn)
}

// Sequence calls fn for each item of a list node; false when n is absent (null) or not a list
// (reported).
func (d *Decoder) Sequence(n *yaml.Node, field string, fn func(i int, v *yaml.Node)) bool {
	if isNull(n) {
		return false
	}
	if n.Kind != yaml.SequenceNode {
		d.Fail(n, field, "want a list, got %s", kindName(n))
		return false
	}
	if !d.enter(n) {
		return true
	}
	defer d.leave()
	for i, item := range n.Content {
		if d.big {
			break
		}
		fn(i, d.Node(item))
	}
	return true
}

// Unknown reports an unknown key of field, listing the keys wanted.
func (d *Decoder) Unknown(k *yaml.Node, field, key, want string) {
	d.Fail(k, Join(field, key), "unknown key (want one of: %s)", want)
}

// Scalar reads a single value; a missing one or a collection is reported.
func (d *Decoder) Scalar(n *yaml.Node, field string) (string, bool) {
	if isNull(n) {
		d.Fail(n, field, "missing value")
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.Fail(n, field, "want a single value, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// Name reads a non-empty string.
func (d *Decoder) Name(n *yaml.Node, field string) (string, bool) {
	s, ok := d.Scalar(n, field)
	if ok && strings.TrimSpace(s) == "" {
		d.Fail(n, field, "must not be empty")
		return "", false
	}
	return s, ok
}

// Integer reads an integer of at least lowest.
func (d *Decoder) Integer(n *yaml.Node, field string, lowest int64) (int64, bool) {
	s, ok := d.Scalar(n, field)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if n.ShortTag() != "!!int" || err != nil {
		d.Fail(n, field, "%q is not an integer", s)
		return 0, false
	}
	if v < lowest {
		d.Fail(n, field, "%d is below the minimum of %d", v, lowest)
		return 0, false
	}
	return v, true
}

// Boolean reads true or false.
func (d *Decoder) Boolean(n *yaml.Node, field string) (bool, bool) {
	s, ok := d.Scalar(n, field)
	if !ok {
		return false, false
	}
	v, err := strconv.ParseBool(s)
	if n.ShortTag() != "!!bool" || err != nil {
		d.Fail(n, field, "%q is not true or false", s)
		return false, false
	}
	return v, true
}
