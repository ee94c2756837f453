// Package pricing holds agentcost's price table: loaders for LiteLLM's price map and for a small
// YAML format, model-name matching, and the cost arithmetic applied to every LLM span.
//
// # Layers and the table
//
// A Layer is one price file. Build stacks layers into a Table; later layers win, so user files
// override the embedded default (DefaultLayer, LiteLLM's map of 2026-07-24, source label
// "litellm-2026-07-24"). Every entry carries the label of its layer (Entry.Source).
//
// # Matching
//
// Table.Lookup resolves a span's model and provider names. Rules, in order, for each name derived
// from the raw one:
//
//   - the provider-qualified key ("azure/gpt-4o" for model "gpt-4o" from provider
//     "azure.ai.openai") when the table has one from the same or a later layer than the bare key,
//     then the exact key; then both case-insensitively;
//   - the name without leading route segments ("openai/gpt-4o", "bedrock/us-east-1/...",
//     "bedrock/converse/...", "vertex_ai/...", "gemini/...");
//   - without Bedrock's regional prefix ("us.", "eu.", "apac.", "global.", ...), vendor prefix
//     ("anthropic.") and version suffix ("-v1:0");
//   - without a snapshot date the table lacks ("gpt-5.4-mini-2026-09-30" → "gpt-5.4-mini",
//     "claude-3-5-sonnet@20240620", "-20240620", "-0613");
//   - finally the fallback price of the provider, if one is configured.
//
// Aliases are table keys of their own. Keys a file spells with a route prefix
// ("bedrock/...", "vertex_ai/...", "azure/...") stay reachable exactly. Results are cached per raw
// (model, provider) in a bounded map, so a span costs no pattern scan and no allocation.
//
// # Cost
//
// Entry.Cost prices a Usage in exact integer arithmetic (femto-dollar rates, nano-dollar results,
// one half-even rounding of the total); see its documentation for the semantics of cached,
// reasoning, tiered and service-tier tokens.
//
// # LiteLLM JSON
//
// ParseLiteLLM reads the upstream `model_prices_and_context_window.json`. agentcost uses the
// columns input_cost_per_token, output_cost_per_token, cache_read_input_token_cost,
// cache_creation_input_token_cost and output_cost_per_reasoning_token, each optionally with a
// prompt-size suffix (`_above_200k_tokens`, `_above_272k_tokens`, `_above_128k_tokens`) and a
// service-tier suffix (`_batches`, `_flex`, `_priority`), plus litellm_provider and mode. Other
// columns (audio, images, per-second prices) are ignored; entries without both an input and an
// output token price are skipped and counted.
//
// # YAML format
//
// A small format of agentcost's own, prices in dollars per million tokens, written as decimals and
// parsed exactly:
//
//	source: team-prices            # optional label; default: the file name
//	models:
//	  sim-llm:
//	    provider: sim              # optional; the LiteLLM provider name
//	    mode: chat                 # optional
//	    input_per_million: 15      # required
//	    output_per_million: 15     # required
//	    cache_read_per_million: 1.5    # optional; default: the input price
//	    cache_write_per_million: 18.75 # optional; default: the input price
//	    reasoning_per_million: 15      # optional; default: the output price
//	    aliases: [sim]             # optional; other names of this model
//	  my-finetune:
//	    provider: openai
//	    input_per_million: 3
//	    output_per_million: 12
//	    above_tokens: 200000           # prompt-size tier: applies above this many prompt tokens
//	    above_input_per_million: 6     # above_<rate> for any of the five rates
//	    above_output_per_million: 18
//	    batch: {input_per_million: 1.5, output_per_million: 6}  # also flex:, priority:
//	    priority: {input_per_million: 6, above_input_per_million: 12}
//	aliases:                       # name → model, resolved with the matching rules
//	  my-deployment: gpt-4o
//	fallback:                      # per-provider prices for models the table does not know
//	  openai: {input_per_million: 5, output_per_million: 15}
//
// Unknown keys, duplicate keys, a name used both as model and alias, above_* prices without
// above_tokens and malformed prices are errors naming the file, line and key; a file with an error
// is rejected whole.
package pricing
