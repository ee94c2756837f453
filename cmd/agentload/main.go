// Program agentload is a load generator for the budget receiver's decision endpoint: it sends
// decision requests from many agents at a fixed concurrency and reports decisions per second and
// the p50 and p99 latency of the decision call. With -bare it measures a bare net/http JSON
// handler the same way, for comparison. With -rate it runs open loop instead: a mixed stream of
// requests (BenchMix) at a fixed arrival rate, each latency measured from the request's intended
// send time, optionally while -span-rate spans per second are exported over OTLP/HTTP to -otlp.
//
//	agentload -url http://localhost:4320 -c 32 -d 10s -agents 100 -release
//	agentload -url http://localhost:4320 -rate 1000 -d 20s -agents 10000 -span-rate 10000 -otlp http://localhost:4318
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "agentload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("agentload", flag.ContinueOnError)
	var cfg Config
	fs.StringVar(&cfg.URL, "url", "http://localhost:4320", "decision API base URL")
	fs.StringVar(&cfg.Token, "token", os.Getenv("AGENTCOST_TOKEN"), "bearer token (default $AGENTCOST_TOKEN)")
	fs.IntVar(&cfg.Agents, "agents", 100, "distinct agent ids")
	fs.StringVar(&cfg.AgentPrefix, "agent-prefix", "load-agent-", "agent id prefix")
	fs.StringVar(&cfg.Action, "action", "job.load", "action topic")
	fs.Float64Var(&cfg.EstimatedCostUSD, "estimate", 0.001, "estimated cost per action in dollars")
	fs.IntVar(&cfg.Concurrency, "c", 16, "requests in flight")
	fs.DurationVar(&cfg.Duration, "d", 10*time.Second, "run duration")
	fs.IntVar(&cfg.Requests, "n", 0, "stop after this many decisions (0: run for -d)")
	fs.BoolVar(&cfg.Release, "release", true, "release each allowed lease (not timed)")
	bare := fs.Bool("bare", false, "measure an in-process bare net/http JSON handler instead of -url")
	serveBare := fs.String("serve-bare", "", "serve the bare handler on this address until interrupted (no load), to measure it as a process of its own")
	rate := fs.Float64("rate", 0, "open loop: send the mixed request stream at this many decisions per second for -d")
	otlp := fs.String("otlp", "http://localhost:4318", "OTLP/HTTP endpoint for -span-rate")
	spanRate := fs.Float64("span-rate", 0, "with -rate: also export this many spans per second over OTLP/HTTP to -otlp")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rate > 0 {
		return runOpen(ctx, OpenConfig{URL: cfg.URL, Token: cfg.Token, Agents: cfg.Agents, AgentPrefix: cfg.AgentPrefix,
			Rate: *rate, Duration: cfg.Duration, Mix: BenchMix}, *otlp, *spanRate, stdout)
	}
	if *serveBare != "" {
		return serve(ctx, *serveBare, stdout)
	}
	if *bare {
		srv, ln, err := bareServer("127.0.0.1:0")
		if err != nil {
			return err
		}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		cfg.URL, cfg.Release = "http://"+ln.Addr().String(), false
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res)
	return nil
}

// bareServer listens on addr and returns the bare handler's server, not yet serving, with its
// listener.
func bareServer(addr string) (*http.Server, net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	return &http.Server{Handler: BareHandler(), ReadHeaderTimeout: 10 * time.Second}, ln, nil
}

// serve runs the bare handler on addr until ctx ends.
func serve(ctx context.Context, addr string, stdout io.Writer) error {
	srv, ln, err := bareServer(addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "serving the bare handler on", ln.Addr())
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// runOpen runs the open-loop stream and, alongside it, the span sender.
func runOpen(ctx context.Context, cfg OpenConfig, otlp string, spanRate float64, stdout io.Writer) error {
	sctx, stopSpans := context.WithCancel(ctx)
	spans := make(chan SpanResult, 1)
	go func() { spans <- SendSpans(sctx, otlp, spanRate) }()
	res, err := RunOpen(ctx, cfg)
	stopSpans()
	sent := <-spans
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res)
	if spanRate > 0 {
		fmt.Fprintf(stdout, "spans: %d acknowledged (%.0f/s), %d requests failed", sent.Spans, float64(sent.Spans)/res.Elapsed.Seconds(), sent.Failed)
		if sent.FirstError != nil {
			fmt.Fprintf(stdout, " (first error: %v)", sent.FirstError)
		}
		fmt.Fprintln(stdout)
	}
	return nil
}
