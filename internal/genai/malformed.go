package genai

import (
	"math"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Malformed is a bit set of the reasons a span's usage cannot be trusted. A token count that is
// malformed in itself (string, negative, NaN, fractional, huge) is dropped (read as 0); the
// relational reasons keep the values and only flag them.
type Malformed uint16

// The Malformed reasons.
const (
	MalformedString                 Malformed = 1 << iota // a token count given as a string
	MalformedType                                         // a token count given as a bool, bytes, map or slice
	MalformedNegative                                     // a negative token count
	MalformedNonFinite                                    // a NaN or infinite token count
	MalformedFraction                                     // a double token count with a fractional part
	MalformedHuge                                         // a token count above MaxTokens
	MalformedCacheExceedsInput                            // cache read + cache write > input (input including cache)
	MalformedReasoningExceedsOutput                       // reasoning > output
	MalformedNoModel                                      // usage present but no model
)

var malformedNames = [...]string{
	"string", "type", "negative", "non_finite", "fraction", "huge",
	"cache_exceeds_input", "reasoning_exceeds_output", "no_model",
}

// Has reports whether every reason in r is set in m.
func (m Malformed) Has(r Malformed) bool { return r != 0 && m&r == r }

// String lists the reasons, comma separated ("negative,no_model"); "" when m is zero.
func (m Malformed) String() string {
	if m == 0 {
		return ""
	}
	var b strings.Builder
	for i, name := range malformedNames {
		if m&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(name)
		}
	}
	return b.String()
}

// First returns the name of the lowest reason set, a bounded value for a metric label.
func (m Malformed) First() string {
	for i, name := range malformedNames {
		if m&(1<<i) != 0 {
			return name
		}
	}
	return ""
}

// tokenValue reads a token count from an attribute value: ints and integral doubles only.
func tokenValue(v pcommon.Value) (int64, Malformed) {
	switch v.Type() {
	case pcommon.ValueTypeInt:
		return checkTokens(v.Int())
	case pcommon.ValueTypeDouble:
		return tokenFromDouble(v.Double())
	case pcommon.ValueTypeStr:
		return 0, MalformedString
	default:
		return 0, MalformedType
	}
}

func checkTokens(n int64) (int64, Malformed) {
	switch {
	case n < 0:
		return 0, MalformedNegative
	case n > MaxTokens:
		return 0, MalformedHuge
	}
	return n, 0
}

func tokenFromDouble(f float64) (int64, Malformed) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return 0, MalformedNonFinite
	case f != math.Trunc(f):
		return 0, MalformedFraction
	case f < 0:
		return 0, MalformedNegative
	case f > MaxTokens:
		return 0, MalformedHuge
	}
	return int64(f), 0
}
