// Program agentload is a load generator for the budget receiver's decision endpoint: it sends
// decision requests from many agents at a fixed concurrency and reports decisions per second and
// the p50 and p99 latency of the decision call. With -bare it measures a bare net/http JSON
// handler the same way, for comparison.
//
//	agentload -url http://localhost:4320 -c 32 -d 10s -agents 100 -release
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
	if err := fs.Parse(args); err != nil {
		return err
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
