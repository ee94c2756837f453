package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/pricing"
)

// infoResult is `prices info`'s JSON form.
type infoResult struct {
	Source   string              `json:"source"`
	File     string              `json:"file"`
	Upstream string              `json:"upstream"`
	Commit   string              `json:"commit"`
	SHA256   string              `json:"sha256"`
	Verified bool                `json:"sha256_verified"`
	Bytes    int                 `json:"bytes"`
	Keys     int                 `json:"keys"`
	Priced   int                 `json:"priced"`
	Skipped  int                 `json:"skipped"`
	Skips    []pricing.SkipCount `json:"skipped_by_reason"`
}

func pricesInfo(e *env, path string, args []string) error {
	flags := newFlags(e, path, "[-o json]", `
Shows where the embedded default price table comes from: LiteLLM's model_prices_and_context_window.json
at an upstream commit, embedded whole. The SHA-256 is computed from the embedded bytes and checked
against the recorded one. Also shows how many entries carry token prices and, by reason, how many
do not (image, audio, per-second and subscription entries), which spans of those models would be
marked agentcost.price.unknown.`)
	out := flags.output("table", "json")
	if _, err := flags.parse(args, 0, 0); err != nil {
		return err
	}
	l, err := pricing.DefaultLayer()
	if err != nil {
		return &cliError{code: exitFindings, err: err}
	}
	info := pricing.Embedded()
	data := pricing.EmbeddedData()
	sum := pricing.SHA256Hex(data)
	res := infoResult{Source: info.Source(), File: "internal/pricing/data/" + info.File(), Upstream: info.Upstream(),
		Commit: info.Commit, SHA256: sum, Verified: sum == info.SHA256, Bytes: len(data),
		Keys: len(l.Entries) + l.Skipped, Priced: len(l.Entries), Skipped: l.Skipped, Skips: pricing.SkipsByReason(l.Skips)}
	if *out == "json" {
		if err := writeJSON(e.stdout, res); err != nil {
			return ioErr(err)
		}
	} else {
		t := newTable(e.stdout)
		row(t, "source:", res.Source)
		row(t, "file:", res.File)
		row(t, "upstream:", res.Upstream)
		row(t, "commit:", res.Commit)
		verified := "verified"
		if !res.Verified {
			verified = "MISMATCH: recorded " + info.SHA256
		}
		row(t, "sha256:", res.SHA256+" ("+verified+")")
		row(t, "bytes:", strconv.Itoa(res.Bytes))
		row(t, "keys:", strconv.Itoa(res.Keys))
		row(t, "priced:", strconv.Itoa(res.Priced)+" entries with token prices")
		row(t, "skipped:", strconv.Itoa(res.Skipped)+" ("+pricing.FormatSkips(res.Skips)+")")
		t.Flush()
	}
	if !res.Verified {
		return &cliError{code: exitFindings, err: errors.New("the embedded price file does not match its recorded sha256")}
	}
	return nil
}

// priceLintResult is one file of `prices lint`'s JSON form.
type priceLintResult struct {
	File    string              `json:"file"`
	Valid   bool                `json:"valid"`
	Error   string              `json:"error,omitempty"`
	Priced  int                 `json:"priced"`
	Skipped []pricing.Skip      `json:"skipped"`
	Counts  []pricing.SkipCount `json:"skipped_by_reason"`
	// Suspicious lists priced entries with a standard rate above suspiciousRate: loaded (they are
	// under the sanity bound) but worth a look.
	Suspicious []suspiciousPrice `json:"suspicious"`
}

// suspiciousPrice is a loaded rate above suspiciousRate.
type suspiciousPrice struct {
	Model string `json:"model"`
	Rate  string `json:"rate"`
	// PerMillion is the rate in dollars per million tokens, exact.
	PerMillion string `json:"per_million"`
}

// suspiciousRate is $0.001 per token ($1,000 per million tokens): dearer than any frontier model's
// list price; such a price in a file is more likely a unit slip (per 1K or per 1M tokens written as
// per token).
const suspiciousRate = pricing.MaxRate / 1000

// suspicious returns the standard rates of e above suspiciousRate.
func suspicious(e *pricing.Entry) []suspiciousPrice {
	var out []suspiciousPrice
	std := e.Standard
	for _, r := range []struct {
		name string
		bit  pricing.RateSet
		v    money.Rate
	}{{"input", pricing.HasInput, std.Input}, {"output", pricing.HasOutput, std.Output},
		{"cache_read", pricing.HasCacheRead, std.CacheRead}, {"cache_write", pricing.HasCacheWrite, std.CacheWrite},
		{"reasoning", pricing.HasReasoning, std.Reasoning}} {
		if std.Has(r.bit) && r.v > suspiciousRate {
			out = append(out, suspiciousPrice{Model: e.Model, Rate: r.name, PerMillion: money.Nanos(r.v).String()})
		}
	}
	return out
}

func pricesLint(e *env, path string, args []string) error {
	flags := newFlags(e, path, "FILE... [--reason R] [-o json]", `
Loads price files (LiteLLM JSON or agentcost YAML) as the processor does and lists the entries it
skips, with line and reason (format documentation, input price only, per-image prices, per-second
prices, no prices, ...): spans of those models are marked agentcost.price.unknown, and names that
reach them are not priced as another model. It also warns about loaded rates above $1,000 per
million tokens, more likely a unit slip than a price. The exit code is 1 when a file is invalid
(the error names file, line, model and field), 3 when one cannot be read; warnings do not change it.`)
	reason := flags.String("reason", "", "list only the skipped entries with this `REASON`")
	out := flags.output("table", "json")
	files, err := flags.parse(args, 1, -1)
	if err != nil {
		return err
	}
	var results []priceLintResult
	var firstErr error
	for _, f := range files {
		l, err := pricing.LoadFile(f)
		if err != nil {
			results = append(results, priceLintResult{File: f, Error: err.Error(), Skipped: []pricing.Skip{}})
			if firstErr == nil {
				firstErr = priceFileErr(err)
			}
			continue
		}
		r := priceLintResult{File: f, Valid: true, Priced: len(l.Entries), Skipped: []pricing.Skip{}, Counts: pricing.SkipsByReason(l.Skips),
			Suspicious: []suspiciousPrice{}}
		for _, e := range l.Entries {
			r.Suspicious = append(r.Suspicious, suspicious(e)...)
		}
		for _, s := range l.Skips {
			if *reason == "" || s.Reason == *reason {
				r.Skipped = append(r.Skipped, s)
			}
		}
		results = append(results, r)
	}
	if *out == "json" {
		if err := writeJSON(e.stdout, results); err != nil {
			return ioErr(err)
		}
		if firstErr != nil {
			return &cliError{code: firstErr.(*cliError).code}
		}
		return nil
	}
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		if !r.Valid {
			fmt.Fprintf(e.stdout, "%s: invalid\n%s\n", r.File, r.Error) // the problems, one per line
			continue
		}
		fmt.Fprintf(e.stdout, "%s: %d priced, %d skipped (%s)\n", r.File, r.Priced, countSkips(r.Counts), pricing.FormatSkips(r.Counts))
		if len(r.Skipped) > 0 {
			t := newTable(e.stdout)
			row(t, "LINE", "MODEL", "PROVIDER", "REASON")
			for _, s := range r.Skipped {
				row(t, strconv.Itoa(s.Line), s.Model, s.Provider, s.Reason)
			}
			t.Flush()
		}
		if len(r.Suspicious) > 0 {
			fmt.Fprintf(e.stdout, "\nwarning: %d rates above $1,000 per 1M tokens (a unit slip?); loaded as written:\n", len(r.Suspicious))
			t := newTable(e.stdout)
			row(t, "MODEL", "RATE", "USD PER 1M TOKENS")
			for _, s := range r.Suspicious {
				row(t, s.Model, s.Rate, "$"+s.PerMillion)
			}
			t.Flush()
		}
	}
	if firstErr != nil {
		return &cliError{code: firstErr.(*cliError).code}
	}
	return nil
}

func countSkips(counts []pricing.SkipCount) int {
	n := 0
	for _, c := range counts {
		n += c.Count
	}
	return n
}

// refreshResult is `prices refresh`'s JSON form.
type refreshResult struct {
	Candidate string            `json:"candidate"`
	Info      refreshInfo       `json:"info"`
	Priced    int               `json:"priced"`
	Skipped   int               `json:"skipped"`
	Diff      pricing.LayerDiff `json:"diff"`
	Written   []string          `json:"written,omitempty"`
	Removed   []string          `json:"removed,omitempty"`
}

type refreshInfo struct {
	Source string `json:"source"`
	File   string `json:"file"`
	Commit string `json:"commit"`
	SHA256 string `json:"sha256"`
}

func pricesRefresh(e *env, path string, args []string) error {
	flags := newFlags(e, path, "CANDIDATE.json --date YYYY-MM-DD --commit SHA [--license FILE --write] [--dir internal/pricing]", `
Checks a newer upstream model_prices_and_context_window.json against the embedded default and,
with --write, makes it the embedded default. The candidate is loaded with the processor's loader
(an invalid file is rejected with file, line, model and field: exit 1) and built into a table; its
prices are compared with the current table by key (added, removed, changed rates in dollars per
million tokens, exact). --write copies the file byte for byte to DIR/data/litellm-model-prices-DATE.json
with the licence beside it, removes the previous file and regenerates DIR/embedded.go (source label,
upstream commit, sha256, go:embed). Run it from the repository root, then run the pricing and
processor tests and update docs/benchmarks.md if the table's size changed much.`)
	date := flags.String("date", "", "the upstream file's `DATE` (YYYY-MM-DD): names the file and the source label")
	commit := flags.String("commit", "", "the upstream `COMMIT` the file was taken at (40 hex digits)")
	license := flags.String("license", "", "the upstream licence `FILE` to put beside it (required with --write)")
	dir := flags.String("dir", filepath.Join("internal", "pricing"), "the pricing package `DIR`")
	write := flags.Bool("write", false, "write the embedded copy (default: only check and diff)")
	show := flags.Int("show", 20, "list at most `N` added, removed and changed entries each (table output)")
	out := flags.output("table", "json")
	pos, err := flags.parse(args, 1, 1)
	if err != nil {
		return err
	}
	candidate := pos[0]
	data, err := os.ReadFile(candidate)
	if err != nil {
		return ioErr(fmt.Errorf("reading candidate: %w", err))
	}
	info := pricing.EmbeddedInfo{Date: *date, Commit: *commit, SHA256: pricing.SHA256Hex(data)}
	if err := info.Validate(); err != nil {
		return usageErr("%s: --%v", path, err)
	}
	if *write && *license == "" {
		return usageErr("%s: --write needs --license (the upstream licence file to put beside the data)", path)
	}
	layer, err := pricing.LoadFile(candidate)
	if err != nil {
		return priceFileErr(err)
	}
	// The candidate becomes the default layer: give it the label it will carry.
	layer.Source = info.Source()
	if _, err := pricing.Build(layer); err != nil {
		return &cliError{code: exitFindings, err: err}
	}
	cur, err := pricing.DefaultLayer()
	if err != nil {
		return &cliError{code: exitFindings, err: err}
	}
	res := refreshResult{Candidate: candidate, Priced: len(layer.Entries), Skipped: layer.Skipped,
		Info: refreshInfo{Source: info.Source(), File: info.File(), Commit: info.Commit, SHA256: info.SHA256},
		Diff: pricing.DiffLayers(cur, layer)}

	if *write {
		if err := writeEmbedded(*dir, *license, data, info, &res); err != nil {
			return ioErr(err)
		}
	}
	if *out == "json" {
		if err := writeJSON(e.stdout, res); err != nil {
			return ioErr(err)
		}
		return nil
	}
	d := res.Diff
	fmt.Fprintf(e.stdout, "candidate %s: valid, %d priced, %d skipped; sha256 %s\n", candidate, res.Priced, res.Skipped, info.SHA256)
	fmt.Fprintf(e.stdout, "against %s: %d added, %d removed, %d entries with changed prices, %d unchanged\n",
		pricing.DefaultSource, len(d.Added), len(d.Removed), changedModels(d.Changed), d.Unchanged)
	list := func(title string, names []string) {
		if len(names) == 0 {
			return
		}
		fmt.Fprintf(e.stdout, "\n%s:\n", title)
		for i, n := range names {
			if i == *show {
				fmt.Fprintf(e.stdout, "  ... and %d more\n", len(names)-i)
				break
			}
			fmt.Fprintf(e.stdout, "  %s\n", n)
		}
	}
	list("added", d.Added)
	list("removed", d.Removed)
	if len(d.Changed) > 0 {
		fmt.Fprintln(e.stdout, "\nchanged (USD per 1M tokens):")
		t := newTable(e.stdout)
		row(t, "  MODEL", "RATE", "OLD", "NEW")
		for i, c := range d.Changed {
			if i == *show {
				row(t, fmt.Sprintf("  ... and %d more", len(d.Changed)-i))
				break
			}
			row(t, "  "+c.Model, c.Column, orDash(c.Old), orDash(c.New))
		}
		t.Flush()
	}
	if *write {
		fmt.Fprintln(e.stdout)
		for _, w := range res.Written {
			fmt.Fprintf(e.stdout, "wrote %s\n", w)
		}
		for _, r := range res.Removed {
			fmt.Fprintf(e.stdout, "removed %s\n", r)
		}
	} else {
		fmt.Fprintln(e.stdout, "\n(dry run: add --license FILE --write to make it the embedded default)")
	}
	return nil
}

// writeEmbedded makes data the embedded default in dir: the data file and its licence, the
// regenerated embedded.go, and the previous data file and licence removed.
func writeEmbedded(dir, license string, data []byte, info pricing.EmbeddedInfo, res *refreshResult) error {
	genPath := filepath.Join(dir, "embedded.go")
	if _, err := os.Stat(genPath); err != nil {
		return fmt.Errorf("--dir %s is not the pricing package (no embedded.go): %w", dir, err)
	}
	lic, err := os.ReadFile(license)
	if err != nil {
		return fmt.Errorf("reading licence: %w", err)
	}
	dataDir := filepath.Join(dir, "data")
	newData := filepath.Join(dataDir, info.File())
	newLic := filepath.Join(dataDir, trimExt(info.File())+".LICENSE")
	for _, w := range []struct {
		path string
		b    []byte
	}{{newData, data}, {newLic, lic}, {genPath, pricing.RenderEmbeddedGo(info)}} {
		if err := writeFileAtomic(w.path, w.b); err != nil {
			return err
		}
		res.Written = append(res.Written, w.path)
	}
	cur := pricing.Embedded()
	if cur.File() != info.File() {
		for _, old := range []string{filepath.Join(dataDir, cur.File()), filepath.Join(dataDir, trimExt(cur.File())+".LICENSE")} {
			if err := os.Remove(old); err == nil {
				res.Removed = append(res.Removed, old)
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

func trimExt(name string) string { return name[:len(name)-len(filepath.Ext(name))] }

// writeFileAtomic writes b to path through a temporary file in the same directory.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".refresh-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func changedModels(cs []pricing.PriceChange) int {
	n := 0
	for i, c := range cs {
		if i == 0 || cs[i-1].Model != c.Model {
			n++
		}
	}
	return n
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return "$" + s
}
