package agentcostprocessor

import (
	"sync/atomic"
	"time"
)

// logInterval is the least time between two warnings of one kind: a sender stuck on a bad span or
// a misused token would otherwise write a line per batch. The metrics count every span.
const logInterval = 10 * time.Second

// logLimiter rate-limits one kind of warning. The zero value allows the first one.
type logLimiter struct {
	last atomic.Int64 // unix nanoseconds of the last warning written
}

// allow reports whether a warning may be written now, at most one every logInterval, and takes
// the slot when it may.
func (l *logLimiter) allow() bool {
	now := time.Now().UnixNano()
	prev := l.last.Load()
	return now-prev >= int64(logInterval) && l.last.CompareAndSwap(prev, now)
}
