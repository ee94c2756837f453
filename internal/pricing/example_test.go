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
	m := table.Explain("gpt-5.4-mini-2026-09-30", "openai")
	fmt.Println(m.Reason)
	fmt.Println("agentcost.price.match:", m.Kind)
	// Output:
	// gpt-5.4-mini litellm-2026-07-18 0.002475 USD
	// "gpt-5.4-mini-2026-09-30" matched "gpt-5.4-mini" by dated snapshot; source litellm-2026-07-18
	// agentcost.price.match: dated_snapshot
}
