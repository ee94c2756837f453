package budgetreceiver

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// get fetches a path of the env's endpoint without the OpenAPI check (the console is not part of
// the API) and returns the response with its body read.
func (e *env) get(method, path string, headers ...string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, string(body)
}

var withConsole = func(cfg *Config) { cfg.Console.Enabled = true }

// TestConsoleServedWithStrictHeaders: with console.enabled the pages are served without a token
// (the API calls they make carry it), under a strict CSP, no framing and no sniffing; the page
// has no inline script or style; writes are refused; /console redirects to /console/.
func TestConsoleServedWithStrictHeaders(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess, withConsole)
	for _, tc := range []struct{ path, ctype string }{
		{"/console/", "text/html"},
		{"/console/app.js", "text/javascript"},
		{"/console/console.css", "text/css"},
	} {
		resp, body := e.get(http.MethodGet, tc.path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", tc.path, resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", tc.path, ct, tc.ctype)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", tc.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP %q allows inline code", tc.path, csp)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: headers %v", tc.path, resp.Header)
		}
		if tc.ctype == "text/html" {
			if m := regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>|<style|\sstyle=|\son[a-z]+=`).FindString(body); m != "" {
				t.Errorf("the page has inline code or style: %q", m)
			}
		}
	}
	if resp, _ := e.get(http.MethodPost, "/console/"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /console/: status %d, want 405", resp.StatusCode)
	}
	if resp, _ := e.get(http.MethodGet, "/console"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console/" {
		t.Errorf("GET /console: status %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The API behind it keeps its roles: no token is 401.
	if resp, _ := e.get(http.MethodGet, "/v1/approvals"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/approvals without a token: status %d, want 401", resp.StatusCode)
	}
}

// TestConsoleOffByDefault: without console.enabled, /console/ is the API's 404.
func TestConsoleOffByDefault(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	if resp, _ := e.get(http.MethodGet, "/console/"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /console/ with the console off: status %d, want 404", resp.StatusCode)
	}
}
