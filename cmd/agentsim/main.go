// Program agentsim is an OpenTelemetry-instrumented simulated agent fleet: a demo of agentcost
// governing the article's runaway fleet, and a load generator for the decision API and the span
// pipeline.
//
//	agentsim runaway [flags]   the article's fleet, one agent stuck in a loop, governed or not
//	agentsim steady [flags]    mixed normal traffic at a fixed rate
//
// Run `agentsim runaway -h` for the flags.
package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/agentcost/agentcost/internal/buildinfo"
	"github.com/agentcost/agentcost/internal/pricing"
	"github.com/agentcost/agentcost/internal/sim"
)

//go:embed sim-prices.yaml
var simPrices []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: agentsim runaway|creep|steady [flags]
       agentsim version (or --version)

  runaway  the article's fleet (3 agents x 5 sub-calls x 50K tokens, 20 rounds per batch) on a
           compressed clock, one agent stuck in a loop; governed by agentcost or --ungoverned
  creep    one agent's loop whose context grows, each call dearer than the last: where the
           loop is flagged and stopped, against the ungoverned plan
  steady   mixed normal traffic at --rate actions/s for load tests

Run "agentsim <scenario> -h" for its flags.
`

// run executes one command and returns the exit code: 0 after a completed run, 1 when the run
// could not start or its report could not be written, 2 for bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "version" || args[0] == "--version" || args[0] == "-version" {
		fmt.Fprintln(stdout, buildinfo.String("agentsim"))
		return 0
	}
	var (
		report *sim.Report
		output string
		err    error
	)
	switch args[0] {
	case "runaway":
		report, output, err = runaway(ctx, args[1:], stderr)
	case "creep":
		report, output, err = creep(ctx, args[1:], stderr)
	case "steady":
		report, output, err = steady(ctx, args[1:], stderr)
	default:
		fmt.Fprintf(stderr, "agentsim: unknown scenario %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "agentsim %s: %v\n", args[0], err)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "agentsim %s: %v\n", args[0], err)
		return 1
	}
	if output == "json" {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "agentsim %s: writing the report: %v\n", args[0], err)
		return 1
	}
	return 0
}

// agentTokens is the repeatable --agent-token agent=TOKEN flag.
type agentTokens map[string]string

func (a *agentTokens) String() string {
	if a == nil || len(*a) == 0 {
		return ""
	}
	return fmt.Sprintf("%d agents", len(*a))
}

func (a *agentTokens) Set(v string) error {
	agent, token, ok := strings.Cut(v, "=")
	if !ok || agent == "" || token == "" {
		return errors.New("want agent=TOKEN")
	}
	if *a == nil {
		*a = agentTokens{}
	}
	(*a)[agent] = token
	return nil
}

// usageError is a bad flag value.
type usageError struct{ error }

// common are the flags both scenarios share.
type common struct {
	otlpEndpoint string
	decisionURL  string
	ungoverned   bool
	token        string
	agentTokens  agentTokens
	prices       string
	model        string
	provider     string
	metricsURL   string
	output       string
	runPrefix    string
	duration     time.Duration
	approvalWait time.Duration
	throttleWait time.Duration
	flush        bool
	verbose      bool
	degradeTo    string
}

// flags returns a scenario's flag set with the common flags registered.
func (c *common) flags(name string, stderr io.Writer, approvalWait time.Duration, flush bool) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.register(fs, approvalWait, flush)
	return fs
}

// parse parses a scenario's arguments and validates the common flags.
func (c *common) parse(fs *flag.FlagSet, args []string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	return c.validate()
}

func (c *common) register(fs *flag.FlagSet, approvalWait time.Duration, flush bool) {
	fs.StringVar(&c.otlpEndpoint, "otlp-endpoint", "localhost:4317", "the collector's OTLP/gRPC endpoint: host:port (plaintext) or a URL")
	fs.StringVar(&c.decisionURL, "decision-url", "http://localhost:4320", "the decision API (the collector's budget receiver)")
	fs.BoolVar(&c.ungoverned, "ungoverned", false, "skip the decision API: every action runs")
	fs.StringVar(&c.token, "token", os.Getenv("AGENTCOST_TOKEN"), "bearer token of the agents (default $AGENTCOST_TOKEN)")
	fs.Var(&c.agentTokens, "agent-token", "agent=TOKEN: one agent's bearer token, over --token (repeatable; an API with access binds each token to one agent)")
	fs.StringVar(&c.prices, "prices", "", "price file (agentcost YAML or LiteLLM JSON) over the embedded table (default: the embedded sim-prices.yaml)")
	fs.StringVar(&c.model, "model", "sim-llm", "model the agents call (gen_ai.request.model)")
	fs.StringVar(&c.provider, "provider", "sim", "provider of the model (gen_ai.provider.name)")
	fs.StringVar(&c.metricsURL, "metrics-url", "", "the collector's Prometheus endpoint (e.g. http://localhost:9464/metrics), read for per-call anomalies")
	fs.StringVar(&c.output, "output", "text", "report format: text or json")
	fs.StringVar(&c.runPrefix, "run-prefix", "", "prefix of run ids and idempotency keys (default: sim-<random>)")
	fs.DurationVar(&c.duration, "duration", 0, "bound the run in real time")
	fs.DurationVar(&c.approvalWait, "approval-wait", approvalWait, "how long an agent waits for a reviewer before giving up, real time")
	fs.DurationVar(&c.throttleWait, "throttle-wait", 0, "how long an agent waits on throttle answers before shedding the action, real time (runaway's 0: one simulated round)")
	fs.BoolVar(&c.flush, "flush-per-action", flush, "export a governed action's spans before releasing its lease, so the collector settles it on them")
	fs.BoolVar(&c.verbose, "v", false, "log the guard's waits and retries to stderr")
	fs.StringVar(&c.degradeTo, "degrade-to", "", "name --model in each decision request and call this cheaper model when a policy degrade entry answers with it (e.g. sim-llm-mini); the report shows what ran on it")
}

func (c *common) validate() error {
	if c.output != "text" && c.output != "json" {
		return usageError{fmt.Errorf("--output %q is not text or json", c.output)}
	}
	if c.duration < 0 || c.approvalWait < 0 || c.throttleWait < 0 {
		return usageError{errors.New("--duration, --approval-wait and --throttle-wait must not be negative")}
	}
	if c.otlpEndpoint == "" {
		return usageError{errors.New("--otlp-endpoint is empty")}
	}
	if !c.ungoverned && c.decisionURL == "" {
		return usageError{errors.New("--decision-url is empty; use --ungoverned to run without the decision API")}
	}
	if c.runPrefix == "" {
		var b [3]byte
		_, _ = rand.Read(b[:])
		c.runPrefix = "sim-" + hex.EncodeToString(b[:])
	}
	if strings.ContainsAny(c.runPrefix, " \t\n/") {
		return usageError{fmt.Errorf("--run-prefix %q must not contain spaces or slashes", c.runPrefix)}
	}
	return nil
}

// fleet builds the fleet configuration: the price table and the pricer of the model.
func (c *common) fleet(stderr io.Writer) (sim.FleetConfig, error) {
	table, err := priceTable(c.prices)
	if err != nil {
		return sim.FleetConfig{}, err
	}
	p, err := sim.NewPricer(table, c.model, c.provider)
	if err != nil {
		return sim.FleetConfig{}, err
	}
	cfg := sim.FleetConfig{Token: c.token, AgentTokens: c.agentTokens, Pricer: p, OTLPEndpoint: c.otlpEndpoint, ApprovalWait: c.approvalWait,
		ThrottleWait: c.throttleWait, ThrottleRetries: 10, FlushPerAction: c.flush}
	if c.degradeTo != "" {
		if c.ungoverned {
			return sim.FleetConfig{}, usageError{errors.New("--degrade-to needs the decision API (not --ungoverned)")}
		}
		if cfg.DegradeTo, err = sim.NewPricer(table, c.degradeTo, c.provider); err != nil {
			return sim.FleetConfig{}, usageError{fmt.Errorf("--degrade-to: %w", err)}
		}
	}
	if !c.ungoverned {
		cfg.DecisionURL = c.decisionURL
	}
	// Export failures are counted in the report; the SDK's default handler would also print each.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	if c.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { cfg.Logger.Warn("OpenTelemetry SDK", "error", err) }))
	}
	return cfg, nil
}

// priceTable is the embedded LiteLLM table overlaid with the price file, or with the embedded
// sim-prices.yaml.
func priceTable(path string) (*pricing.Table, error) {
	if path != "" {
		return pricing.LoadWithDefault(path)
	}
	def, err := pricing.DefaultLayer()
	if err != nil {
		return nil, err
	}
	own, err := pricing.ParseYAML(simPrices, "sim-prices.yaml")
	if err != nil {
		return nil, err
	}
	return pricing.Build(def, own)
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	return nil
}

func runaway(ctx context.Context, args []string, stderr io.Writer) (*sim.Report, string, error) {
	var c common
	fs := c.flags("agentsim runaway", stderr, 10*time.Second, true)
	plan := sim.DefaultRunawayConfig()
	speed := fs.Float64("speed", 3600, "simulated seconds per real second (3600: an hour a second)")
	fs.IntVar(&plan.Batches, "batches", plan.Batches, "batch runs to plan, back to back (0: as many as --duration allows)")
	fs.IntVar(&plan.BatchesPerDay, "batches-per-day", plan.BatchesPerDay, "batch runs per simulated day: a batch takes a day divided by this")
	fs.IntVar(&plan.RoundsPerBatch, "rounds", plan.RoundsPerBatch, "rounds of fan-out per batch")
	fs.IntVar(&plan.FanOut, "fan-out", plan.FanOut, "sub-calls per round and agent")
	fs.Int64Var(&plan.InputTokens, "input-tokens", plan.InputTokens, "input tokens per sub-call")
	fs.Int64Var(&plan.OutputTokens, "output-tokens", plan.OutputTokens, "output tokens per sub-call")
	fs.StringVar(&plan.Team, "team", plan.Team, "the agents' team")
	fs.StringVar(&plan.Loop.Agent, "loop-agent", plan.Loop.Agent, `the agent that gets stuck in a loop ("none": no loop)`)
	fs.IntVar(&plan.Loop.Batch, "loop-batch", plan.Loop.Batch, "the batch in whose first round it gets stuck")
	fs.IntVar(&plan.Loop.Repeats, "loop-repeats", plan.Loop.Repeats, "how often it repeats the round, each repeat re-reading the previous attempt's transcripts")
	fs.IntVar(&plan.Loop.DeclareAfter, "loop-declare-after", plan.Loop.DeclareAfter,
		"repeats sent as the ordinary topic before the rest are declared job.<domain>.agent-loop with risk tag unbounded")
	reviewer := fs.String("auto-approve-as", "", "run an auto-reviewer that approves the fleet's pending approvals with this reviewer token")
	if err := c.parse(fs, args); err != nil {
		return nil, "", err
	}
	if plan.Loop.Agent == "none" {
		plan.Loop.Agent = ""
	}
	plan.RunPrefix = c.runPrefix
	if plan.Batches == 0 && c.duration == 0 {
		return nil, "", usageError{errors.New("--batches 0 needs --duration")}
	}
	clock, err := sim.NewClock(*speed)
	if err != nil {
		return nil, "", usageError{fmt.Errorf("--speed: %w", err)}
	}
	check := plan
	check.Horizon = clock.Sim(c.duration)
	if err := check.Validate(); err != nil {
		return nil, "", usageError{err}
	}
	fleet, err := c.fleet(stderr)
	if err != nil {
		return nil, "", err
	}
	if c.throttleWait == 0 {
		// Wait at most one simulated round: work throttled longer is shed, as a paced agent would.
		fleet.ThrottleWait = clock.Real(plan.RoundPeriod())
	}
	r, err := sim.RunRunaway(ctx, sim.RunawayOptions{Plan: plan, Fleet: fleet, Speed: *speed, Duration: c.duration,
		MetricsURL: c.metricsURL, ReviewerToken: *reviewer, Progress: stderr})
	return r, c.output, err
}

func creep(ctx context.Context, args []string, stderr io.Writer) (*sim.Report, string, error) {
	var c common
	fs := c.flags("agentsim creep", stderr, 0, true)
	o := sim.CreepOptions{Agent: "research-agent", Team: "growth", Topic: "job.research.deep-dive", Warmup: 30, Steps: 40,
		Growth: 0.10, InputTokens: 2000, OutputTokens: 500}
	fs.StringVar(&o.Agent, "agent", o.Agent, "the looping agent")
	fs.StringVar(&o.Team, "team", o.Team, "its team")
	fs.StringVar(&o.Topic, "topic", o.Topic, "the topic of its calls")
	fs.IntVar(&o.Warmup, "warmup", o.Warmup, "ordinary calls before the loop")
	fs.IntVar(&o.Steps, "steps", o.Steps, "loop steps planned (the loop's own iteration cap)")
	fs.Float64Var(&o.Growth, "growth", o.Growth, "growth of each loop step's input over the previous step's (0.10: 10%)")
	fs.Int64Var(&o.InputTokens, "input-tokens", o.InputTokens, "input tokens of an ordinary call")
	fs.Int64Var(&o.OutputTokens, "output-tokens", o.OutputTokens, "output tokens per call")
	if err := c.parse(fs, args); err != nil {
		return nil, "", err
	}
	o.RunPrefix, o.MetricsURL = c.runPrefix, c.metricsURL
	return runValidated(ctx, &c, stderr, &o, func(f sim.FleetConfig) { o.Fleet = f }, sim.RunCreep)
}

func steady(ctx context.Context, args []string, stderr io.Writer) (*sim.Report, string, error) {
	var c common
	fs := c.flags("agentsim steady", stderr, 0, false)
	o := sim.SteadyOptions{Agents: 10, Team: "load", Rate: 50, Concurrency: 64, Seed: 1, InputTokens: 2000, OutputTokens: 500}
	fs.IntVar(&o.Agents, "agents", o.Agents, "number of agents")
	fs.StringVar(&o.Team, "team", o.Team, "the agents' team")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "actions per second for the whole fleet")
	fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "actions in flight at most")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the agent and topic mix")
	fs.Int64Var(&o.InputTokens, "input-tokens", o.InputTokens, "input tokens per call")
	fs.Int64Var(&o.OutputTokens, "output-tokens", o.OutputTokens, "output tokens per call")
	if err := c.parse(fs, args); err != nil {
		return nil, "", err
	}
	if c.duration == 0 {
		c.duration = 30 * time.Second
	}
	o.Duration, o.RunPrefix, o.MetricsURL = c.duration, c.runPrefix, c.metricsURL
	return runValidated(ctx, &c, stderr, &o, func(f sim.FleetConfig) { o.Fleet = f }, sim.RunSteady)
}

// runValidated builds the fleet from the common flags, hands it to the options (setFleet),
// validates them (a usage error) and runs the scenario.
func runValidated[O any, P interface {
	*O
	Validate() error
}](ctx context.Context, c *common, stderr io.Writer, o P, setFleet func(sim.FleetConfig),
	run func(context.Context, O) (*sim.Report, error)) (*sim.Report, string, error) {
	if c.degradeTo != "" {
		return nil, "", usageError{errors.New("--degrade-to is a runaway flag: only its report shows the degraded spend")}
	}
	fleet, err := c.fleet(stderr)
	if err != nil {
		return nil, "", err
	}
	setFleet(fleet)
	if err := o.Validate(); err != nil {
		return nil, "", usageError{err}
	}
	r, err := run(ctx, *o)
	return r, c.output, err
}
