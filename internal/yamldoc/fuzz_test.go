package yamldoc

import (
	"errors"
	"testing"
)

// FuzzDecode: any input decodes or is refused with problems that each name the file and say
// something; none panics or runs away (alias bombs stop at the node budget).
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		"title: t\npoints:\n  - {name: a, x: 1, amt: '2'}\nlabels: {k: v}\n",
		"title: t\nbomb:\n  - &a []\n  - &b [*a, *a]\n  - [*b, *b]\n",
		"- [[[", "{a: 1, a: 2}", "title: t\nlabels: {<<: {a: b}}\n", "---\n---\n", "on: yes\nsmall: 0x7f\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d doc
		err := Decode("f.yaml", data, &d, checks)
		if err == nil {
			return
		}
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.Errors) == 0 {
			t.Fatalf("error %v is not a list of problems", err)
		}
		for _, e := range errs.Errors {
			if e.File != "f.yaml" || e.Msg == "" || e.Line < 0 {
				t.Fatalf("problem %#v", e)
			}
		}
	})
}
