package pricing

import (
	"testing"

	"github.com/agentcost/agentcost/internal/money"
)

func TestReprice(t *testing.T) {
	tab, err := Load(true)
	if err != nil {
		t.Fatal(err)
	}
	from, _ := tab.Lookup("gpt-4o", "")
	to, _ := tab.Lookup("gpt-4o-mini", "")
	if from == nil || to == nil {
		t.Fatal("embedded table lacks gpt-4o or gpt-4o-mini")
	}
	est := money.Nanos(1_000_000_000) // $1
	got, ok := tab.Reprice(est, "gpt-4o", "gpt-4o-mini")
	if !ok {
		t.Fatal("Reprice refused two priced models")
	}
	num := int64(to.Standard.Input + to.Standard.Output)
	den := int64(from.Standard.Input + from.Standard.Output)
	want := (int64(est)*num + den - 1) / den
	if int64(got) != want || got >= est || got <= 0 {
		t.Fatalf("Reprice($1, gpt-4o -> gpt-4o-mini) = %s, want %d nanos (below $1)", got, want)
	}
	if _, ok := tab.Reprice(est, "no-such-model-xyz", "gpt-4o-mini"); ok {
		t.Fatal("an unknown source model was re-priced")
	}
	if _, ok := tab.Reprice(est, "gpt-4o", "no-such-model-xyz"); ok {
		t.Fatal("an unknown target model was re-priced")
	}
	if !tab.Knows("gpt-4o-mini") || tab.Knows("no-such-model-xyz") {
		t.Fatal("Knows is wrong")
	}
	// Rounded up: a re-estimate never under-reserves; the largest amount does not overflow.
	if got, _ := tab.Reprice(1, "gpt-4o", "gpt-4o-mini"); got != 1 {
		t.Fatalf("Reprice(1 nano) = %d, want 1", got)
	}
	if got, ok := tab.Reprice(money.MaxNanos, "gpt-4o-mini", "gpt-4o"); !ok || got != money.MaxNanos {
		t.Fatalf("Reprice(max, up) = %d %v, want clamped to MaxNanos", got, ok)
	}
}
