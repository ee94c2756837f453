package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.opentelemetry.io/otel/propagation"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

const (
	// maxAttempts bounds the attempts of one HTTP call (network errors, 429, 502, 503, 504).
	maxAttempts = 3
	// maxResponseBytes bounds a response body.
	maxResponseBytes = 1 << 20
	userAgent        = "agentcost-guard-go/1"
)

// retryBackoff is the wait between attempts of one call when the server names none: 250ms, then
// doubling, each randomized by ±50% so that clients failing together do not retry together.
func retryBackoff() *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     250 * time.Millisecond,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         backoff.DefaultMaxInterval,
	}
	b.Reset()
	return b
}

// do sends one API call, retrying transient failures with the same body (decision requests carry
// an idempotency key, so a retry never reserves twice), and decodes a 2xx JSON body into out.
// Other statuses return a *decisionapi.APIError.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("guard: encoding %s %s: %w", method, path, err)
		}
	}
	var b *backoff.ExponentialBackOff
	for attempt := 1; ; attempt++ {
		wait, err := c.once(ctx, method, path, body, out)
		if err == nil || wait < 0 || attempt == maxAttempts || ctx.Err() != nil {
			return err
		}
		if wait == 0 { // no Retry-After: back off exponentially, with jitter
			if b == nil {
				b = retryBackoff()
			}
			wait = b.NextBackOff()
		}
		if wait > c.maxRetryWait {
			return err
		}
		c.logger.DebugContext(ctx, "retrying decision API call", "method", method, "path", path, "error", err, "wait", wait)
		if serr := c.sleep(ctx, wait); serr != nil {
			return err
		}
	}
}

// once sends one request. wait is -1 when the failure is not worth retrying, else the server's
// Retry-After (0 when it sent none).
func (c *Client) once(ctx context.Context, method, path string, body []byte, out any) (wait time.Duration, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return -1, fmt.Errorf("guard: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	c.propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("guard: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return 0, fmt.Errorf("guard: reading %s %s response: %w", method, path, err)
	}
	if len(data) > maxResponseBytes {
		return -1, fmt.Errorf("guard: %s %s response exceeds %d bytes", method, path, maxResponseBytes)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil {
			return 0, nil
		}
		// Lenient on purpose: a newer server may add fields.
		if err := json.Unmarshal(data, out); err != nil {
			return -1, fmt.Errorf("guard: decoding %s %s response: %w", method, path, err)
		}
		return 0, nil
	}
	apiErr := responseError(resp, data)
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return seconds(apiErr.RetryAfterSec), apiErr
	}
	return -1, apiErr
}

// responseError turns a non-2xx answer into an APIError, also when its body is not the API's
// error shape (a proxy's answer).
func responseError(resp *http.Response, data []byte) *decisionapi.APIError {
	var body decisionapi.ErrorResponse
	ae := &body.Error
	if err := json.Unmarshal(data, &body); err != nil || ae.Code == "" {
		ae = &decisionapi.APIError{Code: codeFor(resp.StatusCode), Message: strings.TrimSpace(truncate(string(data)))}
		if ae.Message == "" {
			ae.Message = http.StatusText(resp.StatusCode)
		}
	}
	ae.Status = resp.StatusCode
	if ra, err := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 64); err == nil && ra > 0 {
		ae.RetryAfterSec = ra
	}
	return ae
}

func codeFor(status int) decisionapi.Code {
	for _, c := range decisionapi.Codes() {
		if c.Status() == status {
			return c
		}
	}
	return decisionapi.CodeInternal
}
