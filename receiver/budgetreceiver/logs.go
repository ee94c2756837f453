package budgetreceiver

import (
	"context"
	"encoding/json"
	"sync"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/receiver/budgetreceiver/internal/metadata"
)

const (
	// emitQueue bounds the evidence records waiting for the logs pipeline; past it they are
	// dropped from the pipeline (never from the evidence files) and counted.
	emitQueue = 4096
	// emitBatch bounds the records of one plog.Logs.
	emitBatch = 256
)

// emitter sends every evidence record to the logs pipeline, off the request path: body the JSON
// line, attributes kind, evidence_id and agent.
type emitter struct {
	next consumer.Logs
	log  *zap.Logger
	ch   chan evidence.Record
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

func newEmitter(next consumer.Logs, log *zap.Logger) *emitter {
	return &emitter{next: next, log: log, ch: make(chan evidence.Record, emitQueue), quit: make(chan struct{}), done: make(chan struct{})}
}

// add queues a record; it reports false when the queue is full. Without a logs pipeline it does
// nothing.
func (e *emitter) add(rec evidence.Record) bool {
	if e.next == nil {
		return true
	}
	select {
	case e.ch <- rec:
		return true
	default:
		return false
	}
}

func (e *emitter) start() {
	go func() {
		defer close(e.done)
		for {
			select {
			case rec := <-e.ch:
				e.send(rec)
			case <-e.quit:
				for {
					select {
					case rec := <-e.ch:
						e.send(rec)
					default:
						return
					}
				}
			}
		}
	}()
}

// stop sends what is queued and stops.
func (e *emitter) stop() {
	e.once.Do(func() { close(e.quit) })
	<-e.done
}

// send sends rec and whatever else is queued, up to a batch.
func (e *emitter) send(first evidence.Record) {
	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	sl.Scope().SetName(metadata.ScopeName)
	appendRecord(sl.LogRecords(), first)
more:
	for n := 1; n < emitBatch; n++ {
		select {
		case rec := <-e.ch:
			appendRecord(sl.LogRecords(), rec)
		default:
			break more
		}
	}
	if err := e.next.ConsumeLogs(context.Background(), ld); err != nil {
		e.log.Debug("The logs pipeline refused evidence records", zap.Int("records", sl.LogRecords().Len()), zap.Error(err))
	}
}

func appendRecord(lrs plog.LogRecordSlice, rec evidence.Record) {
	line, err := json.Marshal(rec)
	if err != nil {
		return
	}
	lr := lrs.AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(rec.Time))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(rec.Time))
	lr.SetSeverityNumber(plog.SeverityNumberInfo)
	lr.SetSeverityText("INFO")
	lr.Body().SetStr(string(line))
	lr.Attributes().PutStr("kind", string(rec.Kind))
	lr.Attributes().PutStr("evidence_id", rec.EvidenceID)
	if rec.AgentID != "" {
		lr.Attributes().PutStr("agent", rec.AgentID)
	}
}
