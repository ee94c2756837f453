package policy

import (
	"errors"
	"fmt"
	"strings"
)

// glob is a compiled topic pattern: dot-separated segments where `*` is exactly one segment
// and `**` any number of segments (zero included). Matching walks the topic string in place
// and never allocates.
type glob struct {
	pattern string
	literal bool // no wildcard: match is string equality
	segs    []globSeg
	// prefix and suffix are the literal segments before the first and after the last wildcard
	// (without their dots): a cheap necessary condition checked before the segment walk.
	prefix, suffix string
}

type segKind uint8

const (
	segLiteral segKind = iota
	segStar
	segDoubleStar
)

type globSeg struct {
	kind segKind
	lit  string
}

// compileGlob compiles a topic pattern. Wildcards stand for whole segments only.
func compileGlob(pattern string) (glob, error) {
	if pattern == "" {
		return glob{}, errors.New("empty topic pattern")
	}
	g := glob{pattern: pattern, literal: !strings.Contains(pattern, "*")}
	for seg := range strings.SplitSeq(pattern, ".") {
		switch {
		case seg == "":
			return glob{}, errors.New("empty segment (leading, trailing or doubled dot)")
		case seg == "*":
			g.segs = append(g.segs, globSeg{kind: segStar})
		case seg == "**":
			if n := len(g.segs); n > 0 && g.segs[n-1].kind == segDoubleStar {
				continue // "**.**" is "**"
			}
			g.segs = append(g.segs, globSeg{kind: segDoubleStar})
		case strings.Contains(seg, "*"):
			return glob{}, errors.New("segment " + `"` + seg + `"` + " mixes * with text; * and ** stand for whole dot-separated segments")
		default:
			g.segs = append(g.segs, globSeg{kind: segLiteral, lit: seg})
		}
	}
	if !g.literal {
		first := strings.IndexByte(pattern, '*')
		last := strings.LastIndexByte(pattern, '*')
		g.prefix = strings.TrimSuffix(pattern[:first], ".")
		g.suffix = strings.TrimPrefix(pattern[last+1:], ".")
	}
	return g, nil
}

// match reports whether topic matches the pattern. The empty topic has no segments.
func (g *glob) match(topic string) bool {
	if g.literal {
		return topic == g.pattern
	}
	if !strings.HasPrefix(topic, g.prefix) || !strings.HasSuffix(topic, g.suffix) {
		return false
	}
	return g.matchFrom(0, topic, topic != "")
}

// matchFrom matches g.segs[i:] against rest; more reports whether rest still holds a segment
// (rest == "" with more set is one empty segment).
func (g *glob) matchFrom(i int, rest string, more bool) bool {
	for ; i < len(g.segs); i++ {
		s := g.segs[i]
		if s.kind == segDoubleStar {
			if i == len(g.segs)-1 {
				return true
			}
			for {
				if g.matchFrom(i+1, rest, more) {
					return true
				}
				if !more {
					return false
				}
				_, rest, more = nextSegment(rest)
			}
		}
		if !more {
			return false
		}
		var head string
		head, rest, more = nextSegment(rest)
		if s.kind == segLiteral && head != s.lit {
			return false
		}
	}
	return !more
}

// nextSegment splits the first dot-separated segment off s.
func nextSegment(s string) (head, rest string, more bool) {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// globSet is an ordered list of patterns; it matches when any pattern does. An empty set
// matches every topic.
type globSet []glob

func (gs globSet) match(topic string) bool {
	if len(gs) == 0 {
		return true
	}
	for i := range gs {
		if gs[i].match(topic) {
			return true
		}
	}
	return false
}

func (gs globSet) patterns() []string {
	out := make([]string, len(gs))
	for i := range gs {
		out[i] = gs[i].pattern
	}
	return out
}

// TopicSet is a compiled list of topic globs (`*` one dot-separated segment, `**` any number), for
// settings outside the policy file that name topics.
type TopicSet struct{ set globSet }

// CompileTopics compiles patterns; an invalid pattern is an error naming it.
func CompileTopics(patterns []string) (TopicSet, error) {
	var ts TopicSet
	for _, p := range patterns {
		g, err := compileGlob(p)
		if err != nil {
			return TopicSet{}, fmt.Errorf("topic %q: %w", p, err)
		}
		ts.set = append(ts.set, g)
	}
	return ts, nil
}

// Match reports whether a pattern of the set matches topic; an empty set matches nothing.
func (ts TopicSet) Match(topic string) bool {
	return len(ts.set) > 0 && ts.set.match(topic)
}
