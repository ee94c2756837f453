package agentcostprocessor

import (
	"context"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/costing"
)

// sender returns the agentauth identity of the request ctx belongs to. Authentication data of other
// authenticators is not trusted for attribution.
func sender(ctx context.Context) (access.Identity, bool) {
	return access.FromAuth(client.FromContext(ctx).Auth)
}

// attribution returns, per resource, what the authenticated sender decides about its spans' agent
// and team:
//   - no agentauth authentication: nil (the spans' own attribution), and a carried
//     agentcost.auth.subject or agentcost.auth.teams is removed, never trusted;
//   - an agent token: its subject is the agent of every span, its teams (when it lists any) the
//     teams they may be booked to, and the sender's own agentcost.* outputs are removed so its
//     spans are priced here from their usage (reviewer tokens were refused before);
//   - a forwarder token: a carried agentcost.auth.subject is the agent (the edge authenticated it)
//     and a carried agentcost.auth.teams its teams when the token may forward for it, else the
//     forwarder's subject; without one the spans' own attribution stands, restricted to the
//     token's agents list when it has one.
func attribution(id access.Identity, authed bool) func(ptrace.ResourceSpans) *costing.Attribution {
	return func(rs ptrace.ResourceSpans) *costing.Attribution {
		ra := rs.Resource().Attributes()
		carried, has := ra.Get(access.KeySubject)
		if !authed || id.Role != access.RoleForwarder {
			ra.Remove(access.KeySubject)
			ra.Remove(access.KeyTeams)
			if !authed {
				return nil
			}
			return &costing.Attribution{Agent: id.Subject, Untrusted: true, Teams: id.Teams}
		}
		if has {
			if agent := carried.AsString(); agent != "" && id.MayForward(agent) {
				return &costing.Attribution{Agent: agent, Untrusted: true, Teams: carriedTeams(ra)}
			}
			ra.Remove(access.KeyTeams)
			return &costing.Attribution{Agent: id.Subject, Untrusted: true}
		}
		ra.Remove(access.KeyTeams) // teams without the agent they belong to mean nothing
		if len(id.Agents) > 0 {
			return &costing.Attribution{Allowed: id.MayForward, Fallback: id.Subject}
		}
		return nil
	}
}

// carriedTeams returns the teams an edge carried in agentcost.auth.teams (a string list); nil when
// there are none.
func carriedTeams(ra pcommon.Map) []string {
	v, ok := ra.Get(access.KeyTeams)
	if !ok || v.Type() != pcommon.ValueTypeSlice {
		return nil
	}
	sl := v.Slice()
	teams := make([]string, 0, sl.Len())
	for i := 0; i < sl.Len(); i++ {
		if t := sl.At(i); t.Type() == pcommon.ValueTypeStr && t.Str() != "" {
			teams = append(teams, t.Str())
		}
	}
	if len(teams) == 0 {
		return nil
	}
	return teams
}

// forward is auth.mode forward: write the authenticated sender's subject, and the teams its agent
// token may charge, on every resource for the replicas behind, price nothing. The replicas hold
// the spans to those teams as they hold a direct agent token's (after their own fields.team
// overrides, which an edge does not know). A forwarder's carried subject and teams pass on when its
// token may send for the subject; otherwise, as from an unauthenticated sender, they are replaced
// or removed.
func (p *costProcessor) forward(ctx context.Context, td ptrace.Traces) {
	id, authed := sender(ctx)
	rss := td.ResourceSpans()
	var refused int64
	for i := 0; i < rss.Len(); i++ {
		ra := rss.At(i).Resource().Attributes()
		switch {
		case !authed:
			ra.Remove(access.KeySubject)
			ra.Remove(access.KeyTeams)
		case id.Role != access.RoleForwarder:
			ra.PutStr(access.KeySubject, id.Subject)
			if len(id.Teams) == 0 {
				ra.Remove(access.KeyTeams)
				break
			}
			sl := ra.PutEmptySlice(access.KeyTeams)
			sl.EnsureCapacity(len(id.Teams))
			for _, t := range id.Teams {
				sl.AppendEmpty().SetStr(t)
			}
		default:
			v, ok := ra.Get(access.KeySubject)
			switch {
			case !ok:
				ra.Remove(access.KeyTeams)
			case !id.MayForward(v.AsString()):
				ra.PutStr(access.KeySubject, id.Subject)
				ra.Remove(access.KeyTeams)
				refused++
			}
		}
	}
	if refused > 0 {
		p.telemetry.ProcessorAgentcostSpansAgentOverridden.Add(ctx, refused, metric.WithAttributes(
			attribute.String("sender", id.Subject), attribute.String("reason", "forwarder_agents")))
	}
}

// overridden counts and (at most every logInterval) logs the spans st booked to another
// agent than they claimed. The log names the sender, never its token.
func (p *costProcessor) overridden(ctx context.Context, id access.Identity, st *costing.Stats) {
	if st.AgentOverridden == 0 {
		return
	}
	reason := "agent_token"
	if id.Role == access.RoleForwarder {
		reason = "forwarder_agents"
	}
	p.telemetry.ProcessorAgentcostSpansAgentOverridden.Add(ctx, st.AgentOverridden, metric.WithAttributes(
		attribute.String("sender", id.Subject), attribute.String("reason", reason)))
	if !p.overrideLog.allow() {
		return
	}
	p.logger.Warn("Spans claimed another agent than their authenticated sender; booked to the sender",
		zap.String("sender", id.Subject), zap.String("role", string(id.Role)), zap.String("claimed_agent", st.Claimed),
		zap.String("booked_to", st.BookedTo), zap.Int64("spans", st.AgentOverridden), zap.String("reason", reason))
}

// teamOverridden counts and (at most every logInterval) logs the spans st booked to their
// agent token's default team instead of a team the token does not list. The log names the sender
// (the agent, or the forwarder that carried it), never its token.
func (p *costProcessor) teamOverridden(ctx context.Context, id access.Identity, st *costing.Stats) {
	if st.TeamOverridden == 0 {
		return
	}
	p.telemetry.ProcessorAgentcostSpansTeamOverridden.Add(ctx, st.TeamOverridden, metric.WithAttributes(attribute.String("sender", id.Subject)))
	if !p.teamLog.allow() {
		return
	}
	p.logger.Warn("Spans claimed a team their agent token does not list; booked to the token's default team",
		zap.String("sender", id.Subject), zap.String("role", string(id.Role)), zap.String("claimed_team", st.ClaimedTeam),
		zap.String("booked_to", st.TeamBookedTo), zap.Int64("spans", st.TeamOverridden))
}

// errUnauthenticated refuses a batch without agentauth authentication under auth.required: a
// permanent error with the gRPC status Unauthenticated, which the OTLP receiver answers as 401
// (HTTP) or Unauthenticated (gRPC), neither retried.
var errUnauthenticated = consumererror.NewPermanent(status.Error(codes.Unauthenticated, "auth.required: the spans carry no agentauth authentication "+
	"(is the receiver's auth.authenticator set, and does nothing that drops the request context, such as a batch processor, run before agentcost?)"))

// unauthenticated counts a refused batch and returns the error that refuses it.
func (p *costProcessor) unauthenticated(ctx context.Context, td ptrace.Traces) error {
	p.telemetry.ProcessorAgentcostSpansUnauthenticated.Add(ctx, int64(td.SpanCount()))
	return errUnauthenticated
}

// sendsSpans reports whether a token of id's role may send spans: agents and forwarders may,
// reviewers may not.
func sendsSpans(id access.Identity) bool {
	return id.Role != access.RoleReviewer
}

// errReviewerSpans refuses a batch sent with a reviewer token: reviewers approve, they send no
// spans, and booking them to the reviewer would let a stolen reviewer token spend. A permanent
// error with the gRPC status PermissionDenied, which the OTLP receiver answers as 403 (HTTP) or
// PermissionDenied (gRPC), neither retried.
var errReviewerSpans = consumererror.NewPermanent(status.Error(codes.PermissionDenied,
	"a reviewer token may not send spans: use the agent's token (or a forwarder's)"))

// forbidden counts a batch refused for its token's role and returns the error that refuses it. The
// log line (at most every logInterval) names the sender, never its token.
func (p *costProcessor) forbidden(ctx context.Context, id access.Identity, td ptrace.Traces) error {
	n := int64(td.SpanCount())
	p.telemetry.ProcessorAgentcostSpansForbidden.Add(ctx, n, metric.WithAttributes(attribute.String("sender", id.Subject), attribute.String("role", string(id.Role))))
	if p.forbiddenLog.allow() {
		p.logger.Warn("Spans sent with a reviewer token refused", zap.String("sender", id.Subject), zap.String("role", string(id.Role)), zap.Int64("spans", n))
	}
	return errReviewerSpans
}
