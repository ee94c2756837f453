package decide

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"strings"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// idEncoding is lowercase base32 with its alphabet in ASCII order, so that ids sort as their bytes.
var idEncoding = base32.NewEncoding("234567abcdefghijklmnopqrstuvwxyz").WithPadding(base32.NoPadding)

// newID returns prefix, "_" and 128 bits in lowercase base32: the time in milliseconds (48 bits)
// then 80 random bits. Ids made later sort later, so the ledger appends new reservations and
// approvals at the end of its B+tree instead of dirtying a random page for each.
func newID(prefix string) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return prefix + "_" + idEncoding.EncodeToString(b[:])
}

// leaseID returns the lease id of a decision granted to agent: the decision id and a MAC over
// both, so that an agent can release only leases granted to itself without a lookup.
func (e *Engine) leaseID(decisionID, agent string) string {
	return decisionID + "." + e.leaseMAC(decisionID, agent)
}

func (e *Engine) leaseMAC(decisionID, agent string) string {
	m := e.macs.Get().(hash.Hash)
	defer e.macs.Put(m)
	m.Reset()
	m.Write([]byte("lease\x00"))
	m.Write([]byte(decisionID))
	m.Write([]byte{0})
	m.Write([]byte(agent))
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(m.Sum(sum[:0])[:16])
}

// parseTraceparent returns the trace id of a W3C traceparent header, or "" when the header is
// absent or invalid (which W3C trace context says to ignore).
func parseTraceparent(h string) string {
	h = strings.TrimSpace(h)
	if len(h) < 55 {
		return ""
	}
	version, rest := h[:2], h[2:]
	if !lowerHex(version) || version == "ff" || (version == "00" && len(h) != 55) {
		return ""
	}
	if len(rest) > 53 && rest[53] != '-' {
		return ""
	}
	if rest[0] != '-' || rest[33] != '-' || rest[50] != '-' {
		return ""
	}
	trace, parent, flags := rest[1:33], rest[34:50], rest[51:53]
	if !lowerHex(trace) || !lowerHex(parent) || !lowerHex(flags) ||
		trace == strings.Repeat("0", 32) || parent == strings.Repeat("0", 16) {
		return ""
	}
	return trace
}

func lowerHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// ledgerScope maps a policy scope to the ledger's.
func ledgerScope(s policy.Scope) ledger.Scope {
	switch s {
	case policy.ScopeTeam:
		return ledger.ScopeTeam
	case policy.ScopeAgent:
		return ledger.ScopeAgent
	case policy.ScopeRun:
		return ledger.ScopeRun
	}
	return ledger.ScopeFleet
}

// ledgerWindow maps a policy window to the ledger's (the names are the same).
func ledgerWindow(w policy.Window) ledger.Window { return ledger.Window(w.String()) }

// ledgerID is the ledger id of a scope: the fleet has one.
func ledgerID(s policy.Scope, id string) string {
	if s == policy.ScopeFleet {
		return ledger.FleetID
	}
	return id
}

// evidenceConstraints is the constraints member of an evidence record: nil when none is set.
func evidenceConstraints(c decisionapi.Constraints) *decisionapi.Constraints {
	if c.IsZero() {
		return nil
	}
	return &c
}

// nanos converts a dollar amount of a validated request to exact nano-dollars: the one place
// where the decision API's dollars become money.
func nanos(usd float64) money.Nanos {
	n, _ := money.FromUSD(usd) // validated: finite, not negative, in range
	return n
}

// optionalNanos converts an optional dollar amount of a validated request, and reports whether it
// was given.
func optionalNanos(usd *float64) (money.Nanos, bool) {
	if usd == nil {
		return 0, false
	}
	return nanos(*usd), true
}

// usd converts nano-dollars to display dollars.
func usd(n money.Nanos) float64 { return n.USD() }
