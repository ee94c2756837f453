package clients

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var mdLink = regexp.MustCompile(`\]\(([^)#\s]+)(#[^)\s]*)?\)`)

// TestDocLinksResolve checks that every relative link of the clients' READMEs and of
// docs/instrumenting.md names a file or directory of the repository.
func TestDocLinksResolve(t *testing.T) {
	docs := []string{"python/README.md", "typescript/README.md", "../docs/instrumenting.md"}
	n := 0
	for _, doc := range docs {
		raw, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(raw), -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			n++
			if _, err := os.Stat(filepath.Join(filepath.Dir(doc), target)); err != nil {
				t.Errorf("%s: link %s does not resolve: %v", doc, target, err)
			}
		}
	}
	if n < 10 {
		t.Errorf("found only %d relative links; the pattern no longer matches", n)
	}
}
