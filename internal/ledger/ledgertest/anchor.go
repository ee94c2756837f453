package ledgertest

import (
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/ledger"
)

// testEvidenceAnchor checks that an evidence chain's anchor only moves forward (unless forced),
// is kept per chain, survives a reopen and rejects malformed heads.
func testEvidenceAnchor(t *testing.T, b Backend) {
	l, reopen := open(t, b)
	an, ok := l.(ledger.EvidenceAnchorer)
	if !ok {
		t.Fatalf("%T does not store evidence anchors", l)
	}
	h := func(c string) string { return strings.Repeat(c, 64) }
	set := func(a ledger.EvidenceAnchor, force bool) {
		t.Helper()
		if err := an.SetEvidenceAnchor(ctx, a, force); err != nil {
			t.Fatal(err)
		}
	}
	get := func(an ledger.EvidenceAnchorer, chain string) ledger.EvidenceAnchor {
		t.Helper()
		a, ok, err := an.EvidenceAnchor(ctx, chain)
		if err != nil || !ok {
			t.Fatalf("anchor of %s: %v %v", chain, ok, err)
		}
		return a
	}
	if _, ok, err := an.EvidenceAnchor(ctx, "none"); ok || err != nil {
		t.Fatalf("unknown chain: %v %v", ok, err)
	}
	set(ledger.EvidenceAnchor{ChainID: "A", Seq: 5, Hash: h("a")}, false)
	set(ledger.EvidenceAnchor{ChainID: "A", Seq: 3, Hash: h("b")}, false)
	set(ledger.EvidenceAnchor{ChainID: "A", Seq: 5, Hash: h("c")}, false)
	if a := get(an, "A"); a.Seq != 5 || a.Hash != h("a") {
		t.Fatalf("anchor moved back: %+v", a)
	}
	set(ledger.EvidenceAnchor{ChainID: "A", Seq: 7, Hash: h("d")}, false)
	if a := get(an, "A"); a.Seq != 7 || a.Hash != h("d") {
		t.Fatalf("anchor did not move forward: %+v", a)
	}
	set(ledger.EvidenceAnchor{ChainID: "B", Seq: 1, Hash: h("e")}, false)
	set(ledger.EvidenceAnchor{ChainID: "A", Seq: 2, Hash: h("f")}, true)
	for _, bad := range []ledger.EvidenceAnchor{{ChainID: "", Seq: 1, Hash: h("a")}, {ChainID: "C", Seq: 0, Hash: h("a")}, {ChainID: "C", Seq: 1, Hash: "xyz"}} {
		if err := an.SetEvidenceAnchor(ctx, bad, false); err == nil {
			t.Errorf("malformed anchor %+v accepted", bad)
		}
	}
	l = reopen()
	an = l.(ledger.EvidenceAnchorer)
	all, err := an.EvidenceAnchors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.EvidenceAnchor{{ChainID: "A", Seq: 2, Hash: h("f")}, {ChainID: "B", Seq: 1, Hash: h("e")}}
	if len(all) != len(want) || all[0] != want[0] || all[1] != want[1] {
		t.Fatalf("anchors after reopen %+v, want %+v (the forced one included)", all, want)
	}
}
