// Package readmetest reads the fenced code blocks of the project's Markdown documents, so tests
// can run what a README shows: its YAML through the collector's own config resolver, its CLI
// sessions against transcripts.
package readmetest

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
)

// Block is one fenced code block of a Markdown file.
type Block struct {
	// Path is the Markdown file.
	Path string
	// Line is the line of the opening fence (1-based).
	Line int
	// Lang is the fence's info string ("yaml", "sh", or empty).
	Lang string
	// Text is the block's content, ending in a newline unless empty.
	Text string
}

// Where names the block as path:line, for failure messages.
func (b Block) Where() string { return b.Path + ":" + strconv.Itoa(b.Line) }

// Blocks returns the fenced blocks of the Markdown file path whose info string is lang ("*":
// every block). An unterminated fence fails the test.
func Blocks(t testing.TB, path, lang string) []Block {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out  []Block
		cur  *Block
		text strings.Builder
		n    int
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &Block{Path: path, Line: n, Lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))}
			text.Reset()
		case cur != nil && trimmed == "```":
			cur.Text = text.String()
			if lang == "*" || cur.Lang == lang {
				out = append(out, *cur)
			}
			cur = nil
		case cur != nil:
			text.WriteString(line)
			text.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: unterminated code block", cur.Where())
	}
	return out
}

// Resolve loads a YAML block as the collector loads its --config file: through confmap's resolver
// with the file and env providers, so ${env:VAR} (and ${VAR}) expand from the process environment
// (set them with t.Setenv) and YAML a user could not load fails here too.
func Resolve(t testing.TB, b Block) (*confmap.Conf, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "block.yaml")
	if err := os.WriteFile(path, []byte(b.Text), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := confmap.NewResolver(confmap.ResolverSettings{
		URIs:              []string{"file:" + path},
		ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
		DefaultScheme:     "env",
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Shutdown(context.Background()) }()
	return r.Resolve(context.Background())
}

// MarkdownFiles returns the Markdown files under root (README.md files and docs/*.md), skipping
// hidden directories and testdata.
func MarkdownFiles(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".md") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
