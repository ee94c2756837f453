package pricing_test

import (
	"fmt"

	"github.com/agentcost/agentcost/internal/pricing"
)

func ExampleTable_Lookup() {
	table, err := pricing.Default()
	if err != nil {
		panic(err)
	}
	// A dated snapshot the table does not list resolves to its model.
	e, ok := table.Lookup("gpt-5.4-mini-2026-09-30", "openai")
	if !ok {
		panic("no price")
	}
	cost, err := e.Cost(pricing.Usage{InputTokens: 1200, OutputTokens: 350})
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Model, e.Source, cost.Total, "USD")
	fmt.Println(table.Explain("us.anthropic.claude-haiku-4-5-20251001-v1:0", "aws.bedrock").Reason)
	// Output:
	// gpt-5.4-mini litellm-2026-07-24 0.002475 USD
	// "us.anthropic.claude-haiku-4-5-20251001-v1:0" matched "claude-haiku-4-5-20251001" by regional prefix, vendor prefix, version suffix; source litellm-2026-07-24
}
