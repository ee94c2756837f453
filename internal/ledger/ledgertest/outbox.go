package ledgertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
)

// RunOutbox runs the outbox behaviour suite: durable, deduplicated, bounded, claimed by one
// claimer at a time, retried and acknowledged, and kept across a restart.
func RunOutbox(t *testing.T, b Backend) {
	t.Run("OutboxClaimAckRetry", func(t *testing.T) { testOutboxClaimAckRetry(t, b) })
	t.Run("OutboxBounded", func(t *testing.T) { testOutboxBounded(t, b) })
	t.Run("OutboxSurvivesRestart", func(t *testing.T) { testOutboxRestart(t, b) })
	if b.Shared {
		t.Run("OutboxOneClaimerAcrossReplicas", func(t *testing.T) { testOutboxReplicas(t, b) })
	}
}

func outbox(t testing.TB, l ledger.Ledger) ledger.Outbox {
	t.Helper()
	ob, ok := l.(ledger.Outbox)
	if !ok {
		t.Fatalf("%T does not implement ledger.Outbox", l)
	}
	return ob
}

func outboxEvents(n int, t0 time.Time) []ledger.OutboxEvent {
	evs := make([]ledger.OutboxEvent, n)
	for i := range evs {
		evs[i] = ledger.OutboxEvent{ID: fmt.Sprintf("ev-%03d", i), Type: "approval.requested",
			Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), CreatedAt: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	return evs
}

func testOutboxClaimAckRetry(t *testing.T, b Backend) {
	ctx := context.Background()
	l, _ := b.Open(t, BaseConfig())
	ob := outbox(t, l)
	t0 := time.Now().Add(-time.Minute)
	evs := outboxEvents(3, t0)
	if dropped, err := ob.EnqueueOutbox(ctx, evs, 0); err != nil || dropped != 0 {
		t.Fatalf("enqueue: dropped %d, %v", dropped, err)
	}
	// The same ids again are skipped: the outbox deduplicates by id.
	if dropped, err := ob.EnqueueOutbox(ctx, evs[:2], 0); err != nil || dropped != 0 {
		t.Fatalf("enqueue again: dropped %d, %v", dropped, err)
	}
	if n, err := ob.OutboxLen(ctx); err != nil || n != 3 {
		t.Fatalf("OutboxLen = %d, %v; want 3", n, err)
	}
	if _, err := ob.EnqueueOutbox(ctx, []ledger.OutboxEvent{{Type: "x"}}, 0); err == nil {
		t.Fatal("an event without id was accepted")
	}
	now := time.Now()
	got, err := ob.ClaimOutbox(ctx, 2, time.Minute, now)
	if err != nil || len(got) != 2 {
		t.Fatalf("claim = %d events, %v; want 2", len(got), err)
	}
	if got[0].ID != "ev-000" || got[1].ID != "ev-001" || string(got[0].Body) != `{"n":0}` || got[0].Attempts != 1 || got[0].Type != "approval.requested" {
		t.Fatalf("claimed %+v", got)
	}
	// Claimed events are hidden until their lease ends.
	got, err = ob.ClaimOutbox(ctx, 10, time.Minute, now)
	if err != nil || len(got) != 1 || got[0].ID != "ev-002" {
		t.Fatalf("second claim = %+v, %v; want ev-002 alone", got, err)
	}
	if err := ob.AckOutbox(ctx, "ev-000"); err != nil {
		t.Fatal(err)
	}
	if err := ob.AckOutbox(ctx, "unknown"); err != nil {
		t.Fatalf("ack of an unknown id: %v", err)
	}
	if err := ob.RetryOutbox(ctx, "ev-001", now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, err := ob.ClaimOutbox(ctx, 10, time.Minute, now.Add(500*time.Millisecond)); err != nil || len(got) != 0 {
		t.Fatalf("claim before the retry is due = %+v, %v", got, err)
	}
	got, err = ob.ClaimOutbox(ctx, 10, time.Minute, now.Add(2*time.Second))
	if err != nil || len(got) != 1 || got[0].ID != "ev-001" || got[0].Attempts != 2 {
		t.Fatalf("claim after the retry is due = %+v, %v; want ev-001, attempt 2", got, err)
	}
	// A claimer that died: its lease ends and the event is claimed again.
	got, err = ob.ClaimOutbox(ctx, 10, time.Minute, now.Add(2*time.Minute))
	if err != nil || len(got) != 2 {
		t.Fatalf("claim after the leases ended = %+v, %v; want ev-001 and ev-002", got, err)
	}
	for _, ev := range got {
		if err := ob.AckOutbox(ctx, ev.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := ob.OutboxLen(ctx); err != nil || n != 0 {
		t.Fatalf("OutboxLen after acks = %d, %v", n, err)
	}
}

func testOutboxBounded(t *testing.T, b Backend) {
	ctx := context.Background()
	l, _ := b.Open(t, BaseConfig())
	ob := outbox(t, l)
	evs := outboxEvents(5, time.Now().Add(-time.Minute))
	dropped, err := ob.EnqueueOutbox(ctx, evs, 3)
	if err != nil || dropped != 2 {
		t.Fatalf("enqueue of 5 at cap 3: dropped %d, %v; want 2", dropped, err)
	}
	if n, _ := ob.OutboxLen(ctx); n != 3 {
		t.Fatalf("OutboxLen = %d, want 3", n)
	}
	// Acknowledging makes room again.
	if err := ob.AckOutbox(ctx, "ev-000"); err != nil {
		t.Fatal(err)
	}
	if dropped, err := ob.EnqueueOutbox(ctx, evs[3:], 3); err != nil || dropped != 1 {
		t.Fatalf("enqueue of 2 with room for 1: dropped %d, %v; want 1", dropped, err)
	}
}

func testOutboxRestart(t *testing.T, b Backend) {
	ctx := context.Background()
	l, again := b.Open(t, BaseConfig())
	ob := outbox(t, l)
	now := time.Now()
	if _, err := ob.EnqueueOutbox(ctx, outboxEvents(2, now.Add(-time.Minute)), 0); err != nil {
		t.Fatal(err)
	}
	// One event is claimed when the process dies: after the restart it is due once its lease ends.
	if got, err := ob.ClaimOutbox(ctx, 1, time.Minute, now); err != nil || len(got) != 1 {
		t.Fatalf("claim = %+v, %v", got, err)
	}
	ob = outbox(t, again())
	got, err := ob.ClaimOutbox(ctx, 10, time.Minute, now)
	if err != nil || len(got) != 1 || got[0].ID != "ev-001" {
		t.Fatalf("claim after restart = %+v, %v; want ev-001", got, err)
	}
	got, err = ob.ClaimOutbox(ctx, 10, time.Minute, now.Add(2*time.Minute))
	if err != nil || len(got) != 2 {
		t.Fatalf("claim after restart and lease end = %+v, %v; want both", got, err)
	}
}

func testOutboxReplicas(t *testing.T, b Backend) {
	ctx := context.Background()
	l, again := b.Open(t, BaseConfig())
	obs := []ledger.Outbox{outbox(t, l), outbox(t, again())}
	const n = 200
	if _, err := obs[0].EnqueueOutbox(ctx, outboxEvents(n, time.Now().Add(-time.Minute)), 0); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, ob := range obs {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := ob.ClaimOutbox(ctx, 7, time.Hour, time.Time{})
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, ev := range got {
						seen[ev.ID]++
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d events claimed, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("event %s claimed %d times across replicas, want once", id, c)
		}
	}
}
