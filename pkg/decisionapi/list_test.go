package decisionapi_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

func TestParseListParams(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  decisionapi.ListParams
		field string
	}{
		{"", decisionapi.ListParams{}, ""},
		{"limit=1&cursor=abc", decisionapi.ListParams{Limit: 1, Cursor: "abc"}, ""},
		{"limit=1000", decisionapi.ListParams{Limit: 1000}, ""},
		{"limit=0", decisionapi.ListParams{}, "limit"},
		{"limit=1001", decisionapi.ListParams{}, "limit"},
		{"limit=-5", decisionapi.ListParams{}, "limit"},
		{"limit=ten", decisionapi.ListParams{}, "limit"},
		{"limit=", decisionapi.ListParams{}, "limit"},
		{"cursor=", decisionapi.ListParams{}, "cursor"},
		{"cursor=" + strings.Repeat("a", 1025), decisionapi.ListParams{}, "cursor"},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := decisionapi.ParseListParams(q)
		var fe *decisionapi.FieldError
		switch {
		case tc.field == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %+v, %v; want %+v", tc.query, got, err, tc.want)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%q: %v, want a field error naming %s", tc.query, err, tc.field)
		}
	}
	if got := (decisionapi.ListParams{}).PageSize(); got != decisionapi.DefaultListLimit {
		t.Errorf("default page size %d", got)
	}
	if got := (decisionapi.ListParams{Limit: 7, Cursor: "c"}).Query().Encode(); got != "cursor=c&limit=7" {
		t.Errorf("Query() = %q", got)
	}
}
