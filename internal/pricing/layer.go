package pricing

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/agentcost/agentcost/internal/boundedfile"
	"github.com/agentcost/agentcost/internal/yamldoc"
)

// Layer is the content of one price file: entries, aliases and per-provider fallback prices. Build
// stacks layers; later layers win.
type Layer struct {
	// Source labels the layer's entries (Entry.Source).
	Source string
	// File is the file the layer was read from, for error messages.
	File string
	// Entries are the priced models, in file order.
	Entries []*Entry
	// Aliases map names to models (YAML `aliases`).
	Aliases []Alias
	// Fallbacks are per-provider prices for models the table does not know (YAML `fallback`).
	Fallbacks []*Entry
	// Tools are per-call prices of tool and MCP calls (YAML `tools`).
	Tools []*ToolPrice
	// Skipped counts the file's entries without token prices (images, audio, `sample_spec`).
	Skipped int
	// SkippedModels names the skipped entries.
	SkippedModels []string
	// Skips are the skipped entries with their line and reason, in file order.
	Skips []Skip
}

// skip records an entry the loader did not load.
func (l *Layer) skip(s Skip) {
	l.Skipped++
	l.SkippedModels = append(l.SkippedModels, s.Model)
	l.Skips = append(l.Skips, s)
}

// Alias names a model by another name.
type Alias struct {
	// Name is the alias, matched like a table key.
	Name string
	// Target is the model it stands for, resolved with the table's matching rules at Build.
	Target string
	// Line is the line of the alias in its file.
	Line int
}

// FileError is an error in a price file. It names the file and, where known, the line, the model
// and the field.
type FileError struct {
	File  string
	Line  int
	Model string
	Field string
	Err   error
}

// Error formats the error as `f.json:12: "gpt-4o".x: reason` (yamldoc.Error's form, the model
// quoted since model names hold dots).
func (e *FileError) Error() string {
	field := e.Field
	if e.Model != "" {
		field = yamldoc.Join(strconv.Quote(e.Model), e.Field)
	}
	return (&yamldoc.Error{File: e.File, Line: e.Line, Field: field, Msg: e.Err.Error()}).Error()
}

// Unwrap returns the underlying error.
func (e *FileError) Unwrap() error { return e.Err }

// LoadFile reads a price file: LiteLLM JSON for a `.json` name, the YAML format for `.yaml` or
// `.yml`; any other name is read as JSON when its content starts with `{`, else as YAML. The
// layer's source label is the file's base name unless a YAML file sets `source`. Files above
// boundedfile.DefaultLimit are refused (LoadFileLimit sets another bound).
func LoadFile(path string) (*Layer, error) { return LoadFileLimit(path, 0) }

// LoadFileLimit is LoadFile with a byte bound on the file (limit <= 0: boundedfile.DefaultLimit),
// checked on its size before it is read; a larger file is a *FileError like any rejected content.
func LoadFileLimit(path string, limit int64) (*Layer, error) {
	data, err := boundedfile.Read(path, limit)
	if tooLarge := (*boundedfile.TooLargeError)(nil); errors.As(err, &tooLarge) {
		// An invalid file, not an I/O failure: a *FileError like any other rejected content.
		return nil, &FileError{File: path, Err: fmt.Errorf("%d bytes, larger than the limit of %d bytes", tooLarge.Size, tooLarge.Limit)}
	}
	if err != nil {
		return nil, fmt.Errorf("loading price file %q: %w", path, err)
	}
	source := filepath.Base(path)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return ParseLiteLLM(data, path, source)
	case ".yaml", ".yml":
		return ParseYAML(data, path)
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return ParseLiteLLM(data, path, source)
	}
	return ParseYAML(data, path)
}

var embedded struct {
	once  sync.Once
	layer *Layer
	err   error
}

// DefaultLayer returns the embedded default price layer (LiteLLM's price map at commit DefaultCommit,
// source label DefaultSource). Its entries are shared and must not be modified.
func DefaultLayer() (*Layer, error) {
	embedded.once.Do(func() {
		embedded.layer, embedded.err = ParseLiteLLM(defaultJSON, "embedded:"+DefaultSource+".json", DefaultSource)
	})
	if embedded.err != nil {
		return nil, embedded.err
	}
	l := *embedded.layer
	return &l, nil
}

// Default returns a table of the embedded default prices alone.
func Default() (*Table, error) {
	l, err := DefaultLayer()
	if err != nil {
		return nil, err
	}
	return Build(l)
}

// LoadWithDefault builds a table of the embedded default prices overlaid with the given price
// files, later files winning.
func LoadWithDefault(paths ...string) (*Table, error) { return Load(true, paths...) }

// Load builds a table of the given price files, later files winning, over the embedded default
// when withDefault is set.
func Load(withDefault bool, paths ...string) (*Table, error) {
	return LoadLimit(withDefault, 0, paths...)
}

// LoadLimit is Load with a byte bound on each file (limit <= 0: boundedfile.DefaultLimit).
func LoadLimit(withDefault bool, limit int64, paths ...string) (*Table, error) {
	var layers []*Layer
	if withDefault {
		def, err := DefaultLayer()
		if err != nil {
			return nil, err
		}
		layers = append(layers, def)
	}
	for _, p := range paths {
		l, err := LoadFileLimit(p, limit)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	return Build(layers...)
}
