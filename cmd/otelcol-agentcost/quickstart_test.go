package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/otelcol"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/internal/testutil/readmetest"
)

// TestREADMEQuickstarts runs both quickstarts of the top-level README.md, as a new user would,
// against a collector started from the shipped deploy/single-node/config.yaml (endpoints moved to
// free ports, data to a temporary directory): the curl commands become HTTP requests built from
// the README's own text (its shell quoting and $now arithmetic evaluated), and the output lines the
// README shows must be what the collector answers. Then, the collector stopped, the span's spend
// must be in the ledger's current day window (the README says ledger-report shows it).
func TestREADMEQuickstarts(t *testing.T) {
	root := filepath.Join("..", "..")
	blocks := readmetest.Blocks(t, filepath.Join(root, "README.md"), "*")
	spanCmd, spanOut := quickstartBlocks(t, blocks, "localhost:4318/v1/traces")
	decideCmd, decideOut := quickstartBlocks(t, blocks, "localhost:4320/v1/decisions")

	ports, dir, col := startSingleNode(t)

	// Quickstart 1: the span, then the metrics. The README shows the span's spend in the
	// decision's hourly agent budget: keep both in one hour (and one day for the ledger check).
	if untilHour := time.Until(time.Now().Truncate(time.Hour).Add(time.Hour)); untilHour < 15*time.Second {
		time.Sleep(untilHour + time.Second)
	}
	now := time.Now()
	body := curlData(t, spanCmd, now.Unix())
	got := postJSON(t, "http://"+ports["localhost:4318"]+"/v1/traces", body)
	grep := regexp.MustCompile(`grep -E '([^']+)'`).FindStringSubmatch(spanCmd)
	if grep == nil {
		t.Fatalf("no grep -E in the README's span quickstart:\n%s", spanCmd)
	}
	filter := regexp.MustCompile(grep[1])
	// The spend shows once the budget receiver has published (every publish_interval, 1s in the
	// single-node config; the README sleeps 2s).
	want := strings.Split(strings.TrimSpace(spanOut), "\n")
	var lines []string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		lines = []string{strings.TrimSpace(got)}
		for _, l := range strings.Split(httpGet(t, "http://"+ports["localhost:9464"]+"/metrics"), "\n") {
			if filter.MatchString(l) {
				lines = append(lines, l)
			}
		}
		if reflect.DeepEqual(lines, want) || time.Now().After(deadline) {
			break
		}
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("the span quickstart printed\n%s\nthe README shows\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	// Quickstart 2: the decision, compared with the README's JSON ("…" is any value).
	answer := postJSON(t, "http://"+ports["localhost:4320"]+"/v1/decisions", curlData(t, decideCmd, now.Unix()))
	var gotJSON any
	if err := json.Unmarshal([]byte(answer), &gotJSON); err != nil {
		t.Fatalf("decision answer %q: %v", answer, err)
	}
	shown := strings.NewReplacer(`"…"`, "null", `,…}`, "}", `{…}`, "{}", `dec_…`, "").Replace(decideOut)
	shown = strings.ReplaceAll(shown, `""`, "null")
	var wantJSON any
	if err := json.Unmarshal([]byte(shown), &wantJSON); err != nil {
		t.Fatalf("the README's decision answer does not parse once its … are wildcards: %v\n%s", err, shown)
	}
	if path, ok := subsetOf(wantJSON, gotJSON, "$"); !ok {
		t.Errorf("the decision quickstart answered\n%s\nthe README shows\n%s\n(first difference at %s)", answer, decideOut, path)
	}

	// The health check the README names.
	if resp, err := http.Get("http://" + ports["localhost:13133"] + "/status"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("health check /status: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The span ended now: its spend is in today's window of the ledger (ledger-report reads it).
	col.Shutdown()
	for col.GetState() != otelcol.StateClosed {
		time.Sleep(10 * time.Millisecond)
	}
	lcfg := ledger.NewDefaultConfig()
	lcfg.Directory = filepath.Join(dir, "ledger")
	l, err := ledger.Open(context.Background(), lcfg, ledger.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	snap, err := l.Snapshot(context.Background(), time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, st := range snap.States {
		if st.Scope == ledger.ScopeAgent && st.ID == "research-agent" && st.Window == ledger.Day {
			found = st.Spent == money.Nanos(35_000_000)
		}
	}
	if !found {
		t.Errorf("research-agent's $0.035 is not in the ledger's current day window: %+v", snap.States)
	}
}

// startSingleNode runs the collector from the shipped deploy/single-node/config.yaml, its
// endpoints moved to free ports (by their shipped addresses) and its data to a temporary directory.
func startSingleNode(t *testing.T) (map[string]string, string, *otelcol.Collector) {
	t.Helper()
	root := filepath.Join("..", "..")
	config, err := os.ReadFile(filepath.Join(root, "deploy", "single-node", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	policy, err := filepath.Abs(filepath.Join(root, "deploy", "single-node", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{}
	cfg := string(config)
	for _, ep := range []string{"localhost:4317", "localhost:4318", "localhost:4320", "localhost:9464", "localhost:13133"} {
		if !strings.Contains(cfg, ep) {
			t.Fatalf("deploy/single-node/config.yaml no longer listens on %s: update the README and this test", ep)
		}
		ports[ep] = collectortest.Endpoint(t)
		cfg = strings.ReplaceAll(cfg, ep, ports[ep])
	}
	cfg = strings.ReplaceAll(cfg, "./data/", dir+"/")
	cfg = strings.ReplaceAll(cfg, "./deploy/single-node/policy.yaml", policy)
	cfg = strings.Replace(cfg, "\nservice:\n", "\nservice:\n  telemetry: {metrics: {level: none}}\n", 1)
	return ports, dir, collectortest.Run(t, components, cfg)
}

// TestMalformedSpanOnMetrics is issue 13's finding 8 where users read product metrics: a span
// whose token count is a string, sent to the single-node collector, is not booked, and is counted
// on /metrics as agentcost_malformed_spans_total{reason="string"} (the processor
// marks it agentcost.malformed; its rate-limited warning is tested in the processor).
func TestMalformedSpanOnMetrics(t *testing.T) {
	ports, _, _ := startSingleNode(t)
	now := time.Now().UnixNano()
	body := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"research-agent"}}]},
 "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b175","name":"chat gpt-4o","kind":3,
 "startTimeUnixNano":"%d","endTimeUnixNano":"%d","attributes":[
  {"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},
  {"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},
  {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
  {"key":"gen_ai.usage.input_tokens","value":{"stringValue":"10000"}},
  {"key":"gen_ai.usage.output_tokens","value":{"intValue":"1000"}}]}]}]}]}`, now-1e9, now)
	postJSON(t, "http://"+ports["localhost:4318"]+"/v1/traces", body)
	metrics := httpGetUntil(t, "http://"+ports["localhost:9464"]+"/metrics", `agentcost_malformed_spans_total{reason="string"} 1`, 3*time.Second)
	if !strings.Contains(metrics, `agentcost_malformed_spans_total{reason="string"} 1`) {
		t.Errorf("/metrics lacks agentcost_malformed_spans_total{reason=\"string\"} 1:\n%s", metrics)
	}
	if strings.Contains(metrics, "agentcost_spend_usd_total{") {
		t.Errorf("the malformed span was booked:\n%s", metrics)
	}
}

// quickstartBlocks returns the sh block that contains marker and the block after it (its output).
func quickstartBlocks(t *testing.T, blocks []readmetest.Block, marker string) (string, string) {
	t.Helper()
	for i, b := range blocks {
		if b.Lang == "sh" && strings.Contains(b.Text, marker) && i+1 < len(blocks) {
			return b.Text, blocks[i+1].Text
		}
	}
	t.Fatalf("README.md has no sh block with %s followed by its output", marker)
	return "", ""
}

// curlData evaluates the shell word after -d in a README curl command: single-quoted text as is,
// double-quoted text with $now and $((now-1)) expanded (now = the given Unix time). Anything else a
// shell would expand fails the test, so the README stays copy-pasteable and this test honest.
func curlData(t *testing.T, cmd string, now int64) string {
	t.Helper()
	i := strings.Index(cmd, " -d ")
	if i < 0 {
		t.Fatalf("no -d in %q", cmd)
	}
	s := strings.TrimLeft(cmd[i+4:], " ")
	var out strings.Builder
	for len(s) > 0 {
		switch s[0] {
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				t.Fatalf("unterminated ' in %q", cmd)
			}
			out.WriteString(s[1 : 1+end])
			s = s[2+end:]
		case '"':
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				t.Fatalf("unterminated \" in %q", cmd)
			}
			word := strings.NewReplacer("$((now-1))", strconv.FormatInt(now-1, 10), "$now", strconv.FormatInt(now, 10)).Replace(s[1 : 1+end])
			if strings.ContainsAny(word, "$`\\") {
				t.Fatalf("shell expansion this test does not know in %q", s[1:1+end])
			}
			out.WriteString(word)
			s = s[2+end:]
		default:
			return out.String() // the end of the word (a blank, ';', a newline)
		}
	}
	return out.String()
}

func postJSON(t *testing.T, url, body string) string {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, data)
	}
	return string(data)
}

// httpGetUntil gets url until the body contains want or within has passed (the budget receiver
// publishes every publish_interval), and returns the last body.
func httpGetUntil(t *testing.T, url, want string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		body := httpGet(t, url)
		if strings.Contains(body, want) || time.Now().After(deadline) {
			return body
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

// subsetOf reports whether want is got with some object keys left out and null for any value.
func subsetOf(want, got any, path string) (string, bool) {
	switch w := want.(type) {
	case nil:
		return "", true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path, false
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return path + "." + k + " (missing)", false
			}
			if p, ok := subsetOf(wv, gv, path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	default:
		if !reflect.DeepEqual(want, got) {
			return fmt.Sprintf("%s: %v, want %v", path, got, want), false
		}
		return "", true
	}
}
