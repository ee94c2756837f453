package budgetreceiver

import (
	"errors"
	"fmt"
	"strings"

	"github.com/agentcost/agentcost/internal/pricing"
)

// PricesConfig selects the price table the receiver re-estimates degraded requests with: the
// processor's sources (the embedded LiteLLM-derived table and price files, later files winning),
// so a model swap is priced as the processor will price its spans.
type PricesConfig struct {
	// Embedded includes the embedded default table derived from the LiteLLM price map (default
	// true).
	Embedded bool `mapstructure:"embedded"`
	// Files are price files (LiteLLM JSON or agentcost YAML) layered over it, later files winning;
	// each is bounded by max_file_bytes.
	Files []string `mapstructure:"files"`
}

func (c PricesConfig) validate() error {
	var errs error
	if !c.Embedded && len(c.Files) == 0 {
		errs = errors.New("prices: embedded is false and no files are given: degrade could re-price no model")
	}
	for i, f := range c.Files {
		if strings.TrimSpace(f) == "" {
			errs = errors.Join(errs, fmt.Errorf("prices.files[%d]: empty path", i))
		}
	}
	return errs
}

// load builds the table at start; a file that does not load fails the start, naming the key.
func (c PricesConfig) load(maxFileBytes int64) (*pricing.Table, error) {
	t, err := pricing.LoadLimit(c.Embedded, maxFileBytes, c.Files...)
	if err != nil {
		return nil, fmt.Errorf("prices: %w", err)
	}
	return t, nil
}
