package policy

import (
	"strings"
	"testing"
)

func TestMaxPendingApprovals(t *testing.T) {
	for _, tc := range []struct {
		yml  string
		want int64
	}{
		{"version: v1\n", DefaultMaxPendingPerAgent},
		{"version: v1\napprovals: {max_pending_per_agent: 3}\n", 3},
		{"version: v1\napprovals: {max_pending_per_agent: 0}\n", 0},
		{"version: v1\napprovals: {}\n", DefaultMaxPendingPerAgent},
	} {
		p, err := Parse("policy.yaml", []byte(tc.yml))
		if err != nil {
			t.Fatalf("%q: %v", tc.yml, err)
		}
		if got := p.MaxPendingApprovals(); got != tc.want {
			t.Errorf("%q: max pending %d, want %d", tc.yml, got, tc.want)
		}
	}
	for _, tc := range []struct{ yml, want string }{
		{"version: v1\napprovals: {max_pending_per_agent: -1}\n", "approvals.max_pending_per_agent: -1 is below the minimum of 0"},
		{"version: v1\napprovals: {max_pending_per_agent: many}\n", "approvals.max_pending_per_agent: \"many\" is not an integer"},
		{"version: v1\napprovals: {max_pending: 3}\n", "max_pending"},
		{"version: v1\napprovals: 3\n", "approvals"},
	} {
		errs := parseErrors(t, tc.yml)
		if len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
			t.Errorf("%q: %q, want one problem containing %q", tc.yml, errs, tc.want)
		}
	}
}
