package policy

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/internal/boundedfile"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/yamldoc"
)

// Source is a named policy or overlay document, for Parse.
type Source struct {
	// Name is used in error messages (a file path, usually).
	Name string
	// Data is the YAML text.
	Data []byte
}

// Rule ids of the budget layers and the approval cost cap, as Outcome.RuleID reports them.
// User rule ids may not use the "budget." and "approval." prefixes.
const (
	RulePerActionCap = "budget.per_action"
	RuleRunBudget    = "budget.run"
	RuleAgentBudget  = "budget.agent"
	RuleTeamBudget   = "budget.team"
	RuleFleet        = "budget.fleet"
	RuleApprovalCap  = "approval.cost_cap"
)

const (
	maxDeriveTags     = 64 // derived tags are a bitmask
	ratioScale        = 1_000_000_000
	defaultThrottleAt = 800_000_000 // 0.80 scaled by ratioScale
	defaultPauseAt    = 950_000_000 // 0.95
	wantWindows       = "minute|hour|day|week|month (or 1m, 1h, 24h, 1d, 7d, 1w, 1mo)"
	wantRate          = "N/second|minute|hour|day"
)

// FieldError is one problem in a policy file, located by file, line and field path, formatted
// as `file:line: field: message`.
type FieldError = yamldoc.Error

// ValidationError lists every problem found in a policy and its overlays, in file and line order.
type ValidationError = yamldoc.Errors

// Load reads, validates and compiles a policy file and its overlay files (which hold only
// `topics:`; later overlays win). Each file is bounded by boundedfile.DefaultLimit, checked on its
// size before it is read.
func Load(path string, overlays ...string) (*Policy, error) {
	data, err := boundedfile.Read(path, 0)
	if err != nil {
		return nil, fmt.Errorf("reading policy file %q: %w", path, err)
	}
	srcs := make([]Source, len(overlays))
	for i, ov := range overlays {
		d, err := boundedfile.Read(ov, 0)
		if err != nil {
			return nil, fmt.Errorf("reading policy overlay %q: %w", ov, err)
		}
		srcs[i] = Source{Name: ov, Data: d}
	}
	return Parse(path, data, srcs...)
}

// Parse validates and compiles a policy document and its overlays. name is used in error
// messages. A *ValidationError lists every problem found.
func Parse(name string, data []byte, overlays ...Source) (*Policy, error) {
	b := &builder{
		p: &Policy{
			name:            name,
			defaultDecision: Allow,
			agentBudgets:    map[string]Budget{},
			teamBudgets:     map[string]Budget{},
			critical:        map[string]bool{},
			topics:          map[string]TopicSettings{},
			maxPending:      DefaultMaxPendingPerAgent,
		},
		topics: map[string]*topicEntry{},
	}
	b.p.reportedMultiple, b.p.reportedFloor = DefaultReportedCostMaxMultiple*ratioScale, DefaultReportedCostFloorUSD*money.NanosPerUSD
	h := sha256.New()
	hashPart(h, data)
	d := decoder{yamldoc.NewDecoder(&b.errs, name)}
	if root := d.Document(data, "a policy file"); root != nil {
		b.policyDoc(d, root)
		b.checkDegradeScopes(d)
	}
	files := []string{name}
	for _, ov := range overlays {
		hashPart(h, ov.Data)
		od := decoder{yamldoc.NewDecoder(&b.errs, ov.Name)}
		if root := od.Document(ov.Data, "a policy file"); root != nil {
			b.overlayDoc(od, root)
		}
		files = append(files, ov.Name)
	}
	b.finish()
	if err := b.errs.Err(files...); err != nil {
		return nil, err
	}
	b.p.sha256 = hex.EncodeToString(h.Sum(nil))
	b.p.hash = "sha256:" + b.p.sha256[:12]
	if b.p.version == "" {
		b.p.version = b.p.hash
	}
	return b.p, nil
}

func hashPart(w io.Writer, data []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(data)))
	_, _ = w.Write(n[:])
	_, _ = w.Write(data)
}

// builder accumulates the policy and the problems found across the files.
type builder struct {
	p        *Policy
	errs     yamldoc.Errors
	topics   map[string]*topicEntry
	topicSeq int
	rawRules []rawRule
	ruleIDs  map[string]int // id → line of its first use
}

type topicEntry struct {
	settings TopicSettings
	seq      int // order of the latest declaration
}

type rawRule struct {
	rule
	tags []string
}

// decoder walks one file's node tree (see yamldoc.Decoder) with the policy's value readers.
type decoder struct {
	*yamldoc.Decoder
}

func (d decoder) limit(n *yaml.Node, field string, lowest int64) Limit {
	if v, ok := d.Integer(n, field, lowest); ok {
		return LimitOf(v)
	}
	return Limit{}
}

// usd reads a non-negative dollar amount exactly (no float64 in between).
func (d decoder) usd(n *yaml.Node, field string) (money.Nanos, bool) {
	s, ok := d.Scalar(n, field)
	if !ok {
		return 0, false
	}
	switch n.ShortTag() {
	case "!!int", "!!float", "!!str":
	default:
		d.Fail(n, field, "%q is not a dollar amount", s)
		return 0, false
	}
	v, err := money.ParseUSD(s)
	switch {
	case errors.Is(err, money.ErrNegative):
		d.Fail(n, field, "%s is negative", s)
		return 0, false
	case err != nil:
		d.Fail(n, field, "%q is not a dollar amount", s)
		return 0, false
	}
	return v, true
}

// ratio reads a fraction in (0, 1], scaled by 1e9.
func (d decoder) ratio(n *yaml.Node, field string) (money.Nanos, bool) {
	s, ok := d.Scalar(n, field)
	if !ok {
		return 0, false
	}
	v, err := money.ParseUSD(s)
	if err != nil || v <= 0 || v > ratioScale || n.ShortTag() == "!!bool" {
		d.Fail(n, field, "%q is not a fraction in (0, 1]", s)
		return 0, false
	}
	return v, true
}

func (d decoder) duration(n *yaml.Node, field string) (time.Duration, bool) {
	s, ok := d.Scalar(n, field)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		d.Fail(n, field, "%q is not a positive duration like 90s, 10m or 1h", s)
		return 0, false
	}
	return v, true
}

func (d decoder) window(n *yaml.Node, field string) (Window, bool) {
	s, ok := d.Scalar(n, field)
	if !ok {
		return WindowNone, false
	}
	w, ok := ParseWindow(s)
	if !ok || w == Lifetime {
		d.Fail(n, field, "%q is not %s", s, wantWindows)
		return WindowNone, false
	}
	return w, true
}

// names reads a list of non-empty strings.
func (d decoder) names(n *yaml.Node, field string) []string {
	var out []string
	d.Sequence(n, field, func(i int, v *yaml.Node) {
		if s, ok := d.Name(v, yamldoc.Index(field, i)); ok {
			out = append(out, s)
		}
	})
	return out
}

func (d decoder) globs(n *yaml.Node, field string) globSet {
	var out globSet
	d.Sequence(n, field, func(i int, v *yaml.Node) {
		f := yamldoc.Index(field, i)
		s, ok := d.Name(v, f)
		if !ok {
			return
		}
		g, err := compileGlob(s)
		if err != nil {
			d.Fail(v, f, "topic pattern %q: %v", s, err)
			return
		}
		out = append(out, g)
	})
	return out
}

const policyKeys = "version, policy_version, default_decision, derive_tags, budgets, agents, topics, rules, evidence, approvals, settlement, degrade"

const settlementKeys = "reported_cost_max_multiple, reported_cost_floor_usd"

// settlement reads the `settlement:` block: how far an agent's self-reported actual_cost_usd is
// believed (see Policy.ReportedCostLimit).
func (b *builder) settlement(d decoder, n *yaml.Node) {
	d.Mapping(n, "settlement", func(key string, k, v *yaml.Node) {
		field := yamldoc.Join("settlement", key)
		switch key {
		case "reported_cost_max_multiple":
			s, ok := d.Scalar(v, field)
			if !ok {
				return
			}
			m, err := money.ParseUSD(s)
			if err != nil || v.ShortTag() == "!!bool" || m < ratioScale || m > 1000*ratioScale {
				d.Fail(v, field, "%q is not a multiple between 1 and 1000", s)
				return
			}
			b.p.reportedMultiple = m
		case "reported_cost_floor_usd":
			if f, ok := d.usd(v, field); ok {
				b.p.reportedFloor = f
			}
		default:
			d.Unknown(k, "settlement", key, settlementKeys)
		}
	})
}

func (b *builder) policyDoc(d decoder, root *yaml.Node) {
	sawVersion := false
	if !d.Mapping(root, "", func(key string, k, v *yaml.Node) {
		switch key {
		case "version":
			sawVersion = true
			d.version(v)
		case "policy_version":
			if s, ok := d.Name(v, key); ok {
				b.p.version = strings.TrimSpace(s)
			}
		case "default_decision":
			if s, ok := d.Scalar(v, key); ok {
				dec, ok := ParseDecision(s)
				if !ok {
					d.Fail(v, key, "%q is not one of %s", s, strings.Join(decisionNames[:], "|"))
				}
				b.p.defaultDecision = dec
			}
		case "derive_tags":
			b.deriveTags(d, v)
		case "budgets":
			b.budgets(d, v)
		case "agents":
			b.agents(d, v)
		case "topics":
			b.topicsDoc(d, v)
		case "rules":
			d.Sequence(v, key, func(i int, item *yaml.Node) { b.rule(d, item, yamldoc.Index("rules", i)) })
		case "approvals":
			d.Mapping(v, key, func(ak string, k, v *yaml.Node) {
				if ak != "max_pending_per_agent" {
					d.Unknown(k, key, ak, "max_pending_per_agent")
					return
				}
				if n, ok := d.Integer(v, yamldoc.Join(key, ak), 0); ok {
					b.p.maxPending = n
				}
			})
		case "settlement":
			b.settlement(d, v)
		case "degrade":
			b.degrade(d, v)
		case "evidence":
			d.Mapping(v, key, func(ek string, k, v *yaml.Node) {
				if ek != "min_estimated_cost_usd" {
					d.Unknown(k, key, ek, "min_estimated_cost_usd")
					return
				}
				b.p.evidenceMin, _ = d.usd(v, yamldoc.Join(key, ek))
			})
		default:
			d.Unknown(k, "", key, policyKeys)
		}
	}) {
		return
	}
	if !sawVersion {
		d.Fail(root, "version", "missing (want v1)")
	}
}

func (d decoder) version(v *yaml.Node) {
	if s, ok := d.Scalar(v, "version"); ok && s != "v1" {
		d.Fail(v, "version", "%q is not supported (want v1)", s)
	}
}

// overlayDoc reads an overlay file: `topics:` (and optionally `version: v1`) only.
func (b *builder) overlayDoc(d decoder, root *yaml.Node) {
	d.Mapping(root, "", func(key string, k, v *yaml.Node) {
		switch key {
		case "version":
			d.version(v)
		case "topics":
			b.topicsDoc(d, v)
		default:
			d.Unknown(k, "", key, "topics, version (an overlay holds topic settings only)")
		}
	})
}

func (b *builder) topicsDoc(d decoder, n *yaml.Node) {
	d.Mapping(n, "topics", func(topic string, k, v *yaml.Node) {
		field := yamldoc.Entry("topics", topic)
		if strings.Contains(topic, "*") {
			if _, err := compileGlob(topic); err != nil {
				d.Fail(k, field, "topic pattern: %v", err)
				return
			}
		} else if strings.TrimSpace(topic) == "" {
			d.Fail(k, field, "empty topic")
			return
		}
		e := b.topics[topic]
		if e == nil {
			e = &topicEntry{}
			b.topics[topic] = e
		}
		b.topicSeq++
		e.seq = b.topicSeq
		d.Object(v, field, "timeout_seconds and/or max_retries", func(key string, k, v *yaml.Node) {
			switch key {
			case "timeout_seconds":
				if l := d.limit(v, yamldoc.Join(field, key), 1); !l.IsZero() {
					e.settings.TimeoutSeconds = l
				}
			case "max_retries":
				if l := d.limit(v, yamldoc.Join(field, key), 0); !l.IsZero() {
					e.settings.MaxRetries = l
				}
			default:
				d.Unknown(k, field, key, "timeout_seconds, max_retries")
			}
		})
	})
}

func (b *builder) deriveTags(d decoder, n *yaml.Node) {
	d.Sequence(n, "derive_tags", func(i int, item *yaml.Node) {
		field := yamldoc.Index("derive_tags", i)
		var dr deriveRule
		var minNode *yaml.Node
		sawTag, sawWhen := false, false
		if !d.Object(item, field, "tag and when", func(key string, k, v *yaml.Node) {
			switch key {
			case "tag":
				sawTag = true
				dr.tag, _ = d.Name(v, yamldoc.Join(field, key))
			case "when":
				wf := yamldoc.Join(field, key)
				d.Mapping(v, wf, func(key string, k, v *yaml.Node) {
					sawWhen = true
					f := yamldoc.Join(wf, key)
					switch key {
					case "min_estimated_cost_usd":
						dr.minCost, dr.hasMin = d.usd(v, f)
						minNode = v
					case "max_estimated_cost_usd":
						dr.maxCost, dr.hasMax = d.usd(v, f)
					case "min_items":
						dr.minItems, _ = d.Integer(v, f, 1)
					case "topics":
						dr.topics = d.globs(v, f)
					case "agents":
						dr.agents = d.names(v, f)
					default:
						sawWhen = false
						d.Unknown(k, wf, key, "min_estimated_cost_usd, max_estimated_cost_usd, min_items, topics, agents")
					}
				})
			default:
				d.Unknown(k, field, key, "tag, when")
			}
		}) {
			return
		}
		if !sawTag {
			d.Fail(item, yamldoc.Join(field, "tag"), "missing")
		}
		if !sawWhen {
			d.Fail(item, yamldoc.Join(field, "when"), "missing (needs at least one condition)")
		}
		if dr.hasMin && dr.hasMax && dr.minCost > dr.maxCost {
			d.Fail(minNode, yamldoc.Join(field, "when.min_estimated_cost_usd"), "%s is above max_estimated_cost_usd %s", dr.minCost, dr.maxCost)
		}
		if len(b.p.derive) == maxDeriveTags {
			d.Fail(item, field, "more than %d derive_tags", maxDeriveTags)
			return
		}
		b.p.derive = append(b.p.derive, dr)
	})
}

const budgetKeys = "fleet, agents, default_agent, teams, default_team, runs, per_action_max_usd"

func (b *builder) budgets(d decoder, n *yaml.Node) {
	d.Mapping(n, "budgets", func(key string, k, v *yaml.Node) {
		field := yamldoc.Join("budgets", key)
		switch key {
		case "fleet":
			b.fleet(d, v, field)
		case "agents":
			d.Mapping(v, field, func(id string, _, v *yaml.Node) {
				if bu, ok := d.budget(v, yamldoc.Entry(field, id), false); ok {
					b.p.agentBudgets[id] = bu
				}
			})
		case "teams":
			d.Mapping(v, field, func(id string, _, v *yaml.Node) {
				if bu, ok := d.budget(v, yamldoc.Entry(field, id), false); ok {
					b.p.teamBudgets[id] = bu
				}
			})
		case "default_agent":
			b.p.defaultAgent, _ = d.budget(v, field, false)
		case "default_team":
			b.p.defaultTeam, _ = d.budget(v, field, false)
		case "runs":
			b.p.runBudget, _ = d.budget(v, field, true)
		case "per_action_max_usd":
			b.p.perActionMax, b.p.hasActionMax = d.usd(v, field)
		default:
			d.Unknown(k, "budgets", key, budgetKeys)
		}
	})
}

// budget reads {limit_usd, window}; a run budget's window is lifetime (and may be omitted).
func (d decoder) budget(n *yaml.Node, field string, run bool) (Budget, bool) {
	var bu Budget
	sawLimit, ok := false, true
	if !d.Object(n, field, "limit_usd and window", func(key string, k, v *yaml.Node) {
		f := yamldoc.Join(field, key)
		switch key {
		case "limit_usd":
			sawLimit = true
			var good bool
			if bu.Limit, good = d.usd(v, f); !good {
				ok = false
			}
		case "warn_at":
			if r, good := d.ratio(v, f); good {
				if r >= ratioScale {
					d.Fail(v, f, "%s must be below 1 (at 1 the budget is exhausted)", r)
				}
				bu.WarnAt = r
			}
		case "window":
			if run {
				if s, good := d.Scalar(v, f); good && s != "lifetime" {
					d.Fail(v, f, "%q is not lifetime (a run budget spans the whole run)", s)
				}
				return
			}
			var good bool
			if bu.Window, good = d.window(v, f); !good {
				ok = false
			}
		default:
			d.Unknown(k, field, key, "limit_usd, window, warn_at")
		}
	}) {
		return Budget{}, false
	}
	if !sawLimit {
		d.Fail(n, yamldoc.Join(field, "limit_usd"), "missing")
		ok = false
	}
	if run {
		bu.Window = Lifetime
	} else if bu.Window == WindowNone && ok {
		d.Fail(n, yamldoc.Join(field, "window"), "missing (want %s)", wantWindows)
		ok = false
	}
	if !ok {
		return Budget{}, false
	}
	return bu, true
}

func (b *builder) fleet(d decoder, n *yaml.Node, field string) {
	f := &b.p.fleet
	f.throttleAt, f.pauseAt = defaultThrottleAt, defaultPauseAt
	sawLimit, sawWindow := false, false
	throttleLine, pauseLine, warnLine := n.Line, n.Line, n.Line
	if !d.Object(n, field, "limit_usd and window", func(key string, k, v *yaml.Node) {
		kf := yamldoc.Join(field, key)
		switch key {
		case "limit_usd":
			sawLimit = true
			f.Limit, _ = d.usd(v, kf)
		case "window":
			sawWindow = true
			f.Window, _ = d.window(v, kf)
		case "warn_at":
			warnLine = v.Line
			if r, ok := d.ratio(v, kf); ok {
				f.WarnAt = r
			}
		case "throttle_at":
			throttleLine = v.Line
			if r, ok := d.ratio(v, kf); ok {
				f.throttleAt = r
			}
		case "pause_at":
			pauseLine = v.Line
			if r, ok := d.ratio(v, kf); ok {
				f.pauseAt = r
			}
		case "throttle_rate":
			if s, ok := d.Scalar(v, kf); ok {
				r, err := ParseRateLimit(s)
				if err != nil {
					d.Fail(v, kf, "%q is not %s", s, wantRate)
				}
				f.throttleRate = r
			}
		default:
			d.Unknown(k, field, key, "limit_usd, window, warn_at, throttle_at, pause_at, throttle_rate")
		}
	}) {
		return
	}
	if !sawLimit {
		d.Fail(n, yamldoc.Join(field, "limit_usd"), "missing")
	}
	if !sawWindow {
		d.Fail(n, yamldoc.Join(field, "window"), "missing (want %s)", wantWindows)
	}
	if f.throttleAt >= f.pauseAt {
		line := throttleLine
		if pauseLine > line {
			line = pauseLine
		}
		d.FailAt(line, yamldoc.Join(field, "throttle_at"), "%s must be below pause_at %s", f.throttleAt, f.pauseAt)
	}
	if f.WarnAt > 0 && f.WarnAt >= f.throttleAt {
		d.FailAt(max(warnLine, throttleLine), yamldoc.Join(field, "warn_at"), "%s must be below throttle_at %s", f.WarnAt, f.throttleAt)
	}
	f.throttleUsed = scaleCeil(f.Limit, f.throttleAt)
	f.pauseUsed = scaleCeil(f.Limit, f.pauseAt)
}

// scaleCeil returns ceil(limit × ratio / 1e9) exactly.
func scaleCeil(limit, ratio money.Nanos) money.Nanos {
	if limit <= 0 || ratio <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(limit), uint64(ratio))
	q, r := bits.Div64(hi, lo, ratioScale) // hi < 1e9: limit ≤ MaxNanos, ratio ≤ 1e9
	if r != 0 {
		q++
	}
	return money.Nanos(q)
}

func (b *builder) agents(d decoder, n *yaml.Node) {
	d.Mapping(n, "agents", func(id string, _, v *yaml.Node) {
		field := yamldoc.Entry("agents", id)
		d.Object(v, field, "critical", func(key string, k, v *yaml.Node) {
			if key != "critical" {
				d.Unknown(k, field, key, "critical")
				return
			}
			if c, ok := d.Boolean(v, yamldoc.Join(field, key)); ok && c {
				b.p.critical[id] = true
			}
		})
	})
}

const ruleKeys = "id, match, decision, constraints, per, reason"

func (b *builder) rule(d decoder, n *yaml.Node, field string) {
	var r rawRule
	r.line = n.Line
	sawID, sawDecision := false, false
	if !d.Object(n, field, "id, match and decision", func(key string, k, v *yaml.Node) {
		f := yamldoc.Join(field, key)
		switch key {
		case "id":
			sawID = true
			id, ok := d.Name(v, f)
			if !ok {
				return
			}
			r.id = id
			if strings.HasPrefix(id, "budget.") || strings.HasPrefix(id, "approval.") {
				d.Fail(v, f, "%q uses a reserved prefix (budget., approval.)", id)
			} else if first, dup := b.ruleIDs[id]; dup {
				d.Fail(v, f, "duplicate rule id %q (first used on line %d)", id, first)
			} else {
				if b.ruleIDs == nil {
					b.ruleIDs = map[string]int{}
				}
				b.ruleIDs[id] = v.Line
			}
		case "match":
			b.match(d, v, f, &r)
		case "decision":
			sawDecision = true
			if s, ok := d.Scalar(v, f); ok {
				dec, ok := ParseDecision(s)
				if !ok {
					d.Fail(v, f, "%q is not one of %s", s, strings.Join(decisionNames[:], "|"))
				}
				r.decision = dec
			}
		case "constraints":
			r.constraints = d.constraints(v, f)
		case "per":
			if s, ok := d.Scalar(v, f); ok {
				switch s {
				case "agent":
					r.per = PerAgent
				case "rule":
					r.per = PerRule
				case "agent_topic":
					r.per = PerAgentTopic
				default:
					d.Fail(v, f, "%q is not one of rule|agent|agent_topic", s)
				}
			}
		case "reason":
			r.reason, _ = d.Scalar(v, f)
		default:
			d.Unknown(k, field, key, ruleKeys)
		}
	}) {
		return
	}
	if !sawID {
		d.Fail(n, yamldoc.Join(field, "id"), "missing")
	}
	if !sawDecision {
		d.Fail(n, yamldoc.Join(field, "decision"), "missing (want %s)", strings.Join(decisionNames[:], "|"))
	}
	if r.reason == "" && r.id != "" {
		r.reason = "rule " + r.id
	}
	b.rawRules = append(b.rawRules, r)
}

const matchKeys = "topics, risk_tags, agents, teams, min_estimated_cost_usd, max_estimated_cost_usd, min_items, anomaly_within"

func (b *builder) match(d decoder, n *yaml.Node, field string, r *rawRule) {
	var minNode *yaml.Node
	d.Mapping(n, field, func(key string, k, v *yaml.Node) {
		f := yamldoc.Join(field, key)
		switch key {
		case "topics":
			r.topics = d.globs(v, f)
		case "risk_tags":
			r.tags = d.names(v, f)
		case "agents":
			r.agents = d.names(v, f)
		case "teams":
			r.teams = d.names(v, f)
		case "min_estimated_cost_usd":
			r.minCost, r.hasMin = d.usd(v, f)
			minNode = v
		case "max_estimated_cost_usd":
			r.maxCost, r.hasMax = d.usd(v, f)
		case "min_items":
			r.minItems, _ = d.Integer(v, f, 1)
		case "anomaly_within":
			r.anomalyWithin, _ = d.duration(v, f)
		default:
			d.Unknown(k, field, key, matchKeys)
		}
	})
	if r.hasMin && r.hasMax && r.minCost > r.maxCost {
		d.Fail(minNode, yamldoc.Join(field, "min_estimated_cost_usd"), "%s is above max_estimated_cost_usd %s", r.minCost, r.maxCost)
	}
}

const constraintKeys = "max_runtime_sec, max_retries, max_concurrent, rate_limit, max_tokens, max_tool_calls, max_depth"

func (d decoder) constraints(n *yaml.Node, field string) Constraints {
	var c Constraints
	d.Mapping(n, field, func(key string, k, v *yaml.Node) {
		f := yamldoc.Join(field, key)
		switch key {
		case "max_runtime_sec":
			c.MaxRuntimeSec = d.limit(v, f, 1)
		case "max_retries":
			c.MaxRetries = d.limit(v, f, 0)
		case "max_concurrent":
			c.MaxConcurrent = d.limit(v, f, 1)
		case "rate_limit":
			if s, ok := d.Scalar(v, f); ok {
				rl, err := ParseRateLimit(s)
				if err != nil {
					d.Fail(v, f, "%q is not %s", s, wantRate)
				}
				c.RateLimit = rl
			}
		case "max_tokens":
			c.MaxTokens = d.limit(v, f, 1)
		case "max_tool_calls":
			c.MaxToolCalls = d.limit(v, f, 0)
		case "max_depth":
			c.MaxDepth = d.limit(v, f, 0)
		default:
			d.Unknown(k, field, key, constraintKeys)
		}
	})
	return c
}

// finish resolves what needs the whole policy: rule risk tags against derive_tags, topic
// settings across overlays, and cross-field checks.
func (b *builder) finish() {
	p := b.p
	p.rules = make([]rule, 0, len(b.rawRules))
	for i := range b.rawRules {
		rr := &b.rawRules[i]
		for _, tag := range rr.tags {
			req := tagRequirement{tag: tag}
			for j := range p.derive {
				if p.derive[j].tag == tag {
					req.derivedBy |= 1 << j
				}
			}
			rr.riskTags = append(rr.riskTags, req)
		}
		p.rules = append(p.rules, rr.rule)
	}
	p.defaultReason = "no rule matched; default_decision is " + p.defaultDecision.String()

	type globEntry struct {
		tg  topicGlob
		seq int
	}
	var globs []globEntry
	for topic, e := range b.topics {
		if !strings.Contains(topic, "*") {
			p.topics[topic] = e.settings
			continue
		}
		g, err := compileGlob(topic)
		if err != nil {
			continue // reported while reading
		}
		globs = append(globs, globEntry{topicGlob{g, e.settings}, e.seq})
	}
	slices.SortFunc(globs, func(x, y globEntry) int { return y.seq - x.seq })
	for _, g := range globs {
		p.topicGlobs = append(p.topicGlobs, g.tg)
	}
}
