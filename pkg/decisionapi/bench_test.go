package decisionapi

import (
	"bytes"
	"encoding/json"
	"testing"
)

// BenchmarkDecodeValidate measures what the server spends on a typical decision request body
// before policy evaluation: strict decoding and validation.
func BenchmarkDecodeValidate(b *testing.B) {
	r := validRequest()
	body, _ := json.Marshal(r)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var req DecisionRequest
		if err := Decode(bytes.NewReader(body), DefaultBodyLimit, &req); err != nil {
			b.Fatal(err)
		}
		if err := req.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
