package genai

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/contexts/ottlspan"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/agentcost/agentcost/internal/pricing"
)

// spanContext builds one span under one resource and its OTTL transform context.
func spanContext(t *testing.T, name string, span, resource map[string]any) (ptrace.Span, ptrace.ResourceSpans, *ottlspan.TransformContext) {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	if err := rs.Resource().Attributes().FromRaw(resource); err != nil {
		t.Fatal(err)
	}
	ss := rs.ScopeSpans().AppendEmpty()
	sp := ss.Spans().AppendEmpty()
	sp.SetName(name)
	if err := sp.Attributes().FromRaw(span); err != nil {
		t.Fatal(err)
	}
	tCtx := ottlspan.NewTransformContext(rs, ss, sp)
	t.Cleanup(tCtx.Close)
	return sp, rs, tCtx
}

// testFunctions are two converters: Lower (a string) and Fail (always an error).
func testFunctions() map[string]ottl.Factory[*ottlspan.TransformContext] {
	type lowerArgs struct {
		Target ottl.StringGetter[*ottlspan.TransformContext]
	}
	lower := ottl.NewFactory("Lower", &lowerArgs{}, func(_ ottl.FunctionContext, a ottl.Arguments) (ottl.ExprFunc[*ottlspan.TransformContext], error) {
		target := a.(*lowerArgs).Target
		return func(ctx context.Context, tCtx *ottlspan.TransformContext) (any, error) {
			s, err := target.Get(ctx, tCtx)
			return strings.ToLower(s), err
		}, nil
	})
	fail := ottl.NewFactory("Fail", nil, func(ottl.FunctionContext, ottl.Arguments) (ottl.ExprFunc[*ottlspan.TransformContext], error) {
		return func(context.Context, *ottlspan.TransformContext) (any, error) {
			return nil, errors.New("boom")
		}, nil
	})
	return ottl.CreateFactoryMap(lower, fail)
}

func newOverrides(t *testing.T, cfg OverridesConfig, ex *Extractor) *Overrides {
	t.Helper()
	o, err := NewOverrides(cfg, ex, componenttest.NewNopTelemetrySettings(), WithFunctions(testFunctions()))
	if err != nil {
		t.Fatalf("NewOverrides: %v", err)
	}
	return o
}

func TestOverridesApply(t *testing.T) {
	tests := []struct {
		name     string
		fields   map[string][]string
		opts     Options
		span     map[string]any
		resource map[string]any
		check    func(t *testing.T, c Call)
		written  map[string]any
	}{
		{
			name:   "model from a custom key wins over the native key",
			fields: map[string][]string{FieldModel: {`span.attributes["my.model"]`}},
			span: map[string]any{"my.model": "gpt-4o", "gen_ai.request.model": "router",
				"gen_ai.usage.input_tokens": int64(10)},
			check: func(t *testing.T, c Call) {
				if c.Model != "gpt-4o" || c.ModelKey != `span.attributes["my.model"]` {
					t.Errorf("model %q from %q", c.Model, c.ModelKey)
				}
			},
		},
		{
			name:   "a missing value falls through to the native key",
			fields: map[string][]string{FieldModel: {`span.attributes["my.model"]`}},
			span:   map[string]any{"gen_ai.request.model": "gpt-4o"},
			check: func(t *testing.T, c Call) {
				if c.Model != "gpt-4o" || c.ModelKey != KeyRequestModel {
					t.Errorf("model %q from %q, want the native key", c.Model, c.ModelKey)
				}
			},
		},
		{
			name: "expressions are tried in order, an empty string counts as no value",
			fields: map[string][]string{FieldAgent: {
				`span.attributes["agent.missing"]`,
				`span.attributes["agent.empty"]`,
				`resource.attributes["k8s.deployment.name"]`,
				`resource.attributes["service.name"]`,
			}},
			span:     map[string]any{"agent.empty": "", "gen_ai.agent.name": "native"},
			resource: map[string]any{"k8s.deployment.name": "research-deploy", "service.name": "svc"},
			check: func(t *testing.T, c Call) {
				if c.Agent != "research-deploy" {
					t.Errorf("agent %q, want research-deploy", c.Agent)
				}
			},
		},
		{
			name:   "paths without a context name are span paths",
			fields: map[string][]string{FieldTeam: {`attributes["org.team"]`}, FieldAction: {`name`}},
			span:   map[string]any{"org.team": "growth"},
			check: func(t *testing.T, c Call) {
				if c.Team != "growth" || c.Action != "job.enrich" {
					t.Errorf("team %q action %q", c.Team, c.Action)
				}
			},
		},
		{
			name: "token counts and tier from custom keys; Normalize writes the convention",
			fields: map[string][]string{
				FieldModel:        {`span.attributes["x.model"]`},
				FieldInputTokens:  {`span.attributes["x.in"]`},
				FieldOutputTokens: {`span.attributes["x.out"]`},
				FieldServiceTier:  {`span.attributes["x.tier"]`},
			},
			span: map[string]any{"x.model": "gpt-4o", "x.in": int64(700), "x.out": 90.0, "x.tier": "priority"},
			check: func(t *testing.T, c Call) {
				want := pricing.Usage{InputTokens: 700, OutputTokens: 90, Tier: pricing.TierPriority}
				if c.Usage != want || !c.HasUsage || c.Malformed != 0 {
					t.Errorf("usage %+v has %v malformed %q, want %+v", c.Usage, c.HasUsage, c.Malformed, want)
				}
			},
			written: map[string]any{KeyRequestModel: "gpt-4o", KeyInputTokens: int64(700), KeyOutputTokens: int64(90)},
		},
		{
			name:   "an overridden token count is validated like a native one",
			fields: map[string][]string{FieldInputTokens: {`span.attributes["x.in"]`}},
			span:   map[string]any{"x.in": "700", "gen_ai.usage.output_tokens": int64(3)},
			check: func(t *testing.T, c Call) {
				if c.Malformed != MalformedString|MalformedNoModel || c.Usage.InputTokens != 0 {
					t.Errorf("malformed %q input %d, want string,no_model and 0", c.Malformed, c.Usage.InputTokens)
				}
			},
		},
		{
			name:   "a valid override clears the native value's malformed reason",
			fields: map[string][]string{FieldInputTokens: {`span.attributes["x.in"]`}},
			span:   map[string]any{"x.in": int64(5), "gen_ai.usage.input_tokens": "5", "gen_ai.request.model": "m"},
			check: func(t *testing.T, c Call) {
				if c.Malformed != 0 || c.Usage.InputTokens != 5 {
					t.Errorf("malformed %q input %d", c.Malformed, c.Usage.InputTokens)
				}
			},
		},
		{
			name:   "an overridden provider is normalised and re-derives the cache rule",
			fields: map[string][]string{FieldProvider: {`Lower(span.attributes["vendor"])`}},
			opts:   Options{InputExcludesCache: []string{"*/anthropic"}},
			span: map[string]any{"vendor": "ANTHROPIC", "gen_ai.request.model": "claude-haiku-4-5",
				"gen_ai.usage.input_tokens": int64(4), "gen_ai.usage.cache_read.input_tokens": int64(50)},
			check: func(t *testing.T, c Call) {
				if c.Provider != "anthropic" || !c.Usage.InputExcludesCache || c.Malformed != 0 {
					t.Errorf("provider %q excludes cache %v malformed %q", c.Provider, c.Usage.InputExcludesCache, c.Malformed)
				}
			},
			written: map[string]any{KeyProviderName: "anthropic"},
		},
		{
			name: "identity fields from non-string values",
			fields: map[string][]string{
				FieldTenant: {`span.attributes["tenant.num"]`}, FieldRunID: {`span.attributes["run.flag"]`},
				FieldDecisionID: {`"dec-7"`}, FieldCacheReadTokens: {`span.attributes["cr"]`},
				FieldCacheWriteTokens: {`span.attributes["cw"]`}, FieldReasoningTokens: {`span.attributes["rs"]`},
			},
			span: map[string]any{"tenant.num": int64(42), "run.flag": true, "cr": int64(1), "cw": int64(2), "rs": int64(3),
				"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": int64(10), "gen_ai.usage.output_tokens": int64(10)},
			check: func(t *testing.T, c Call) {
				if c.Tenant != "42" || c.RunID != "true" || c.DecisionID != "dec-7" {
					t.Errorf("tenant %q run %q decision %q", c.Tenant, c.RunID, c.DecisionID)
				}
				if c.Usage.CacheReadTokens != 1 || c.Usage.CacheWriteTokens != 2 || c.Usage.ReasoningTokens != 3 {
					t.Errorf("usage %+v", c.Usage)
				}
			},
			written: map[string]any{KeyCacheReadTokens: int64(1), KeyCacheWriteTokens: int64(2), KeyReasoningTokens: int64(3)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex, err := NewExtractor(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			o := newOverrides(t, OverridesConfig{Fields: tt.fields}, ex)
			sp, rs, tCtx := spanContext(t, "job.enrich", tt.span, tt.resource)
			res := ReadResource(rs.Resource().Attributes())
			c := ex.Extract(sp.Attributes(), sp.Name(), &res)
			if err := o.Apply(context.Background(), tCtx, &c); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			tt.check(t, c)

			before := ptrace.NewSpan()
			sp.CopyTo(before)
			Normalize(sp.Attributes(), &c)
			if w := added(before.Attributes(), sp.Attributes()); len(w) != len(tt.written) {
				t.Errorf("Normalize wrote %v, want %v", w, tt.written)
			} else {
				for k, v := range tt.written {
					if w[k] != v {
						t.Errorf("Normalize wrote %s = %v, want %v", k, w[k], v)
					}
				}
			}
		})
	}
}

func TestOverridesApplyErrors(t *testing.T) {
	o := newOverrides(t, OverridesConfig{Fields: map[string][]string{
		FieldModel: {`Fail()`, `span.attributes["m"]`},
		FieldTeam:  {`span.attributes["team.map"]`},
	}}, nil)
	sp, _, tCtx := spanContext(t, "s", map[string]any{"m": "gpt-4o", "team.map": map[string]any{"a": "b"}}, nil)
	c := Extract(sp.Attributes(), sp.Name(), nil)
	err := o.Apply(context.Background(), tCtx, &c)
	if err == nil {
		t.Fatal("Apply: no error from a failing expression")
	}
	for _, want := range []string{`field "model", expression "Fail()": boom`, `field "team", expression "span.attributes[\"team.map\"]"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if c.Model != "gpt-4o" {
		t.Errorf("the expression after a failing one was not applied: model %q", c.Model)
	}
}

func TestOverridesCondition(t *testing.T) {
	tests := []struct {
		condition string
		span      map[string]any
		resource  map[string]any
		want      bool
	}{
		{`span.attributes["llm.kind"] == "call"`, map[string]any{"llm.kind": "call"}, nil, true},
		{`span.attributes["llm.kind"] == "call"`, map[string]any{"llm.kind": "chain"}, nil, false},
		{`span.attributes["llm.kind"] == "call"`, nil, nil, false},
		{`attributes["llm.kind"] == "call"`, map[string]any{"llm.kind": "call"}, nil, true},
		{`name == "chat" and resource.attributes["env"] == "prod"`, nil, map[string]any{"env": "prod"}, true},
		{`name == "chat" and resource.attributes["env"] == "prod"`, nil, map[string]any{"env": "dev"}, false},
	}
	for _, tt := range tests {
		o := newOverrides(t, OverridesConfig{Condition: tt.condition}, nil)
		_, _, tCtx := spanContext(t, "chat", tt.span, tt.resource)
		got, err := o.Selects(context.Background(), tCtx)
		if err != nil || got != tt.want {
			t.Errorf("%s on %v / %v: %v, %v; want %v", tt.condition, tt.span, tt.resource, got, err, tt.want)
		}
		if !o.HasCondition() || o.HasFields() {
			t.Errorf("%s: HasCondition %v HasFields %v", tt.condition, o.HasCondition(), o.HasFields())
		}
	}
}

func TestOverridesNone(t *testing.T) {
	o, err := NewOverrides(OverridesConfig{Fields: map[string][]string{}, Condition: "  "}, nil, componenttest.NewNopTelemetrySettings())
	if o != nil || err != nil {
		t.Fatalf("NewOverrides(empty) = %v, %v; want nil, nil", o, err)
	}
	// A nil *Overrides is usable: it selects every span and changes nothing.
	_, _, tCtx := spanContext(t, "s", nil, nil)
	if ok, err := o.Selects(context.Background(), tCtx); !ok || err != nil {
		t.Errorf("nil Selects = %v, %v", ok, err)
	}
	c := Call{Model: "m"}
	if err := o.Apply(context.Background(), tCtx, &c); err != nil || c.Model != "m" {
		t.Errorf("nil Apply = %v, model %q", err, c.Model)
	}
	if o.HasCondition() || o.HasFields() {
		t.Error("nil Overrides claims a condition or fields")
	}
}

func TestNewOverridesErrors(t *testing.T) {
	set := componenttest.NewNopTelemetrySettings()
	tests := []struct {
		name string
		cfg  OverridesConfig
		opts []OverrideOption
		want []string
	}{
		{
			name: "unknown field",
			cfg:  OverridesConfig{Fields: map[string][]string{"modle": {`span.name`}}},
			want: []string{`overrides: unknown field "modle" (want one of model, provider,`},
		},
		{
			name: "syntax error names field and expression",
			cfg:  OverridesConfig{Fields: map[string][]string{FieldAgent: {`span.name`, `span.attributes["a"`}}},
			want: []string{`overrides: field "agent", expression 2 "span.attributes[\"a\"":`},
		},
		{
			name: "unknown function without WithFunctions",
			cfg:  OverridesConfig{Fields: map[string][]string{FieldModel: {`Lower(span.name)`}}},
			want: []string{`overrides: field "model", expression 1 "Lower(span.name)":`, "Lower"},
		},
		{
			name: "unknown path",
			cfg:  OverridesConfig{Fields: map[string][]string{FieldTeam: {`span.nope`}}},
			want: []string{`overrides: field "team", expression 1 "span.nope":`},
		},
		{
			name: "no expression",
			cfg:  OverridesConfig{Fields: map[string][]string{FieldTenant: {}}},
			want: []string{`overrides: field "tenant" has no expression`},
		},
		{
			name: "bad condition",
			cfg:  OverridesConfig{Condition: `span.attributes["k"] ==`},
			want: []string{`overrides: condition "span.attributes[\"k\"] ==":`},
		},
		{
			name: "every error at once",
			cfg: OverridesConfig{
				Fields:    map[string][]string{"zzz": {"x"}, "aaa": {"y"}, FieldModel: {`(`}},
				Condition: `==`,
			},
			want: []string{`unknown field "aaa"`, `unknown field "zzz"`, `field "model", expression 1 "("`, `condition "=="`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := NewOverrides(tt.cfg, nil, set, tt.opts...)
			if err == nil || o != nil {
				t.Fatalf("NewOverrides = %v, %v; want an error", o, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
