package ledger

import (
	"testing"
	"time"
)

// A lease granted a moment ago is still in the reservation journal, not in the bbolt file: the
// lease check finds it there, open, without a write.
func TestLeaseInfoOfAJournaledReservation(t *testing.T) {
	e := openTestEmbedded(t, t.TempDir())
	e.stopFlushing()
	at := time.Now()
	if _, err := e.CreateFreeze(t.Context(), Freeze{ID: "fz", Scope: FreezeAgent, ScopeID: "A", Reason: "r", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	reserveN(t, e, 1, at)
	if n := e.count(t, bucketRes); n != 0 {
		t.Fatalf("%d reservations reached the file; the test needs it in the journal only", n)
	}
	li, err := e.LeaseInfo(t.Context(), "d0", at)
	if err != nil || li.Agent != "A" || li.Settled || len(li.Freezes) != 1 {
		t.Fatalf("LeaseInfo = %+v, %v; want agent A's open lease, frozen", li, err)
	}
	if n := e.count(t, bucketRes); n != 0 {
		t.Fatalf("the lease check wrote %d reservations to the file; it must only read", n)
	}
}
