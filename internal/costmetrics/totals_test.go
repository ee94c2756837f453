package costmetrics_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/agentcost/agentcost/internal/costmetrics"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/testutil/promtest"
)

// publication is one publish of totals, as the budget receiver sends it.
func publication(p *costmetrics.Publisher, totals ledger.Totals) pmetric.Metrics {
	md := pmetric.NewMetrics()
	p.Append(md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics(), totals, time.Now())
	return md
}

const idleSeries = `agentcost_spend_usd_total{agent="idle-agent",model="gpt-4o",provider="openai",team="growth"} 0.035`

// scrapeText scrapes url and prints every counter series as `name{label="value",...} value`.
func scrapeText(t *testing.T, url string) string {
	t.Helper()
	var b strings.Builder
	for name, f := range promtest.Scrape(t, url) {
		for _, m := range f.GetMetric() {
			labels := []string{}
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			b.WriteString(name + "{" + strings.Join(labels, ",") + "} " + strconv.FormatFloat(m.GetCounter().GetValue(), 'g', -1, 64) + "\n")
		}
	}
	return b.String()
}

// TestIdleAgentOutlivesMetricExpiration: an agent that booked once and then stays idle for longer
// than the prometheus exporter's metric_expiration still shows its spend, because every publish
// re-sends the ledger's whole totals; a series published once (what an idle agent's would be if
// only new spend were sent) does expire, so the check can fail.
func TestIdleAgentOutlivesMetricExpiration(t *testing.T) {
	totals := ledger.Totals{Since: time.Now().Add(-time.Hour), Totals: []ledger.Total{
		{Family: ledger.TotalSpend, Labels: []string{"idle-agent", "growth", "gpt-4o", "openai"}, Value: 35_000_000},
	}}
	const expiration = 300 * time.Millisecond
	ctx := context.Background()

	republished, url := promtest.Exporter(t, map[string]any{"metric_expiration": expiration.String()})
	p := costmetrics.NewPublisher(1000)
	for deadline := time.Now().Add(4 * expiration); time.Now().Before(deadline); time.Sleep(expiration / 6) {
		if err := republished.ConsumeMetrics(ctx, publication(p, totals)); err != nil {
			t.Fatal(err)
		}
	}
	if got := scrapeText(t, url); !strings.Contains(got, idleSeries) {
		t.Errorf("after %v idle with re-publishing, the spend is gone:\n%s", 4*expiration, got)
	}

	once, onceURL := promtest.Exporter(t, map[string]any{"metric_expiration": expiration.String()})
	if err := once.ConsumeMetrics(ctx, publication(costmetrics.NewPublisher(1000), totals)); err != nil {
		t.Fatal(err)
	}
	if got := scrapeText(t, onceURL); !strings.Contains(got, idleSeries) {
		t.Fatalf("a fresh publication does not show the spend:\n%s", got)
	}
	time.Sleep(2 * expiration)
	if got := scrapeText(t, onceURL); strings.Contains(got, idleSeries) {
		t.Errorf("a series published once outlived metric_expiration %v: the check above proves nothing", expiration)
	}
}

// TestOverflowFoldsAndStaysMonotonic: past max_label_values a label's values are published as
// __overflow__ with their totals summed exactly, the overflowed values are counted, and a later
// publish keeps the same values in their own series (first come, first kept).
func TestOverflowFoldsAndStaysMonotonic(t *testing.T) {
	p := costmetrics.NewPublisher(2)
	spend := func(agent string, nanos int64) ledger.Total {
		return ledger.Total{Family: ledger.TotalSpend, Labels: []string{agent, "", "m", "p"}, Value: nanos}
	}
	first := costmetrics.Series(publication(p, ledger.Totals{Totals: []ledger.Total{spend("a", 1), spend("b", 2), spend("c", 3), spend("d", 4)}}))
	want := map[string]float64{
		"agentcost_spend_usd_total{agent=a,model=m,provider=p,team=}":            1e-9,
		"agentcost_spend_usd_total{agent=b,model=m,provider=p,team=}":            2e-9,
		"agentcost_spend_usd_total{agent=__overflow__,model=m,provider=p,team=}": 7e-9,
		"agentcost_label_overflow_total{label=agent}":                            2,
		"agentcost_duplicate_spans_total{}":                                      0,
		"agentcost_mismatched_decision_spans_total{}":                            0,
	}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, first[k], v, first)
		}
	}
	if len(first) != len(want) {
		t.Errorf("published %d series, want %d: %v", len(first), len(want), first)
	}
	// "0" sorts before "a": without the memory of the first publish it would take a's place.
	second := costmetrics.Series(publication(p, ledger.Totals{Totals: []ledger.Total{spend("0", 5), spend("a", 1), spend("b", 2), spend("c", 3), spend("d", 4)}}))
	if got := second["agentcost_spend_usd_total{agent=a,model=m,provider=p,team=}"]; got != 1e-9 {
		t.Errorf("agent a lost its series on the second publish: %v", second)
	}
	if got := second["agentcost_spend_usd_total{agent=__overflow__,model=m,provider=p,team=}"]; got != 12e-9 {
		t.Errorf("overflow spend %v, want 12e-9", got)
	}
	if got := second["agentcost_label_overflow_total{label=agent}"]; got != 3 {
		t.Errorf("overflowed values %v, want 3", got)
	}
}
