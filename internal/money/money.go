// Package money holds agentcost's exact money arithmetic: amounts are int64 nano-dollars, per-token
// rates are int64 femto-dollars, and the one rounding rule (half-even) lives here.
package money

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Nanos is an amount of money in nano-dollars (1e-9 USD). It is never negative where it books spend.
type Nanos int64

// Rate is a per-token price in femto-dollars (1e-15 USD per token), precise enough to hold every
// published per-token price exactly ($0.0375 per million tokens is 37,500 femto-dollars per token).
type Rate int64

const (
	// NanosPerUSD is the number of nano-dollars in one dollar.
	NanosPerUSD = 1_000_000_000
	// FemtosPerNano is the number of femto-dollars in one nano-dollar.
	FemtosPerNano = 1_000_000
	// MaxNanos is the largest amount accepted from outside: one billion dollars.
	MaxNanos Nanos = 1_000_000_000 * NanosPerUSD
)

// AddSat returns a+b, saturating at the int64 bounds instead of wrapping, so that a sum of
// amounts or counts never turns negative by overflow.
func AddSat[T ~int64](a, b T) T {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}

// ErrNegative is returned for a negative amount where only non-negative amounts make sense.
var ErrNegative = errors.New("amount is negative")

// USD returns n in dollars, for display and for float-valued telemetry only.
func (n Nanos) USD() float64 { return float64(n) / NanosPerUSD }

// String formats n as an exact decimal dollar amount, trailing zeros trimmed ("0.000150225").
func (n Nanos) String() string {
	neg := n < 0
	u := uint64(n)
	if neg {
		u = uint64(-n)
	}
	s := strconv.FormatUint(u/NanosPerUSD, 10)
	if frac := u % NanosPerUSD; frac != 0 {
		f := strings.TrimRight(fmt.Sprintf("%09d", frac), "0")
		s += "." + f
	}
	if neg {
		return "-" + s
	}
	return s
}

// FromUSD converts a dollar amount given as a float (a JSON number) to nano-dollars, exactly as its
// shortest decimal form reads, rounded half-even. NaN, infinities, negative values and values above
// MaxNanos are errors.
func FromUSD(f float64) (Nanos, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("amount %v is not a finite number", f)
	}
	if f < 0 {
		return 0, ErrNegative
	}
	v, err := parseScaled(strconv.FormatFloat(f, 'g', -1, 64), 9)
	if err != nil {
		return 0, err
	}
	if v > int64(MaxNanos) {
		return 0, fmt.Errorf("amount %v exceeds the maximum of %s USD", f, MaxNanos)
	}
	return Nanos(v), nil
}

// ParseUSD parses a decimal dollar amount ("12.5", "1e-3") into nano-dollars, rounded half-even.
func ParseUSD(s string) (Nanos, error) {
	v, err := parseScaled(s, 9)
	if err != nil {
		return 0, err
	}
	if v > int64(MaxNanos) {
		return 0, fmt.Errorf("amount %q exceeds the maximum of %s USD", s, MaxNanos)
	}
	return Nanos(v), nil
}

// RateFromPerToken converts a per-token dollar price written as a decimal ("1.5e-07", the LiteLLM
// form) into a Rate, rounded half-even at the femto-dollar.
func RateFromPerToken(s string) (Rate, error) {
	v, err := parseScaled(s, 15)
	return Rate(v), err
}

// RateFromPerMillion converts a dollar price per million tokens ("0.15") into a Rate.
func RateFromPerMillion(s string) (Rate, error) {
	v, err := parseScaled(s, 9) // per-million at 1e-15 per token is per-one at 1e-9
	return Rate(v), err
}

// RateFromFloat converts a per-token dollar price given as a float into a Rate via its shortest
// decimal form, so 1.5e-07 is exactly 150,000,000 femto-dollars.
func RateFromFloat(f float64) (Rate, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("price %v is not a finite number", f)
	}
	return RateFromPerToken(strconv.FormatFloat(f, 'g', -1, 64))
}

// PerMillionUSD returns the rate as dollars per million tokens, for display.
func (r Rate) PerMillionUSD() float64 { return float64(r) / 1e9 }

// Acc accumulates token × rate products exactly in 128 bits (femto-dollars) so that a span's parts are
// summed before the single rounding to nano-dollars. The zero value is an empty sum.
type Acc struct {
	hi, lo   uint64
	overflow bool
}

// Add adds tokens × rate. Negative tokens or rates are ignored and reported as false: a cost part is
// never negative.
func (a *Acc) Add(tokens int64, rate Rate) bool {
	if tokens < 0 || rate < 0 {
		return false
	}
	if tokens == 0 || rate == 0 {
		return true
	}
	hi, lo := bits.Mul64(uint64(tokens), uint64(rate))
	var carry uint64
	a.lo, carry = bits.Add64(a.lo, lo, 0)
	var c2 uint64
	a.hi, c2 = bits.Add64(a.hi, hi, carry)
	if c2 != 0 {
		a.overflow = true
	}
	return true
}

// Nanos rounds the sum half-even to nano-dollars. ok is false when the sum does not fit an int64
// amount (it then returns 0; callers treat that as malformed usage).
func (a *Acc) Nanos() (n Nanos, ok bool) {
	if a.overflow || a.hi >= FemtosPerNano {
		return 0, false
	}
	q, r := bits.Div64(a.hi, a.lo, FemtosPerNano)
	if roundUp(q, r, FemtosPerNano) {
		q++
	}
	if q > math.MaxInt64 {
		return 0, false
	}
	return Nanos(q), true
}

// DivRound returns num/den rounded half-even; den must be positive and num non-negative.
func DivRound(num, den int64) int64 {
	if den <= 0 || num < 0 {
		panic("money.DivRound: negative operand")
	}
	q, r := num/den, num%den
	if roundUp(uint64(q), uint64(r), uint64(den)) {
		q++
	}
	return q
}

// roundUp is the one rounding rule: half to even.
func roundUp(q, r, den uint64) bool {
	twice := r * 2
	if r > math.MaxUint64/2 || twice > den {
		return true
	}
	return twice == den && q%2 == 1
}

// parseScaled parses a non-negative decimal (optionally with an exponent) and returns it multiplied by
// 10^scale, rounded half-even, as an int64.
func parseScaled(s string, scale int) (int64, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty amount")
	}
	if s[0] == '-' {
		if strings.Trim(s[1:], "0.") == "" {
			return 0, nil
		}
		return 0, ErrNegative
	}
	s = strings.TrimPrefix(s, "+")
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 400 || e < -400 {
			return 0, fmt.Errorf("invalid decimal %q", orig)
		}
		exp = e
		s = s[:i]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" && frac == "" {
		return 0, fmt.Errorf("invalid decimal %q", orig)
	}
	digits := intPart + frac
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid decimal %q", orig)
		}
	}
	// value = digits × 10^(exp - len(frac) + scale)
	shift := exp - len(frac) + scale
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return 0, nil
	}
	if shift >= 0 {
		if len(digits)+shift > 19 {
			return 0, fmt.Errorf("decimal %q is out of range", orig)
		}
		v, err := strconv.ParseInt(digits+strings.Repeat("0", shift), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("decimal %q is out of range", orig)
		}
		return v, nil
	}
	cut := len(digits) + shift // digits kept before the rounding point
	if cut < 0 {
		return 0, nil
	}
	keep, rest := digits[:cut], digits[cut:]
	var v int64
	if keep != "" {
		var err error
		if v, err = strconv.ParseInt(keep, 10, 64); err != nil || v == math.MaxInt64 {
			return 0, fmt.Errorf("decimal %q is out of range", orig)
		}
	}
	// Half-even on the decimal remainder: compare rest with "5000…".
	switch {
	case rest[0] > '5':
		v++
	case rest[0] == '5':
		if strings.Trim(rest[1:], "0") != "" || v%2 == 1 {
			v++
		}
	}
	return v, nil
}
