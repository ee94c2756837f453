package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/agentcost/agentcost/internal/money"
)

// flagSet is a command's flags and the text of its --help.
type flagSet struct {
	*flag.FlagSet
	e        *env
	path     string
	synopsis string
	desc     string
	hidden   map[string]bool
	// out and formats are --output's value and its allowed formats, when the command prints data.
	out     *string
	formats []string
}

// newFlags starts the flags of the command at path; synopsis shows its arguments and desc says
// what it does.
func newFlags(e *env, path, synopsis, desc string) *flagSet {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flagSet{FlagSet: fs, e: e, path: path, synopsis: synopsis, desc: desc, hidden: map[string]bool{}}
}

// output registers --output (and -o) with the formats the command can print; the first is the
// default.
func (f *flagSet) output(formats ...string) *string {
	v := new(string)
	*v = formats[0]
	usage := "output `FORMAT`: " + strings.Join(formats, "|")
	f.StringVar(v, "output", formats[0], usage)
	f.StringVar(v, "o", formats[0], "shorthand for --output")
	f.hidden["o"] = true
	f.out, f.formats = v, formats
	return v
}

// parse parses args, flags and positional arguments in any order ("--" ends the flags), and
// checks the number of positional arguments (max < 0: any number) and the --output format.
// --help prints the usage and ends the program with exit code 0.
func (f *flagSet) parse(args []string, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if err == flag.ErrHelp {
				f.usage(f.e.stdout)
				return nil, &cliError{code: exitOK}
			}
			return nil, usageErr("%s: %v (see --help)", f.path, err)
		}
		rest := f.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < minArgs:
		return nil, usageErr("%s: missing argument (usage: %s %s)", f.path, f.path, f.synopsis)
	case maxArgs >= 0 && len(pos) > maxArgs:
		return nil, usageErr("%s: unexpected argument %q (usage: %s %s)", f.path, pos[maxArgs], f.path, f.synopsis)
	case f.out != nil && !slices.Contains(f.formats, *f.out):
		return nil, usageErr("%s: --output %q is not one of %s", f.path, *f.out, strings.Join(f.formats, "|"))
	}
	return pos, nil
}

func (f *flagSet) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s %s\n\n%s\n", f.path, f.synopsis, strings.TrimSpace(f.desc))
	var rows [][2]string
	f.VisitAll(func(fl *flag.Flag) {
		if f.hidden[fl.Name] {
			return
		}
		typ, usage := flag.UnquoteUsage(fl)
		name := "--" + fl.Name
		switch {
		case fl.Name == "output":
			name = "-o, --output"
		case len(fl.Name) == 1:
			name = "-" + fl.Name
		}
		if typ != "" {
			name += " " + typ
		}
		if fl.DefValue != "" && fl.DefValue != "false" && fl.DefValue != "0" && fl.DefValue != "[]" {
			usage += " (default " + fl.DefValue + ")"
		}
		rows = append(rows, [2]string{name, usage})
	})
	if len(rows) > 0 {
		fmt.Fprintln(w, "\nFlags:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, r := range rows {
			fmt.Fprintf(tw, "  %s\t%s\n", r[0], r[1])
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\n%s", exitCodesHelp)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// optInt is an integer flag that remembers whether it was given (so that 0 stays distinct from
// unset).
type optInt struct {
	v   int64
	set bool
}

func (o *optInt) String() string {
	if o == nil || !o.set {
		return ""
	}
	return strconv.FormatInt(o.v, 10)
}

func (o *optInt) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	o.v, o.set = n, true
	return nil
}

func (o *optInt) ptr() *int64 {
	if !o.set {
		return nil
	}
	v := o.v
	return &v
}

// parseUSDFlag parses a dollar amount given to flag name.
func parseUSDFlag(name, s string) (money.Nanos, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "$")
	n, err := money.ParseUSD(s)
	if err != nil {
		return 0, usageErr("--%s %q: %v", name, s, err)
	}
	return n, nil
}

// newTable returns a writer that aligns tab-separated columns; call Flush.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// row writes one table row, each cell made safe for a terminal.
func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		cells[i] = cell(c)
	}
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// cell makes text from a server or a file safe to print in a table: control and bidirectional
// formatting characters (terminal escapes, tabs, newlines) become U+FFFD, so a crafted agent id or
// reason can neither break the columns nor rewrite the reviewer's screen.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 ||
			r == 0x200E || r == 0x200F || r == 0x061C {
			return '\uFFFD'
		}
		return r
	}, s)
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// usd formats an exact amount as "$12.5".
func usd(n money.Nanos) string { return "$" + n.String() }

// usdFloat formats a dollar amount received as a JSON number, at nano-dollar precision.
func usdFloat(f float64) string {
	n, err := money.FromUSD(f)
	if err != nil {
		return "$" + strconv.FormatFloat(f, 'g', -1, 64)
	}
	return usd(n)
}

// percent formats a ratio as a percentage.
func percent(r float64) string { return strconv.FormatFloat(r*100, 'f', 1, 64) + "%" }
