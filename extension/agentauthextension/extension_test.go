package agentauthextension

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/agentcost/agentcost/extension/agentauthextension/internal/metadata"
	"github.com/agentcost/agentcost/internal/access"
)

const (
	agentToken     = "agent-token-research-0001"
	reviewerToken  = "reviewer-token-alice-0002"
	forwarderToken = "forwarder-token-tier1-0003"
)

func testTokens() []access.TokenConfig {
	return []access.TokenConfig{
		{Token: agentToken, Role: access.RoleAgent, Subject: "research-agent"},
		{Token: reviewerToken, Role: access.RoleReviewer, Subject: "alice@example.com"},
		{Token: forwarderToken, Role: access.RoleForwarder, Subject: "tier1", Agents: []string{"research-agent"}},
	}
}

type started struct {
	ext    extension.Extension
	tel    *componenttest.Telemetry
	logged *observer.ObservedLogs
}

func start(t *testing.T, tokens []access.TokenConfig) started {
	t.Helper()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	core, logged := observer.New(zapcore.DebugLevel)
	set := extension.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: tel.NewTelemetrySettings()}
	set.Logger = zap.New(core)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Tokens = tokens
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ext, err := NewFactory().Create(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ext.Shutdown(context.Background()) })
	return started{ext: ext, tel: tel, logged: logged}
}

func counter(t *testing.T, tel *componenttest.Telemetry, name, attr, value string) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0
	}
	var n int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if v, ok := dp.Attributes.Value(attributeKey(attr)); ok && v.AsString() == value {
			n += dp.Value
		}
	}
	return n
}

// TestAuthenticate: the gRPC metadata and HTTP header shapes, every role, and the rejections
// (missing, unknown, another scheme), each counted; the context carries subject and role.
func TestAuthenticate(t *testing.T) {
	s := start(t, testTokens())
	auth := s.ext.(extensionauth.Server)
	cases := []struct {
		name    string
		sources map[string][]string
		role    string
		subject string
		reason  string // rejection reason; empty when accepted
	}{
		{"grpc agent", map[string][]string{"authorization": {"Bearer " + agentToken}}, string(access.RoleAgent), "research-agent", ""},
		{"http agent", map[string][]string{"Authorization": {"Bearer " + agentToken}}, string(access.RoleAgent), "research-agent", ""},
		{"lowercase scheme", map[string][]string{"Authorization": {"bearer " + agentToken}}, string(access.RoleAgent), "research-agent", ""},
		{"reviewer", map[string][]string{"authorization": {"Bearer " + reviewerToken}}, string(access.RoleReviewer), "alice@example.com", ""},
		{"forwarder", map[string][]string{"authorization": {"Bearer " + forwarderToken}}, string(access.RoleForwarder), "tier1", ""},
		{"odd header case", map[string][]string{"AUTHORIZATION": {"Bearer " + agentToken}}, string(access.RoleAgent), "research-agent", ""},
		{"no header", map[string][]string{"content-type": {"application/x-protobuf"}}, "", "", "missing"},
		{"basic", map[string][]string{"Authorization": {"Basic " + agentToken}}, "", "", "missing"},
		{"empty bearer", map[string][]string{"Authorization": {"Bearer "}}, "", "", "missing"},
		{"unknown", map[string][]string{"Authorization": {"Bearer not-a-configured-token"}}, "", "", "invalid"},
		{"prefix of a token", map[string][]string{"Authorization": {"Bearer " + agentToken[:20]}}, "", "", "invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, err := auth.Authenticate(context.Background(), tc.sources)
			if tc.reason != "" {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("error %v, want ErrUnauthenticated", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ad := client.FromContext(ctx).Auth
			if ad == nil || ad.GetAttribute(access.AttrSubject) != tc.subject || ad.GetAttribute(access.AttrRole) != tc.role {
				t.Fatalf("auth data %v, want subject %q role %q", ad, tc.subject, tc.role)
			}
			if m, _ := ad.GetAttribute(access.AttrMembership).([]string); len(m) != 1 || m[0] != tc.role {
				t.Errorf("membership %v", m)
			}
			if id, ok := access.FromAuth(ad); !ok || id.Subject != tc.subject {
				t.Errorf("FromAuth: %+v %v", id, ok)
			}
		})
	}
	if n := counter(t, s.tel, "otelcol_extension_agentauth_rejections", "reason", "missing"); n != 3 {
		t.Errorf("missing rejections %d, want 3", n)
	}
	if n := counter(t, s.tel, "otelcol_extension_agentauth_rejections", "reason", "invalid"); n != 2 {
		t.Errorf("invalid rejections %d, want 2", n)
	}
	if n := counter(t, s.tel, "otelcol_extension_agentauth_authenticated", "role", string(access.RoleAgent)); n != 4 {
		t.Errorf("agent authentications %d, want 4", n)
	}
	for _, e := range s.logged.All() {
		for _, tok := range []string{agentToken, reviewerToken, forwarderToken, "not-a-configured-token"} {
			if strings.Contains(e.Message, tok) || strings.Contains(fmtFields(e), tok) {
				t.Errorf("log line %q carries a token", e.Message)
			}
		}
	}
}

func fmtFields(e observer.LoggedEntry) string {
	var b strings.Builder
	for k, v := range e.ContextMap() {
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", " ")))
	}
	return b.String()
}

// TestHTTPServerAuth puts the extension behind a confighttp server's auth setting, as the OTLP
// receiver does: no or a wrong token is 401, a valid one reaches the handler with client.Info.Auth.
func TestHTTPServerAuth(t *testing.T) {
	s := start(t, testTokens())
	id := component.NewID(metadata.Type)
	cfg := confighttp.NewDefaultServerConfig()
	cfg.NetAddr.Endpoint = "127.0.0.1:0"
	cfg.Auth = configoptional.Some(confighttp.AuthConfig{Config: configauth.Config{AuthenticatorID: id}})
	var seen string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ad := client.FromContext(r.Context()).Auth; ad != nil {
			seen, _ = ad.GetAttribute(access.AttrSubject).(string)
		}
	})
	host := extHost{exts: map[component.ID]component.Component{id: s.ext}}
	srv, err := cfg.ToServer(context.Background(), host.GetExtensions(), componenttest.NewNopTelemetrySettings(), h)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler)
	t.Cleanup(ts.Close)
	for _, tc := range []struct {
		header string
		want   int
	}{{"", 401}, {"Bearer wrong-token-wrong-token", 401}, {"Bearer " + agentToken, 200}} {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/traces", strings.NewReader("{}"))
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: status %d, want %d", tc.header, resp.StatusCode, tc.want)
		}
	}
	if seen != "research-agent" {
		t.Errorf("handler saw subject %q, want research-agent", seen)
	}
}

// TestStartLoadsTokens: token files are read at start; a short or duplicate token fails the start
// naming the key; Find hands the list to another component.
func TestStartLoadsTokens(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.token")
	if err := os.WriteFile(file, []byte("  "+agentToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, []access.TokenConfig{{TokenFile: file, Role: access.RoleAgent, Subject: "research-agent"}})
	id := component.NewID(metadata.Type)
	set, err := Find(extHost{exts: map[component.ID]component.Component{id: s.ext}}, id)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := set.Lookup(agentToken); !ok || got.Subject != "research-agent" {
		t.Errorf("lookup of the file's token: %+v %v", got, ok)
	}
	if _, err := Find(extHost{}, id); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("Find without the extension: %v", err)
	}

	for name, tokens := range map[string][]access.TokenConfig{
		"at least 16": {{Token: "short", Role: access.RoleAgent, Subject: "a"}},
		"the same token as tokens[0]": {{Token: agentToken, Role: access.RoleAgent, Subject: "a"},
			{Token: agentToken, Role: access.RoleReviewer, Subject: "b"}},
		"tokens[0].token_file": {{TokenFile: filepath.Join(dir, "missing"), Role: access.RoleAgent, Subject: "a"}},
	} {
		cfg := &Config{Tokens: tokens}
		ext, err := NewFactory().Create(context.Background(), extensionSettings(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := ext.Start(context.Background(), componenttest.NewNopHost()); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("start error %v, want one containing %q", err, name)
		}
	}
}

// TestConfig: the testdata configuration loads, and Validate names the YAML keys.
func TestConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := cm.Sub("agentauth")
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := confmap.Validate(cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Tokens) != 3 || cfg.Tokens[2].Role != access.RoleForwarder || len(cfg.Tokens[2].Agents) != 1 ||
		len(cfg.Tokens[0].Teams) != 1 || cfg.Tokens[0].Teams[0] != "research" {
		t.Errorf("tokens %+v", cfg.Tokens)
	}
	for want, tokens := range map[string][]access.TokenConfig{
		"tokens: at least one":                         nil,
		"tokens[0]: set token_file or token":           {{Role: access.RoleAgent, Subject: "a"}},
		`tokens[0].role: "admin" is not agent`:         {{Token: agentToken, Role: "admin", Subject: "a"}},
		"tokens[0].subject: required":                  {{Token: agentToken, Role: access.RoleAgent}},
		"tokens[0].agents: only a forwarder token":     {{Token: agentToken, Role: access.RoleAgent, Subject: "a", Agents: []string{"b"}}},
		"tokens[0].agents[0]: empty agent":             {{Token: agentToken, Role: access.RoleForwarder, Subject: "a", Agents: []string{" "}}},
		"tokens[0]: set token_file or token, not both": {{Token: agentToken, TokenFile: "x", Role: access.RoleAgent, Subject: "a"}},
		"tokens[0].teams: only an agent token lists":   {{Token: agentToken, Role: access.RoleReviewer, Subject: "r", Teams: []string{"growth"}}},
	} {
		err := (&Config{Tokens: tokens}).Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one containing %q", err, want)
		}
	}
}
