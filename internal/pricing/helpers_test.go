package pricing

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math/big"
	"os"
	"sync"
	"testing"
)

const fullFile = "testdata/litellm-model-prices-2025-09-full.json.gz"

var fullData struct {
	once sync.Once
	data []byte
	err  error
}

// fullJSON returns the complete LiteLLM price map of 2025-09 (the upstream shape, ~1,700 entries).
func fullJSON(tb testing.TB) []byte {
	tb.Helper()
	fullData.once.Do(func() {
		f, err := os.Open(fullFile)
		if err != nil {
			fullData.err = err
			return
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			fullData.err = err
			return
		}
		fullData.data, fullData.err = io.ReadAll(zr)
	})
	if fullData.err != nil {
		tb.Fatal(fullData.err)
	}
	return fullData.data
}

func fullLayer(tb testing.TB) *Layer {
	tb.Helper()
	l, err := ParseLiteLLM(fullJSON(tb), "litellm-2025-09-full.json", "litellm-2025-09")
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func embeddedLayer(tb testing.TB) *Layer {
	tb.Helper()
	l, err := DefaultLayer()
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func mustBuild(tb testing.TB, layers ...*Layer) *Table {
	tb.Helper()
	t, err := Build(layers...)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// rawPrices decodes a LiteLLM file independently of the loader: model → field → decimal text.
func rawPrices(tb testing.TB, data []byte) map[string]map[string]any {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]map[string]any
	if err := dec.Decode(&m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// part is a token count priced at a named column of a LiteLLM entry.
type part struct {
	tokens int64
	field  string
}

// oracleNanos prices parts with arbitrary-precision rationals straight from the file's decimal text
// and rounds the sum once, half to even, to nano-dollars.
func oracleNanos(tb testing.TB, entry map[string]any, parts ...part) int64 {
	tb.Helper()
	sum := new(big.Rat)
	for _, p := range parts {
		v, ok := entry[p.field].(json.Number)
		if !ok {
			tb.Fatalf("file has no number %q", p.field)
		}
		price, ok := new(big.Rat).SetString(string(v))
		if !ok {
			tb.Fatalf("bad number %q", v)
		}
		sum.Add(sum, price.Mul(price, new(big.Rat).SetInt64(p.tokens)))
	}
	return roundHalfEven(sum.Mul(sum, big.NewRat(1_000_000_000, 1)))
}

func roundHalfEven(r *big.Rat) int64 {
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	twice := new(big.Int).Mul(m, big.NewInt(2))
	switch twice.Cmp(r.Denom()) {
	case 1:
		q.Add(q, big.NewInt(1))
	case 0:
		if q.Bit(0) == 1 {
			q.Add(q, big.NewInt(1))
		}
	}
	return q.Int64()
}
