// Package componentdoc holds a component's README to its metadata.yaml, the one source of the
// component's type, stability and internal telemetry (from which mdatagen generates its code and
// documentation.md): the README's status table and its telemetry table must say what
// metadata.yaml says.
package componentdoc

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Metadata is the part of a metadata.yaml the README documents.
type Metadata struct {
	// Type is the component type.
	Type string `yaml:"type"`
	// Status holds the class and the stability per level.
	Status struct {
		// Class is receiver, processor, exporter, extension or connector.
		Class string `yaml:"class"`
		// Stability lists the signals (or "extension") per stability level.
		Stability map[string][]string `yaml:"stability"`
	} `yaml:"status"`
	// Attributes are the attributes the telemetry metrics name.
	Attributes map[string]struct {
		// NameOverride is the attribute's emitted name when it differs from its key.
		NameOverride string `yaml:"name_override"`
	} `yaml:"attributes"`
	// Telemetry holds the internal telemetry metrics, by name without the otelcol_ prefix.
	Telemetry struct {
		// Metrics are the internal telemetry metrics.
		Metrics map[string]Metric `yaml:"metrics"`
	} `yaml:"telemetry"`
}

// Metric is one internal telemetry metric of a metadata.yaml.
type Metric struct {
	// Unit is the metric's unit.
	Unit string `yaml:"unit"`
	// Sum is set for a counter (monotonic) or an up-down counter.
	Sum *struct {
		// Monotonic is true for a counter.
		Monotonic bool `yaml:"monotonic"`
		// Async is true for an observable counter, reported at every collection.
		Async bool `yaml:"async"`
	} `yaml:"sum"`
	// Gauge is set for a gauge.
	Gauge *struct {
		// Async is true for an observable gauge, reported at every collection.
		Async bool `yaml:"async"`
	} `yaml:"gauge"`
	// Histogram is set for a histogram.
	Histogram *struct{} `yaml:"histogram"`
	// Attributes are the keys of the metric's attributes in Metadata.Attributes.
	Attributes []string `yaml:"attributes"`
}

// Observable reports whether the metric is observed at every collection (async in metadata.yaml),
// so that it is exposed before anything happened.
func (m Metric) Observable() bool {
	return m.Sum != nil && m.Sum.Async || m.Gauge != nil && m.Gauge.Async
}

// Exposed is the metric's name on a scrape of the collector's own telemetry through its default
// Prometheus reader, which adds neither a unit nor a _total suffix (without_units,
// without_type_suffix): otelcol_ and the metric's name.
func Exposed(name string) string {
	return "otelcol_" + name
}

// kind is the metric's type as a README's table names it.
func (m Metric) kind() string {
	switch {
	case m.Sum != nil && m.Sum.Monotonic:
		return "counter"
	case m.Sum != nil:
		return "updowncounter"
	case m.Gauge != nil:
		return "gauge"
	case m.Histogram != nil:
		return "histogram"
	}
	return ""
}

// readmeUnits are the unit words a README's type column may add ("counter, s"), as UCUM units.
var readmeUnits = map[string]string{"s": "s", "bytes": "By"}

// Load reads dir/metadata.yaml.
func Load(dir string) (Metadata, error) {
	var md Metadata
	raw, err := os.ReadFile(filepath.Join(dir, "metadata.yaml"))
	if err != nil {
		return md, err
	}
	if err := yaml.Unmarshal(raw, &md); err != nil {
		return md, fmt.Errorf("parsing %s: %w", filepath.Join(dir, "metadata.yaml"), err)
	}
	return md, nil
}

// row is one documented metric of a README's telemetry table.
type row struct {
	line  int
	attrs []string
	kind  string
	unit  string
}

var (
	// rowRe matches a telemetry table row: | `otelcol_name{attr,attr}` | type[, unit] | meaning |.
	rowRe = regexp.MustCompile("^\\| `(otelcol_[a-z0-9_]+)(?:\\{([a-z0-9_, ]*)\\})?` \\| ([a-z]+)(?:, ([a-z]+))? \\|")
	// nameRe matches any otelcol_ metric name in the README.
	nameRe = regexp.MustCompile(`otelcol_[a-z0-9_]+`)
)

// Check fails t unless dir/README.md documents what dir/metadata.yaml declares:
//   - its status table names the type (| Type | `agentcost` |) and the stability
//     (| Stability | alpha: traces |; an extension's: | Stability | alpha |);
//   - its "## Telemetry" section has one table row per telemetry metric, with the metric's
//     otelcol_ name, its attributes in braces (emitted names, any order), its type (counter,
//     gauge, ...) and, where it adds one, its unit (s, bytes);
//   - every otelcol_<class>_<type>_ name anywhere in the README is a declared metric, as the
//     collector's own Prometheus reader exposes it (no _total suffix: see Exposed).
func Check(t testing.TB, dir string) {
	t.Helper()
	md, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	checkStatus(t, md, lines)

	rows := map[string]row{}
	section := ""
	for i, l := range lines {
		if strings.HasPrefix(l, "## ") {
			section = strings.TrimPrefix(l, "## ")
			continue
		}
		m := rowRe.FindStringSubmatch(l)
		if m == nil || section != "Telemetry" {
			continue
		}
		if _, dup := rows[m[1]]; dup {
			t.Errorf("README.md:%d: %s is documented twice", i+1, m[1])
		}
		r := row{line: i + 1, kind: m[3], unit: m[4]}
		if m[2] != "" {
			for _, a := range strings.Split(m[2], ",") {
				r.attrs = append(r.attrs, strings.TrimSpace(a))
			}
			sort.Strings(r.attrs)
		}
		rows[m[1]] = r
	}

	for _, name := range sortedKeys(md.Telemetry.Metrics) {
		metric, full := md.Telemetry.Metrics[name], "otelcol_"+name
		r, ok := rows[full]
		if !ok {
			t.Errorf("README.md: the Telemetry section has no table row for %s, declared in metadata.yaml", full)
			continue
		}
		delete(rows, full)
		if want := metric.kind(); r.kind != want {
			t.Errorf("README.md:%d: %s is a %s in the README, a %s in metadata.yaml", r.line, full, r.kind, want)
		}
		if r.unit != "" {
			if u, known := readmeUnits[r.unit]; !known || u != metric.Unit {
				t.Errorf("README.md:%d: %s has unit %q in the README, %q in metadata.yaml", r.line, full, r.unit, metric.Unit)
			}
		}
		var want []string
		for _, a := range metric.Attributes {
			emitted := a
			if o := md.Attributes[a].NameOverride; o != "" {
				emitted = o
			}
			want = append(want, emitted)
		}
		sort.Strings(want)
		if !slices.Equal(r.attrs, want) {
			t.Errorf("README.md:%d: %s has attributes %v in the README, %v in metadata.yaml", r.line, full, r.attrs, want)
		}
	}
	for _, name := range sortedKeys(rows) {
		t.Errorf("README.md:%d: %s is documented but not declared in metadata.yaml", rows[name].line, name)
	}

	own := "otelcol_" + md.Status.Class + "_" + md.Type + "_"
	for i, l := range lines {
		for _, name := range nameRe.FindAllString(l, -1) {
			if !strings.HasPrefix(name, own) {
				continue
			}
			bare := strings.TrimPrefix(name, "otelcol_")
			if _, ok := md.Telemetry.Metrics[bare]; ok {
				continue
			}
			t.Errorf("README.md:%d: %s is not a metric metadata.yaml declares", i+1, name)
		}
	}
}

// checkStatus holds the README's status table to the type and stability of md.
func checkStatus(t testing.TB, md Metadata, lines []string) {
	t.Helper()
	var levels []string
	for _, level := range sortedKeys(md.Status.Stability) {
		if md.Status.Class == "extension" {
			levels = append(levels, level)
			continue
		}
		levels = append(levels, level+": "+strings.Join(md.Status.Stability[level], ", "))
	}
	want := map[string]string{"Stability": strings.Join(levels, "; "), "Type": "`" + md.Type + "`"}
	for _, key := range sortedKeys(want) {
		found := false
		for i, l := range lines {
			cells := strings.Split(l, "|")
			if len(cells) < 4 || strings.TrimSpace(cells[1]) != key {
				continue
			}
			found = true
			// The Type cell may go on after the type: "`agentauth` (server authenticator)".
			if got := strings.TrimSpace(cells[2]); got != want[key] && (key != "Type" || !strings.HasPrefix(got, want[key]+" ")) {
				t.Errorf("README.md:%d: the status table's %s is %q, metadata.yaml says %q", i+1, key, got, want[key])
			}
			break
		}
		if !found {
			t.Errorf("README.md: the status table has no %s row (metadata.yaml: %q)", key, want[key])
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
