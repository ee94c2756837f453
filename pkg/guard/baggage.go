package guard

import (
	"context"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The baggage members Run sets while the action runs; the processor reads them from spans.
const (
	BaggageDecisionID = "agentcost.decision_id"
	BaggageRunID      = "agentcost.run_id"
	BaggageAction     = "agentcost.action"
)

// baggagePrefix is the namespace the span processor copies from.
const baggagePrefix = "agentcost."

// withBaggage returns ctx with the decision's members added to its baggage.
func withBaggage(ctx context.Context, d *Decision, logger *slog.Logger) context.Context {
	bag := baggage.FromContext(ctx)
	for _, kv := range [...][2]string{{BaggageDecisionID, d.DecisionID}, {BaggageRunID, d.RunID}, {BaggageAction, d.Action}} {
		if kv[1] == "" {
			continue
		}
		m, err := baggage.NewMemberRaw(kv[0], kv[1])
		if err == nil {
			bag, err = bag.SetMember(m)
		}
		if err != nil {
			logger.WarnContext(ctx, "cannot put the decision into baggage; its spans settle by trace id", "key", kv[0], "error", err)
		}
	}
	return baggage.ContextWithBaggage(ctx, bag)
}

// BaggageSpanProcessor copies agentcost baggage members onto every span started in their
// context, as string attributes: agentcost.decision_id, agentcost.run_id and agentcost.action
// (set by Run) and any extra agentcost.* keys it was created with. Other members, and agentcost.*
// members not listed, are not copied: baggage can come from upstream callers, and a copied
// agentcost.cost_usd or agentcost.agent would spoof what the collector computes.
type BaggageSpanProcessor struct {
	keys []string
}

var _ sdktrace.SpanProcessor = (*BaggageSpanProcessor)(nil)

// NewBaggageSpanProcessor returns the processor; register it with
// sdktrace.WithSpanProcessor(guard.NewBaggageSpanProcessor()). extraKeys outside the agentcost.
// namespace are ignored.
func NewBaggageSpanProcessor(extraKeys ...string) *BaggageSpanProcessor {
	p := &BaggageSpanProcessor{keys: []string{BaggageDecisionID, BaggageRunID, BaggageAction}}
	for _, k := range extraKeys {
		if strings.HasPrefix(k, baggagePrefix) && len(k) > len(baggagePrefix) {
			p.keys = append(p.keys, k)
		}
	}
	return p
}

// OnStart copies the listed baggage members of parent onto s.
func (p *BaggageSpanProcessor) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	bag := baggage.FromContext(parent)
	if bag.Len() == 0 {
		return
	}
	for _, k := range p.keys {
		if m := bag.Member(k); m.Value() != "" {
			s.SetAttributes(attribute.String(k, m.Value()))
		}
	}
}

// OnEnd does nothing.
func (*BaggageSpanProcessor) OnEnd(sdktrace.ReadOnlySpan) {}

// Shutdown does nothing.
func (*BaggageSpanProcessor) Shutdown(context.Context) error { return nil }

// ForceFlush does nothing.
func (*BaggageSpanProcessor) ForceFlush(context.Context) error { return nil }
