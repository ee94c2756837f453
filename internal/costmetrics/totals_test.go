package costmetrics_test

import (
	"context"
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

func scrapeText(t *testing.T, url string) string {
	t.Helper()
	var b strings.Builder
	for name, f := range promtest.Scrape(t, url) {
		for _, m := range f.GetMetric() {
			labels := []string{}
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			b.WriteString(name + "{" + strings.Join(labels, ",") + "} " + strings.TrimSuffix(strings.TrimSuffix(
				strings.TrimRight(strings.TrimRight(formatFloat(m.GetCounter().GetValue()), "0"), "."), "."), "") + "\n")
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
