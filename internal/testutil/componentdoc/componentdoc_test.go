package componentdoc

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// recorder is a testing.TB that records the failures Check reports instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatal(args ...any) { r.TB.Fatal(args...) }

func TestCheckGood(t *testing.T) {
	r := &recorder{TB: t}
	Check(r, "testdata/good")
	if len(r.errs) != 0 {
		t.Errorf("a README that matches its metadata.yaml failed:\n%s", strings.Join(r.errs, "\n"))
	}
}

func TestCheckBad(t *testing.T) {
	r := &recorder{TB: t}
	Check(r, "testdata/bad")
	want := []string{
		`README.md:5: the status table's Stability is "beta: traces", metadata.yaml says "alpha: traces, logs"`,
		"README.md: the status table has no Type row (metadata.yaml: \"`sample`\")",
		"README.md:13: otelcol_processor_sample_items is a gauge in the README, a counter in metadata.yaml",
		"README.md:13: otelcol_processor_sample_items has attributes [kind reason] in the README, [reason] in metadata.yaml",
		"README.md: the Telemetry section has no table row for otelcol_processor_sample_queue, declared in metadata.yaml",
		`README.md:14: otelcol_processor_sample_wait has unit "bytes" in the README, "s" in metadata.yaml`,
		"README.md:15: otelcol_processor_sample_extra is documented but not declared in metadata.yaml",
		"README.md:7: otelcol_processor_sample_queue_total is not a metric metadata.yaml declares",
		"README.md:7: otelcol_processor_sample_gone is not a metric metadata.yaml declares",
		"README.md:15: otelcol_processor_sample_extra is not a metric metadata.yaml declares",
	}
	for _, w := range want {
		if !slices.Contains(r.errs, w) {
			t.Errorf("missing failure %q", w)
		}
	}
	if len(r.errs) != len(want) {
		t.Errorf("got %d failures, want %d:\n%s", len(r.errs), len(want), strings.Join(r.errs, "\n"))
	}
}
