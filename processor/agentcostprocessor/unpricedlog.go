package agentcostprocessor

import (
	"context"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/internal/costing"
	"github.com/agentcost/agentcost/internal/genai"
)

// logUnpriced warns, at most every logInterval per kind, about spans of the batch whose
// usage was malformed (marked agentcost.malformed) and spans of a model without a price (marked
// agentcost.price.unknown): the count in the batch, the reason, and one example span — trace and
// span id, name, agent, model and its gen_ai.usage.* attributes as sent — so the sender can be
// found and fixed. otelcol_agentcost_spans_malformed_total and
// otelcol_agentcost_spans_unpriced_total count every one of them.
func (p *costProcessor) logUnpriced(ctx context.Context, td ptrace.Traces, st *costing.Stats) {
	var malformed int64
	for _, n := range st.Malformed {
		malformed += n
	}
	if malformed > 0 && p.malformedLog.allow() {
		if fields, ok := exampleSpan(td, genai.KeyMalformed); ok {
			fields = append(fields, zap.Int64("spans", malformed), zap.Any("reasons", st.Malformed))
			p.logger.Warn("Spans with malformed usage were not priced or booked", senderFields(ctx, fields)...)
		}
	}
	if st.Unpriced > 0 && p.unknownLog.allow() {
		if fields, ok := exampleSpan(td, genai.KeyPriceUnknown); ok {
			fields = append(fields, zap.Int64("spans", st.Unpriced))
			p.logger.Warn("Spans of a model without a price were not priced or booked (agentcost.price.unknown); "+
				"add the model to a price file (prices.files) or check its name with agentcostctl prices lookup",
				senderFields(ctx, fields)...)
		}
	}
}

func senderFields(ctx context.Context, fields []zap.Field) []zap.Field {
	if id, authed := sender(ctx); authed {
		fields = append(fields, zap.String("sender", id.Subject), zap.String("role", string(id.Role)))
	}
	return fields
}

// exampleSpan describes the first span of td carrying the attribute key.
func exampleSpan(td ptrace.Traces, key string) ([]zap.Field, bool) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				span := spans.At(k)
				attrs := span.Attributes()
				mark, ok := attrs.Get(key)
				if !ok {
					continue
				}
				fields := []zap.Field{
					zap.String("trace_id", span.TraceID().String()), zap.String("span_id", span.SpanID().String()),
					zap.String("span_name", span.Name()), zap.String(key, mark.AsString()),
				}
				for _, k := range []string{genai.KeyAgent, genai.KeyModel, "gen_ai.request.model", "gen_ai.provider.name"} {
					if v, ok := attrs.Get(k); ok {
						fields = append(fields, zap.String(k, v.AsString()))
					}
				}
				if v, ok := rs.Resource().Attributes().Get("service.name"); ok {
					fields = append(fields, zap.String("service.name", v.AsString()))
				}
				usage := map[string]string{}
				attrs.Range(func(k string, v pcommon.Value) bool {
					if strings.HasPrefix(k, "gen_ai.usage.") && len(usage) < 16 {
						usage[k] = v.Type().String() + " " + truncate(v.AsString(), 64)
					}
					return true
				})
				if len(usage) > 0 {
					fields = append(fields, zap.Any("usage", usage))
				}
				return fields, true
			}
		}
	}
	return nil, false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
