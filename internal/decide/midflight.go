package decide

import (
	"context"
	"time"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
)

// Mid-flight detection. A settled action is judged against its (agent, action) baseline at
// settlement; CheckMidFlight judges what is still running, so that a loop is flagged while it
// spends, not after:
//
//   - every open reservation with booked spend (ledger.OpenSpend): its running total of matched
//     spend against multiplier × its (agent, action) baseline of whole settled actions;
//   - every run it follows: the run's lifetime spent (the ledger's run counter) against
//     multiplier × its agent's baseline of completed runs. A run is followed from the first check
//     that lists an open reservation of it with booked spend, or after this receiver settled an
//     action of it (so that a run whose actions all settle between two checks is followed too),
//     and is complete once run_idle has
//     passed with no activity: its ledger spent and reserved unchanged (nothing booked, nothing
//     decided with an estimate) and no open reservation of it with booked spend. Its total then
//     feeds the agent's run baseline.
//
// A flag is taken exactly once across every receiver sharing the ledger: a PutIfAbsent on a key
// per reservation (per run) decides which one records it. The winner records the anomaly in the
// ledger (level action or run, for anomaly_within), counts it, and writes an anomaly evidence
// record. Each receiver judges with the baselines it has; one whose baseline of the key is not warm
// does not flag, and another may.

// maxOpenSpend bounds the open reservations one check reads, and maxRuns the runs it follows.
const (
	maxOpenSpend = 10000
	maxRuns      = 10000
	// runReadBatch is how many run counters one ledger Read asks for.
	runReadBatch = 256
	// flagTTL keeps a flag's exactly-once marker well past any reservation's life.
	flagTTL = 7 * 24 * time.Hour
)

// runState is a run the mid-flight check follows.
type runState struct {
	agent      string
	evidenceID string // of the latest open reservation seen with spend
	spent      money.Nanos
	reserved   money.Nanos
	active     time.Time // last activity seen
	flagged    bool      // its flag is taken (by this receiver or another)
}

// runNote is a run noted at settlement.
type runNote struct{ agent, evidenceID string }

// noteRun records that an action of run settled, for the next CheckMidFlight to follow the run.
func (e *Engine) noteRun(run, agent, evidenceID string) {
	if e.cfg.RunBaselines == nil || run == "" || agent == "" {
		return
	}
	e.notedMu.Lock()
	if len(e.noted) < maxRuns {
		e.noted[run] = runNote{agent: agent, evidenceID: evidenceID}
	}
	e.notedMu.Unlock()
}

// follow starts following run (or notes its activity at now when already followed).
func (e *Engine) follow(run, agent, evidenceID string, now time.Time) {
	rs, ok := e.runs[run]
	if !ok {
		if len(e.runs) >= maxRuns {
			return
		}
		rs = &runState{agent: agent}
		e.runs[run] = rs
	}
	rs.active = now
	if evidenceID != "" {
		rs.evidenceID = evidenceID
	}
}

// flagKey is the ledger key that makes a mid-flight flag exactly-once.
func flagKey(level ledger.AnomalyLevel, id string) string {
	return "budget-receiver/flag/" + string(level) + "/" + id
}

// MidFlight counts what one CheckMidFlight did.
type MidFlight struct {
	// Actions and Runs are the open reservations and running runs this call flagged (it won
	// their exactly-once marker).
	Actions, Runs int
	// RunsCompleted counts the runs found complete and observed into their agent's run baseline.
	RunsCompleted int
}

// CheckMidFlight compares the running totals of open actions and running runs with their
// baselines and flags each one that crosses the multiplier, once (see the package comment above).
// The receiver calls it every midflight_interval.
func (e *Engine) CheckMidFlight(ctx context.Context) (MidFlight, error) {
	e.midMu.Lock()
	defer e.midMu.Unlock()
	var out MidFlight
	now := e.now()
	open, err := e.ledger.OpenSpend(ctx, maxOpenSpend)
	if err != nil {
		return out, err
	}
	// Reservations known flagged (by this receiver or another) are not asked about again while
	// they stay open.
	known := e.flaggedOpen
	e.flaggedOpen = make(map[string]struct{}, len(known))
	for _, o := range open {
		if o.Agent == "" {
			continue
		}
		if _, done := known[o.ID]; done {
			e.flaggedOpen[o.ID] = struct{}{}
		} else if o.Action != "" {
			if r := e.cfg.Baselines.Check(baselineKey(o.Agent, o.Action), o.Matched); r.Anomalous {
				flagged, err := e.flagOnce(ctx, ledger.LevelAction, o.ID)
				if err != nil {
					return out, err
				}
				e.flaggedOpen[o.ID] = struct{}{}
				if flagged {
					out.Actions++
					e.rec.ActionAnomaly(o.Agent)
					e.emit(ctx, anomalyEvent(o.ID, o.Agent, o.Action, o.Matched, "running cost above the action's baseline (flagged mid-flight)", now))
					e.recordFlag(ctx, ledger.LevelAction, o.Agent, now, evidence.Record{
						EvidenceID: o.Metadata[metaEvidenceID], RunID: o.RunID, Team: o.Team, Action: o.Action,
						DecisionID: o.ID, TraceID: o.TraceID, LeaseID: o.Metadata[metaLeaseID],
						EstimatedCostUSD: evidence.USD(o.Estimate), ActualCostUSD: evidence.USD(o.Matched), SpansMatched: o.Spans,
						Anomaly: &evidence.Anomaly{Anomalous: true, Ratio: r.Ratio, BaselineUSD: evidence.USD(r.Baseline)},
					})
				}
			}
		}
		if e.cfg.RunBaselines != nil && o.RunID != "" {
			e.follow(o.RunID, o.Agent, o.Metadata[metaEvidenceID], now)
		}
	}
	if e.cfg.RunBaselines == nil {
		return out, nil
	}
	e.notedMu.Lock()
	noted := e.noted
	if len(noted) > 0 {
		e.noted = map[string]runNote{}
	}
	e.notedMu.Unlock()
	for run, n := range noted {
		e.follow(run, n.agent, n.evidenceID, now)
	}
	if len(e.runs) == 0 {
		return out, nil
	}
	ids := make([]string, 0, len(e.runs))
	for id := range e.runs {
		ids = append(ids, id)
	}
	for start := 0; start < len(ids); start += runReadBatch {
		batch := ids[start:min(start+runReadBatch, len(ids))]
		qs := make([]ledger.StateQuery, len(batch))
		for i, id := range batch {
			qs[i] = ledger.StateQuery{Scope: ledger.ScopeRun, ID: id, Window: ledger.Lifetime}
		}
		res, err := e.ledger.Read(ctx, ledger.ReadRequest{States: qs, Time: now})
		if err != nil {
			return out, err
		}
		for i, id := range batch {
			rs, st := e.runs[id], res.States[i]
			if st.Spent != rs.spent || st.Reserved != rs.reserved {
				rs.spent, rs.reserved, rs.active = st.Spent, st.Reserved, now
			}
			if now.Sub(rs.active) >= e.cfg.RunIdle {
				if rs.spent > 0 {
					e.cfg.RunBaselines.Observe(rs.agent, rs.spent)
				}
				delete(e.runs, id)
				out.RunsCompleted++
				continue
			}
			if rs.flagged {
				continue
			}
			r := e.cfg.RunBaselines.Check(rs.agent, rs.spent)
			if !r.Anomalous {
				continue
			}
			flagged, err := e.flagOnce(ctx, ledger.LevelRun, id)
			if err != nil {
				return out, err
			}
			rs.flagged = true
			if !flagged {
				continue
			}
			out.Runs++
			e.rec.RunAnomaly(rs.agent)
			evidenceID := rs.evidenceID
			if evidenceID == "" {
				evidenceID = "run:" + id
			}
			e.recordFlag(ctx, ledger.LevelRun, rs.agent, now, evidence.Record{
				EvidenceID: evidenceID, RunID: id, ActualCostUSD: evidence.USD(rs.spent),
				Anomaly: &evidence.Anomaly{Anomalous: true, Ratio: r.Ratio, BaselineUSD: evidence.USD(r.Baseline)},
			})
		}
	}
	return out, nil
}

// flagOnce takes the exactly-once marker of a flag of level on id: true for the one caller, across
// every receiver sharing the ledger, that takes it.
func (e *Engine) flagOnce(ctx context.Context, level ledger.AnomalyLevel, id string) (bool, error) {
	_, created, err := e.ledger.PutIfAbsent(ctx, flagKey(level, id), []byte(e.now().UTC().Format(time.RFC3339Nano)), flagTTL)
	return created, err
}

// recordFlag records a mid-flight anomaly for anomaly_within and writes its evidence record.
func (e *Engine) recordFlag(ctx context.Context, level ledger.AnomalyLevel, agent string, now time.Time, rec evidence.Record) {
	if err := e.ledger.RecordAnomaly(ctx, agent, level, now); err != nil {
		e.warnLedger("record anomaly", err)
	}
	if rec.EvidenceID == "" {
		return
	}
	rec.Kind, rec.Time, rec.AgentID, rec.Level = evidence.KindAnomaly, now, agent, string(level)
	e.appendEvidence(rec)
}

// RunsFollowed returns how many runs the mid-flight check follows.
func (e *Engine) RunsFollowed() int {
	e.midMu.Lock()
	defer e.midMu.Unlock()
	return len(e.runs)
}
