package deploytest

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// syncBuffer is a bytes.Buffer safe for the collector's output and the test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var wildcardEndpoint = regexp.MustCompile(`^0\.0\.0\.0:(\d+)$`)

// freeLoopback returns a loopback address with a port free at the time of the call.
func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// rewriteEndpoints replaces every 0.0.0.0:port endpoint by a free loopback address and returns
// the addresses by original port, so that the test runs beside other collectors.
func rewriteEndpoints(t *testing.T, v any, addrs map[string]string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = rewriteEndpoints(t, e, addrs)
		}
	case []any:
		for i, e := range x {
			x[i] = rewriteEndpoints(t, e, addrs)
		}
	case string:
		if m := wildcardEndpoint.FindStringSubmatch(x); m != nil {
			addr := freeLoopback(t)
			addrs[m[1]] = addr
			return addr
		}
	}
	return v
}

// startInContainerLayout starts the real collector on a container configuration (paths moved to
// the populated host directories in mounts, endpoints to free loopback ports) and checks that it
// comes up: the health status answers 200, /metrics answers, and the decision API admits the
// configured tokens in their roles and nobody without one. This reads what validate does not: the
// policy file, the token files, the ledger and evidence directories.
func startInContainerLayout(t *testing.T, name string, data []byte, mounts map[string]string) {
	t.Helper()
	bin := collectorBinary(t)
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	doc = rewritePaths(doc, mounts).(map[string]any)
	addrs := map[string]string{}
	doc = rewriteEndpoints(t, doc, addrs).(map[string]any)
	service, _ := doc["service"].(map[string]any)
	service["telemetry"] = map[string]any{"metrics": map[string]any{"level": "none"}} // no :8888 clash

	// The tokens the configuration loads, by role.
	var cfg collectorConfig
	raw, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, b := range ofType(cfg.Receivers, "budget") {
		_, list := accessTokens(cfg, b)
		for _, tok := range list {
			role, _ := lookup(tok, "role").(string)
			file, _ := lookup(tok, "token_file").(string)
			tokens[role] = strings.TrimSpace(string(readFile(t, file)))
		}
	}

	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	cmd := exec.Command(bin, "--config="+path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once the process has exited; waitErr is then set
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s: collector output:\n%s", name, out.String())
		}
	})

	client := &http.Client{Timeout: 2 * time.Second}
	get := func(url, token string) int {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	health := "http://" + addrs["13133"] + "/status"
	deadline := time.Now().Add(30 * time.Second)
	for get(health, "") != http.StatusOK {
		select {
		case <-exited:
			t.Fatalf("%s: the collector exited during start-up: %v (its output follows)", name, waitErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not answer 200 within 30s", name, health)
		}
		time.Sleep(100 * time.Millisecond)
	}

	api := "http://" + addrs["4320"]
	checks := []struct {
		what  string
		url   string
		token string
		want  int
	}{
		{"metrics", "http://" + addrs["9464"] + "/metrics", "", http.StatusOK},
		{"budgets without a token", api + decisionapi.PathBudgets, "", http.StatusUnauthorized},
		{"budgets with a wrong token", api + decisionapi.PathBudgets, "not-a-configured-token-0000", http.StatusUnauthorized},
		{"budgets as the agent", api + decisionapi.PathBudgets, tokens["agent"], http.StatusOK},
		{"budgets as the reviewer", api + decisionapi.PathBudgets, tokens["reviewer"], http.StatusOK},
		{"approvals as the agent", api + decisionapi.PathApprovals, tokens["agent"], http.StatusForbidden},
		{"approvals as the reviewer", api + decisionapi.PathApprovals, tokens["reviewer"], http.StatusOK},
	}
	for _, c := range checks {
		if got := get(c.url, c.token); got != c.want {
			t.Errorf("%s: %s: GET %s = %d, want %d", name, c.what, c.url, got, c.want)
		}
	}
	// OTLP/HTTP takes the same tokens: nobody without one, the agent with its own.
	postSpans := func(token string) int {
		req, err := http.NewRequest(http.MethodPost, "http://"+addrs["4318"]+"/v1/traces", strings.NewReader(`{"resourceSpans":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		what  string
		token string
		want  int
	}{
		{"spans without a token", "", http.StatusUnauthorized},
		{"spans with a wrong token", "not-a-configured-token-0000", http.StatusUnauthorized},
		{"spans as the agent", tokens["agent"], http.StatusOK},
	} {
		if got := postSpans(c.token); got != c.want {
			t.Errorf("%s: %s: POST /v1/traces = %d, want %d", name, c.what, got, c.want)
		}
	}
	for _, dir := range []string{"ledger", "evidence"} {
		if _, err := os.Stat(filepath.Join(mounts["/var/lib/agentcost"], dir)); err != nil {
			t.Errorf("%s: the collector did not create %s on the data volume: %v", name, dir, err)
		}
	}
}
