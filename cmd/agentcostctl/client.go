package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// defaultEndpoint is the budget receiver's API endpoint when neither --endpoint nor
// AGENTCOST_ENDPOINT says otherwise.
const defaultEndpoint = "http://localhost:4320"

// maxResponseBytes bounds a response body the CLI reads.
const maxResponseBytes = 16 << 20

// onlineOpts are the flags of the commands that call a running endpoint.
type onlineOpts struct {
	endpoint  *string
	tokenFile *string
	timeout   *time.Duration
}

func addOnlineFlags(fs *flagSet) *onlineOpts {
	return &onlineOpts{
		endpoint:  fs.String("endpoint", "", "decision API `URL` (default $AGENTCOST_ENDPOINT, else "+defaultEndpoint+")"),
		tokenFile: fs.String("token-file", "", "`FILE` holding the bearer token (default: $AGENTCOST_TOKEN; none on an open API)"),
		timeout:   fs.Duration("timeout", 10*time.Second, "request `TIMEOUT`"),
	}
}

// client calls the decision API. It never prints or logs its token.
type client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

func (o *onlineOpts) client(e *env) (*client, error) {
	raw := firstNonEmpty(*o.endpoint, e.getenv("AGENTCOST_ENDPOINT"), defaultEndpoint)
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	base, err := url.Parse(raw)
	if err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		return nil, usageErr("--endpoint %q: want an http:// or https:// URL such as %s", raw, defaultEndpoint)
	}
	if base.User != nil {
		return nil, usageErr("--endpoint: credentials in the URL are not supported; use --token-file")
	}
	token, err := readToken(*o.tokenFile, e.getenv("AGENTCOST_TOKEN"))
	if err != nil {
		return nil, err
	}
	if token != "" && base.Scheme == "http" && !loopback(base.Hostname()) {
		fmt.Fprintf(e.stderr, "warning: sending the bearer token over plain http to %s; use https\n", base.Host)
	}
	if *o.timeout <= 0 {
		return nil, usageErr("--timeout %s: must be positive", *o.timeout)
	}
	return &client{base: base, token: token, hc: &http.Client{Timeout: *o.timeout}}, nil
}

// readToken reads the bearer token from file, else takes env. Errors name the file, never its
// content.
func readToken(file, env string) (string, error) {
	tok := env
	source := "AGENTCOST_TOKEN"
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", ioErr(fmt.Errorf("reading token file: %w", err))
		}
		tok, source = string(b), "token file "+file
	}
	tok = strings.TrimSpace(tok)
	if file != "" && tok == "" {
		return "", usageErr("%s is empty", source)
	}
	for _, r := range tok {
		if r <= ' ' || r == 0x7f {
			return "", usageErr("%s holds whitespace or control characters inside the token", source)
		}
	}
	return tok, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// pathOf fills the {id} of an API path pattern, escaped.
func pathOf(pattern, id string) string {
	return strings.Replace(pattern, "{id}", url.PathEscape(id), 1)
}

// do sends a request to path (escaped) with a JSON body (nil: none) and decodes a 2xx JSON answer into out. A 4xx
// answer is a usage error (exit 2), except 429; a 5xx or 429 answer, a transport failure or an
// undecodable answer is exit 3.
func (c *client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	// path is escaped (pathOf escapes ids): keep it as is in RawPath, unescaped in Path.
	u := *c.base
	raw := strings.TrimSuffix(c.base.EscapedPath(), "/") + path
	unescaped, err := url.PathUnescape(raw)
	if err != nil {
		return usageErr("request path %q: %v", raw, err)
	}
	u.Path, u.RawPath, u.RawQuery = unescaped, raw, query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return ioErr(fmt.Errorf("encoding request: %w", err))
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return usageErr("building request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said once, below
		}
		return ioErr(fmt.Errorf("cannot reach %s: %v", c.base.Redacted(), err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return ioErr(fmt.Errorf("reading the answer of %s %s: %w", method, path, err))
	}
	if len(data) > maxResponseBytes {
		return ioErr(fmt.Errorf("the answer of %s %s exceeds %d bytes", method, path, maxResponseBytes))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return apiFailure(method, path, resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return ioErr(fmt.Errorf("decoding the answer of %s %s: %w", method, path, err))
	}
	return nil
}

func apiFailure(method, path string, resp *http.Response, data []byte) error {
	var er decisionapi.ErrorResponse
	ae := &decisionapi.APIError{Status: resp.StatusCode, Code: "", Message: http.StatusText(resp.StatusCode)}
	if json.Unmarshal(data, &er) == nil && er.Error.Code != "" {
		ae = &er.Error
		ae.Status = resp.StatusCode
	} else {
		ae.Code = decisionapi.Code(strings.ToLower(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "_")))
	}
	msg := fmt.Sprintf("%s %s: server answered %s", method, path, cell(ae.Error()))
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		msg += " (retry after " + cell(ra) + "s)"
	}
	code := exitIO
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
		code = exitUsage
	}
	return &cliError{code: code, err: errors.New(msg)}
}
