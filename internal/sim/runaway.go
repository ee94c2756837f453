package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// RunawayOptions configures a run of the runaway scenario.
type RunawayOptions struct {
	// Plan is the fleet's plan.
	Plan RunawayConfig
	// Fleet is how the agents act.
	Fleet FleetConfig
	// Speed is simulated seconds per real second.
	Speed float64
	// Duration bounds the run in real time (0: until the plan is done); the plan is cut at
	// Duration × Speed of simulated time.
	Duration time.Duration
	// MetricsURL is the collector's Prometheus endpoint, read before and after the run for the
	// per-call anomaly count; empty skips it.
	MetricsURL string
	// ReviewerToken, when set on a governed run, starts the auto-reviewer with this token.
	ReviewerToken string
	// Progress, when set, receives a line each time another tenth of the planned actions is done,
	// and one before the final span flush, so a long run is not silent until its report.
	Progress io.Writer
}

// closeTimeout bounds the final span flush.
const closeTimeout = 30 * time.Second

// RunRunaway runs the runaway scenario: every agent walks its planned actions at their simulated
// times, through the guard unless the fleet is ungoverned, and the report compares what ran with
// the plan.
func RunRunaway(ctx context.Context, o RunawayOptions) (*Report, error) {
	clock, err := NewClock(o.Speed)
	if err != nil {
		return nil, err
	}
	cfg := o.Plan
	if o.Duration > 0 {
		cfg.Horizon = clock.Sim(o.Duration)
	}
	if o.Fleet.Pricer == nil {
		return nil, errors.New("runaway: a pricer is required")
	}
	arith, err := cfg.Arithmetic(o.Fleet.Pricer)
	if err != nil {
		return nil, err
	}
	plan, err := cfg.Runaway(o.Fleet.Pricer)
	if err != nil {
		return nil, err
	}
	for _, a := range plan.Actions {
		a.Key = fmt.Sprintf("%s-%d", cfg.RunPrefix, a.Seq)
	}
	fleet, err := NewFleet(ctx, o.Fleet, clock)
	if err != nil {
		return nil, err
	}
	metrics := newAnomalyReader(o.MetricsURL)
	metrics.before(ctx)

	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if o.Duration > 0 {
		runCtx, cancel = context.WithTimeout(ctx, o.Duration)
	}
	defer cancel()

	var reviewer *Reviewer
	var reviewerDone sync.WaitGroup
	reviewCtx, stopReviewer := context.WithCancel(runCtx)
	defer stopReviewer()
	if o.Fleet.Governed() && o.ReviewerToken != "" {
		reviewer = NewReviewer(o.Fleet.DecisionURL, o.ReviewerToken, cfg.RunPrefix, o.Fleet.PollInterval, nil)
		reviewerDone.Go(func() { reviewer.Run(reviewCtx) })
	}

	outcomes := make([]Outcome, len(plan.Actions))
	progress := newProgress(o.Progress, len(plan.Actions), clock)
	var agents sync.WaitGroup
	for _, acts := range byAgent(plan.Actions) {
		agents.Go(func() {
			for _, a := range acts {
				if err := clock.WaitUntil(runCtx, a.At); err != nil {
					outcomes[a.Seq-1] = Outcome{Action: a, Status: StatusNotRun}
					progress.done()
					continue
				}
				outcomes[a.Seq-1] = fleet.Do(runCtx, a)
				progress.done()
			}
		})
	}
	agents.Wait()
	progress.printf("agentsim runaway: all agents done; flushing spans and writing the report\n")
	stopReviewer()
	reviewerDone.Wait()
	wall, simulated := clock.RealElapsed(), clock.Sim(clock.RealElapsed())

	info := RunInfo{Scenario: "runaway", Governed: o.Fleet.Governed(), Speed: o.Speed, Wall: wall, Simulated: simulated,
		Pricer: o.Fleet.Pricer, Arithmetic: &arith, DegradeTo: o.Fleet.DegradeTo, BatchesPerDay: cfg.BatchesPerDay, AutoReviewer: reviewer != nil}
	finish(ctx, fleet, metrics, &info)
	if reviewer != nil {
		info.Approved = reviewer.Approved()
		info.Problems = append(info.Problems, reviewer.Errors()...)
	}
	return Summarize(plan, outcomes, info), nil
}

// finish flushes the fleet's spans, then reads the anomaly counter again, and fills info.
func finish(ctx context.Context, fleet *Fleet, metrics *anomalyReader, info *RunInfo) {
	info.Decisions = fleet.probe.stats()
	info.Problems = append(info.Problems, fleet.Problems()...)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if err := fleet.Close(cctx); err != nil {
		info.Problems = append(info.Problems, err)
	}
	var last error
	info.SpansSent, info.SpansFailed, last = fleet.tel.Sent()
	if last != nil {
		info.Problems = append(info.Problems, fmt.Errorf("exporting spans: %w", last))
	}
	info.CallAnomalies = metrics.after(cctx)
	info.Problems = append(info.Problems, metrics.errs...)
}

// byAgent groups actions per agent, keeping their order.
func byAgent(actions []*Action) [][]*Action {
	idx := map[string]int{}
	var out [][]*Action
	for _, a := range actions {
		i, ok := idx[a.Agent]
		if !ok {
			i = len(out)
			idx[a.Agent] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], a)
	}
	return out
}

// anomalyReader reads the call-level anomaly counter before and after a run.
type anomalyReader struct {
	url  string
	http *http.Client
	base map[string]float64
	errs []error
}

func newAnomalyReader(url string) *anomalyReader {
	return &anomalyReader{url: url, http: &http.Client{Timeout: 10 * time.Second}}
}

func (r *anomalyReader) before(ctx context.Context) {
	if r.url == "" {
		return
	}
	m, err := ReadAnomalies(ctx, r.http, r.url, "call")
	if err != nil {
		r.errs = append(r.errs, err)
		return
	}
	r.base = m
}

// after returns the increase per agent since before, or nil when either read failed.
func (r *anomalyReader) after(ctx context.Context) map[string]float64 {
	if r.url == "" || r.base == nil {
		return nil
	}
	// The budget receiver publishes the ledger's totals every publish_interval: give the last
	// bookings up to 2 s to show.
	var m map[string]float64
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if m, err = ReadAnomalies(ctx, r.http, r.url, "call"); err != nil {
			r.errs = append(r.errs, err)
			return nil
		}
		if rose(m, r.base) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
	}
	for agent, v := range m {
		m[agent] = v - r.base[agent]
	}
	return m
}

// rose reports whether any agent's count in m is above its count in base.
func rose(m, base map[string]float64) bool {
	for agent, v := range m {
		if v > base[agent] {
			return true
		}
	}
	return false
}

// progress prints a line each time another tenth of a run's actions is done.
type progress struct {
	w     io.Writer
	total int
	clock *Clock
	mu    sync.Mutex
	n     int
}

func newProgress(w io.Writer, total int, clock *Clock) *progress {
	return &progress{w: w, total: total, clock: clock}
}

// done counts one finished (or skipped) action.
func (p *progress) done() {
	if p.w == nil || p.total == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if p.n*10/p.total != (p.n-1)*10/p.total {
		fmt.Fprintf(p.w, "agentsim runaway: %d/%d actions done (%d%%), simulated %s\n",
			p.n, p.total, p.n*100/p.total, p.clock.Sim(p.clock.RealElapsed()).Round(time.Minute))
	}
}

func (p *progress) printf(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}
