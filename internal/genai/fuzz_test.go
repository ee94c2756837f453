package genai

import (
	"encoding/binary"
	"math"
	"sort"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// fuzzKeys are the keys a fuzz input picks from: every key Extract knows plus a few it must ignore.
var fuzzKeys = func() []string {
	keys := []string{"http.request.method", "traceloop.workflow.name", "llm.vendor", "service.name",
		"gen_ai.agent.name", "team", "service.namespace", "tenant.id", "telemetry.sdk.name", "x"}
	for k := range keyIndex {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}()

// fuzzStrings are the string values a fuzz input picks from.
var fuzzStrings = []string{"", "gpt-4o", "claude-sonnet-4-5", "openai.chat", "Anthropic", "az.ai.inference",
	"ai.generateText", "ai.streamText.doStream", "openlit", "12", "-3", "NaN", "foo.chat.chat", "priority", "flex"}

// Value types a fuzz entry can take.
const (
	fuzzStr = iota
	fuzzInt
	fuzzDouble
	fuzzBool
	fuzzBytes
	fuzzSlice
	fuzzEmpty
	fuzzTypes
)

// decodeFuzz turns bytes into span and resource attributes: each entry is a key byte (the high
// bit puts it on the resource), a type byte and a value (8 bytes for numbers, 1 for strings).
func decodeFuzz(data []byte) (span, res pcommon.Map) {
	span, res = pcommon.NewMap(), pcommon.NewMap()
	for len(data) >= 2 {
		m := span
		if data[0]&0x80 != 0 {
			m = res
		}
		key := fuzzKeys[int(data[0]&0x7f)%len(fuzzKeys)]
		typ := int(data[1]) % fuzzTypes
		data = data[2:]
		var raw [8]byte
		n := copy(raw[:], data)
		switch typ {
		case fuzzStr:
			m.PutStr(key, fuzzStrings[int(raw[0])%len(fuzzStrings)])
			data = data[min(1, len(data)):]
			continue
		case fuzzInt:
			m.PutInt(key, int64(binary.LittleEndian.Uint64(raw[:])))
		case fuzzDouble:
			m.PutDouble(key, math.Float64frombits(binary.LittleEndian.Uint64(raw[:])))
		case fuzzBool:
			m.PutBool(key, raw[0]&1 == 1)
		case fuzzBytes:
			m.PutEmptyBytes(key).FromRaw(raw[:n])
		case fuzzSlice:
			m.PutEmptySlice(key).AppendEmpty().SetInt(int64(raw[0]))
		case fuzzEmpty:
			m.PutEmpty(key)
		}
		data = data[n:]
	}
	return span, res
}

// encodeFuzz is the inverse for seeds: int and string entries on the span.
func encodeFuzz(entries map[string]any) []byte {
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []byte
	for _, k := range keys {
		idx := sort.SearchStrings(fuzzKeys, k)
		switch v := entries[k].(type) {
		case int64:
			out = append(out, byte(idx), fuzzInt)
			out = binary.LittleEndian.AppendUint64(out, uint64(v))
		case float64:
			out = append(out, byte(idx), fuzzDouble)
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
		case string:
			for i, s := range fuzzStrings {
				if s == v {
					out = append(out, byte(idx), fuzzStr, byte(i))
				}
			}
		}
	}
	return out
}

func FuzzExtract(f *testing.F) {
	if len(fuzzKeys) > 128 {
		f.Fatalf("%d fuzz keys do not fit the 7-bit key selector", len(fuzzKeys))
	}
	f.Add(encodeFuzz(map[string]any{KeyRequestModel: "gpt-4o", KeyInputTokens: int64(100), KeyOutputTokens: int64(10)}), "chat")
	f.Add(encodeFuzz(map[string]any{"ai.model.id": "gpt-4o", "ai.model.provider": "openai.chat",
		"ai.usage.promptTokens": int64(5), "ai.usage.completionTokens": int64(7), "ai.operationId": "ai.generateText"}), "ai.generateText")
	f.Add(encodeFuzz(map[string]any{"llm.model_name": "claude-sonnet-4-5", "llm.token_count.prompt": int64(9),
		"llm.token_count.prompt_details.cache_read": int64(20), "llm.token_count.completion": 3.0}), "Messages")
	f.Add(encodeFuzz(map[string]any{"gen_ai.system": "az.ai.inference", "gen_ai.usage.prompt_tokens": -1.5,
		"gen_ai.usage.completion_tokens": math.NaN(), "gen_ai.usage.cost": 0.01}), "")
	f.Add(encodeFuzz(map[string]any{KeyInputTokens: "12", KeyReasoningTokens: int64(MaxTokens + 1)}), "x")
	f.Add([]byte{0x85, fuzzStr, 1, 0x03, fuzzInt, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "")

	f.Fuzz(func(t *testing.T, data []byte, name string) {
		span, resAttrs := decodeFuzz(data)
		res := ReadResource(resAttrs)
		c := Extract(span, name, &res)

		u := c.Usage
		for _, n := range []int64{u.InputTokens, u.OutputTokens, u.CacheReadTokens, u.CacheWriteTokens, u.ReasoningTokens} {
			if n < 0 || n > MaxTokens {
				t.Fatalf("token count %d out of range in %+v", n, u)
			}
		}
		if c.Malformed == 0 {
			if !u.InputExcludesCache && u.CacheReadTokens+u.CacheWriteTokens > u.InputTokens {
				t.Fatalf("cache exceeds input but not malformed: %+v", u)
			}
			if u.ReasoningTokens > u.OutputTokens {
				t.Fatalf("reasoning exceeds output but not malformed: %+v", u)
			}
			if c.HasUsage && c.Model == "" {
				t.Fatal("usage without a model but not malformed")
			}
		}
		if !c.HasUsage && u.InputTokens|u.OutputTokens|u.CacheReadTokens|u.CacheWriteTokens|u.ReasoningTokens != 0 {
			t.Fatalf("token counts %+v without HasUsage", u)
		}
		if NormalizeProvider(c.Provider) != c.Provider {
			t.Fatalf("provider %q is not normalised", c.Provider)
		}

		// Normalising is idempotent and keeps what the span says.
		Normalize(span, &c)
		again := Extract(span, name, &res)
		if again.Model != c.Model || again.Provider != c.Provider || again.Usage != c.Usage || again.Aggregate != c.Aggregate {
			t.Fatalf("after Normalize: %+v\nbefore: %+v", exported(again), exported(c))
		}
		n := span.Len()
		Normalize(span, &again)
		if span.Len() != n {
			t.Fatalf("a second Normalize wrote %d more attributes", span.Len()-n)
		}
	})
}
