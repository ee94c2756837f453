package baseline

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"go.opentelemetry.io/collector/component"

	"github.com/agentcost/agentcost/internal/money"
)

// Settings is the YAML form of a baseline configuration, one struct shared (squashed under the
// `baseline` key) by the agentcost processor (per-call baselines) and the budget receiver
// (per-action and per-run baselines), so that both read and validate the same keys.
type Settings struct {
	// Multiplier is how many times its baseline a cost must reach to be anomalous (above 1;
	// default 3).
	Multiplier float64 `mapstructure:"multiplier"`
	// WarmupCalls is the number of observations of a key before it can flag anything (processor
	// default 10, receiver default 5).
	WarmupCalls int64 `mapstructure:"warmup_calls"`
	// Warmup is the receiver's older spelling of WarmupCalls, still read: when set (non-zero) it
	// wins over warmup_calls.
	Warmup int64 `mapstructure:"warmup"`
	// MinCostUSD is the absolute floor: a cost below it is never anomalous nor escalating
	// (default 0.01).
	MinCostUSD float64 `mapstructure:"min_cost_usd"`
	// Alpha is the weight of an in-band observation's clipped deviation, in (0, 1] (default 0.2).
	Alpha float64 `mapstructure:"alpha"`
	// Clip bounds how far one in-band observation moves the baseline, as a fraction of it, in
	// (0, 1] (default 0.05).
	Clip float64 `mapstructure:"clip"`
	// ShiftCalls is how many consecutive observations beyond the 1.5x band, not climbing, make a
	// new level (default 8).
	ShiftCalls int `mapstructure:"shift_calls"`
	// EscalationCalls is N, the number of recent observations whose trend decides escalation, in
	// [3, 16]; 0 turns escalation off (default 8).
	EscalationCalls int `mapstructure:"escalation_calls"`
	// EscalationGrowth is the least growth per observation of an escalating trend, as a fraction
	// (default 0.02: 2% per call).
	EscalationGrowth float64 `mapstructure:"escalation_growth"`
	// EscalationRatio is how many times its baseline the cost must be for a climb to be
	// escalating (default 1.75).
	EscalationRatio float64 `mapstructure:"escalation_ratio"`
	// MaxKeys bounds the number of baselines kept; the least recently observed are evicted
	// (default 10000).
	MaxKeys int `mapstructure:"max_keys"`
	// Storage is the ID of a storage extension (file_storage) that keeps the baselines across
	// restarts; empty keeps them in memory only.
	Storage *component.ID `mapstructure:"storage"`
}

// DefaultSettings returns the defaults with a warm-up of warmup observations.
func DefaultSettings(warmup int64) Settings {
	d := DefaultConfig()
	return Settings{
		Multiplier: d.Multiplier, WarmupCalls: warmup, MinCostUSD: 0.01, Alpha: d.Alpha, Clip: d.Clip,
		ShiftCalls: d.ShiftCalls, EscalationCalls: d.EscalationCalls, EscalationGrowth: d.EscalationGrowth,
		EscalationRatio: d.EscalationRatio, MaxKeys: 10000,
	}
}

// Config validates the settings and converts them to a Config; an error names the YAML key (under
// baseline.) of every bad value. Settings has no Validate method on purpose: the collector's
// config walk would call it once more for every component embedding it; each component's
// Validate calls Config instead.
func (s Settings) Config() (Config, error) {
	var errs error
	if !(s.Multiplier > 1) || math.IsInf(s.Multiplier, 0) || s.Multiplier > maxMultiplier {
		errs = errors.Join(errs, fmt.Errorf("baseline.multiplier: %v must be a number above 1 and at most %d", s.Multiplier, maxMultiplier))
	}
	warmup := s.WarmupCalls
	switch {
	case s.Warmup < 0:
		errs = errors.Join(errs, fmt.Errorf("baseline.warmup: %d must be at least 1 (warmup is the older spelling of warmup_calls)", s.Warmup))
	case s.Warmup > 0:
		warmup = s.Warmup
	case s.WarmupCalls < 1:
		errs = errors.Join(errs, fmt.Errorf("baseline.warmup_calls: %d must be at least 1", s.WarmupCalls))
	}
	floor, err := money.FromUSD(s.MinCostUSD)
	if err != nil {
		errs = errors.Join(errs, fmt.Errorf("baseline.min_cost_usd: %v: %w", s.MinCostUSD, err))
	}
	if !(s.Alpha > 0 && s.Alpha <= 1) {
		errs = errors.Join(errs, fmt.Errorf("baseline.alpha: %v must be in (0, 1]", s.Alpha))
	}
	if s.MaxKeys < 1 {
		errs = errors.Join(errs, fmt.Errorf("baseline.max_keys: %d must be at least 1", s.MaxKeys))
	}
	if errs != nil {
		return Config{}, errs
	}
	c := DefaultConfig()
	c.Multiplier, c.WarmUp, c.Floor, c.Alpha, c.Clip, c.MaxKeys = s.Multiplier, warmup, floor, s.Alpha, s.Clip, s.MaxKeys
	c.ShiftCalls, c.EscalationCalls, c.EscalationGrowth, c.EscalationRatio = s.ShiftCalls, s.EscalationCalls, s.EscalationGrowth, s.EscalationRatio
	if err := c.Validate(); err != nil {
		// The remaining checks' messages start with the field's YAML key.
		key, rest, _ := strings.Cut(err.Error(), " ")
		return Config{}, fmt.Errorf("baseline.%s: %s", key, rest)
	}
	return c, nil
}
