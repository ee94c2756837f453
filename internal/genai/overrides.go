package genai

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/ottl/contexts/ottlspan"
	"go.opentelemetry.io/collector/component"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/internal/pricing"
)

// The Call fields an OTTL override can set, by configuration name.
const (
	FieldModel            = "model"
	FieldProvider         = "provider"
	FieldInputTokens      = "input_tokens"
	FieldOutputTokens     = "output_tokens"
	FieldCacheReadTokens  = "cache_read_tokens"
	FieldCacheWriteTokens = "cache_write_tokens"
	FieldReasoningTokens  = "reasoning_tokens"
	FieldServiceTier      = "service_tier"
	FieldAgent            = "agent"
	FieldTeam             = "team"
	FieldTenant           = "tenant"
	FieldRunID            = "run_id"
	FieldAction           = "action"
	FieldDecisionID       = "decision_id"
)

// overrideFields maps configuration names to fields, in the order Apply evaluates them.
var overrideFields = []struct {
	name  string
	field field
}{
	{FieldModel, fModel},
	{FieldProvider, fProvider},
	{FieldInputTokens, fInput},
	{FieldOutputTokens, fOutput},
	{FieldCacheReadTokens, fCacheRead},
	{FieldCacheWriteTokens, fCacheWrite},
	{FieldReasoningTokens, fReasoning},
	{FieldServiceTier, fTier},
	{FieldAgent, fAgent},
	{FieldTeam, fTeam},
	{FieldTenant, fTenant},
	{FieldRunID, fRunID},
	{FieldAction, fAction},
	{FieldDecisionID, fDecisionID},
}

// OverridesConfig is the user configuration of OTTL overrides.
type OverridesConfig struct {
	// Fields maps a field name (model, provider, input_tokens, output_tokens, cache_read_tokens,
	// cache_write_tokens, reasoning_tokens, service_tier, agent, team, tenant, run_id, action,
	// decision_id) to OTTL value expressions in the span context, tried in order before the
	// native keys: the first that yields a value wins. Paths without a context name are span
	// paths: `attributes["my.model"]` is `span.attributes["my.model"]`.
	Fields map[string][]string
	// Condition is an OTTL condition in the span context selecting the spans to price; empty
	// selects every span.
	Condition string
}

type fieldOverride struct {
	name  string
	field field
	exprs []*ottl.ValueExpression[*ottlspan.TransformContext]
}

// Overrides are compiled OTTL overrides. They are immutable and safe for concurrent use.
type Overrides struct {
	ex        *Extractor
	fields    []fieldOverride
	condition *ottl.Condition[*ottlspan.TransformContext]
}

// OverrideOption configures NewOverrides.
type OverrideOption func(*overrideSettings)

type overrideSettings struct {
	functions map[string]ottl.Factory[*ottlspan.TransformContext]
}

// WithFunctions makes OTTL functions (converters) available to the expressions and the
// condition, e.g. ottlfuncs.StandardConverters[*ottlspan.TransformContext](). Without it,
// expressions are paths, literals, operators and comparisons.
func WithFunctions(functions map[string]ottl.Factory[*ottlspan.TransformContext]) OverrideOption {
	return func(s *overrideSettings) { s.functions = functions }
}

// NewOverrides compiles cfg once. ex supplies the options Apply re-derives after overriding (nil:
// the default options). It returns nil and no error when cfg configures nothing, so that callers
// can skip building OTTL transform contexts entirely.
func NewOverrides(cfg OverridesConfig, ex *Extractor, set component.TelemetrySettings, opts ...OverrideOption) (*Overrides, error) {
	if len(cfg.Fields) == 0 && strings.TrimSpace(cfg.Condition) == "" {
		return nil, nil
	}
	if set.Logger == nil {
		set.Logger = zap.NewNop()
	}
	if ex == nil {
		ex = defaultExtractor
	}
	var settings overrideSettings
	for _, opt := range opts {
		opt(&settings)
	}
	if settings.functions == nil {
		settings.functions = map[string]ottl.Factory[*ottlspan.TransformContext]{}
	}
	pc, err := newParserCollection(set, settings.functions)
	if err != nil {
		return nil, fmt.Errorf("creating the OTTL span parser: %w", err)
	}

	var errs []error
	known := map[string]field{}
	for _, f := range overrideFields {
		known[f.name] = f.field
	}
	names := make([]string, 0, len(cfg.Fields))
	for name := range cfg.Fields {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := known[name]; !ok {
			errs = append(errs, fmt.Errorf("overrides: unknown field %q (want one of %s)", name, fieldNames()))
		}
	}

	o := &Overrides{ex: ex}
	for _, f := range overrideFields {
		exprs, ok := cfg.Fields[f.name]
		if !ok {
			continue
		}
		fo := fieldOverride{name: f.name, field: f.field}
		for i, raw := range exprs {
			parsed, err := pc.ParseValueExpressionsWithContext(ottlspan.ContextName, ottl.NewValueExpressionsGetter([]string{raw}), true)
			if err != nil {
				errs = append(errs, fmt.Errorf("overrides: field %q, expression %d %q: %w", f.name, i+1, raw, err))
				continue
			}
			fo.exprs = append(fo.exprs, parsed.([]*ottl.ValueExpression[*ottlspan.TransformContext])...)
		}
		if len(exprs) == 0 {
			errs = append(errs, fmt.Errorf("overrides: field %q has no expression", f.name))
		}
		o.fields = append(o.fields, fo)
	}
	if cond := strings.TrimSpace(cfg.Condition); cond != "" {
		parsed, err := pc.ParseConditionsWithContext(ottlspan.ContextName, ottl.NewConditionsGetter([]string{cond}), true)
		if err != nil {
			errs = append(errs, fmt.Errorf("overrides: condition %q: %w", cond, err))
		} else {
			o.condition = parsed.([]*ottl.Condition[*ottlspan.TransformContext])[0]
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return o, nil
}

func fieldNames() string {
	names := make([]string, len(overrideFields))
	for i, f := range overrideFields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

func newParserCollection(set component.TelemetrySettings, functions map[string]ottl.Factory[*ottlspan.TransformContext]) (*ottl.ParserCollection[any], error) {
	parser, err := ottlspan.NewParser(functions, set, ottlspan.EnablePathContextNames())
	if err != nil {
		return nil, err
	}
	return ottl.NewParserCollection[any](set,
		ottl.WithParserCollectionContext[*ottlspan.TransformContext, any](ottlspan.ContextName, &parser,
			ottl.WithValueExpressionConverter(func(_ *ottl.ParserCollection[any], _ ottl.ValueExpressionsGetter, parsed []*ottl.ValueExpression[*ottlspan.TransformContext]) (any, error) {
				return parsed, nil
			}),
			ottl.WithConditionConverter(func(_ *ottl.ParserCollection[any], _ ottl.ConditionsGetter, parsed []*ottl.Condition[*ottlspan.TransformContext]) (any, error) {
				return parsed, nil
			}),
		),
	)
}

// HasCondition reports whether a condition selects the spans to price.
func (o *Overrides) HasCondition() bool { return o != nil && o.condition != nil }

// HasFields reports whether any field is overridden.
func (o *Overrides) HasFields() bool { return o != nil && len(o.fields) > 0 }

// Selects evaluates the condition on the span; without a condition every span is selected.
func (o *Overrides) Selects(ctx context.Context, tCtx *ottlspan.TransformContext) (bool, error) {
	if o == nil || o.condition == nil {
		return true, nil
	}
	ok, err := o.condition.Eval(ctx, tCtx)
	if err != nil {
		return false, fmt.Errorf("overrides: condition %q: %w", o.condition.String(), err)
	}
	return ok, nil
}

// Apply evaluates each overridden field's expressions in order on the span of tCtx; the first
// that yields a value (not nil, not an empty string) replaces what Extract read natively. It then
// re-derives the cache rule, HasUsage and Malformed. Evaluation errors are returned joined, naming
// field and expression; the remaining expressions and fields are still applied.
func (o *Overrides) Apply(ctx context.Context, tCtx *ottlspan.TransformContext, c *Call) error {
	if o == nil || len(o.fields) == 0 {
		return nil
	}
	var errs []error
	for _, fo := range o.fields {
		for _, expr := range fo.exprs {
			v, err := expr.Eval(ctx, tCtx)
			if err == nil && v != nil {
				var ok bool
				ok, err = c.set(fo.field, v, expr.String())
				if ok {
					break
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("overrides: field %q, expression %q: %w", fo.name, expr.String(), err))
			}
		}
	}
	o.ex.finish(c)
	return errors.Join(errs...)
}

// set stores an override's value into c; ok is false when v gives no value.
func (c *Call) set(f field, v any, expr string) (ok bool, err error) {
	for i, uf := range usageFields {
		if uf == f {
			n, bad := tokenAny(v)
			c.rank[f] = rankOTTL
			c.fieldBad[i] = bad
			c.setUsage(f, n)
			return true, nil
		}
	}
	s, err := stringAny(v)
	if err != nil || s == "" {
		return false, err
	}
	switch f {
	case fModel:
		c.Model, c.ModelKey, c.modelResponse = s, expr, false
	case fProvider:
		c.Provider = NormalizeProvider(s)
	case fTier:
		c.Usage.Tier = pricing.ParseServiceTier(s)
	case fAgent:
		c.Agent = s
	case fTeam:
		c.Team = s
	case fTenant:
		c.Tenant = s
	case fRunID:
		c.RunID = s
	case fAction:
		c.Action = s
	case fDecisionID:
		c.DecisionID = s
	}
	c.rank[f] = rankOTTL
	return true, nil
}

func tokenAny(v any) (int64, Malformed) {
	switch n := v.(type) {
	case int64:
		return checkTokens(n)
	case int:
		return checkTokens(int64(n))
	case float64:
		return tokenFromDouble(n)
	case string:
		return 0, MalformedString
	default:
		return 0, MalformedType
	}
}

func stringAny(v any) (string, error) {
	switch s := v.(type) {
	case string:
		return s, nil
	case int64:
		return strconv.FormatInt(s, 10), nil
	case float64:
		return strconv.FormatFloat(s, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(s), nil
	default:
		return "", fmt.Errorf("value of type %T is not a name", v)
	}
}
