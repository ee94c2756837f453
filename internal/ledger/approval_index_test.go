package ledger

import (
	"fmt"
	"testing"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
	bolt "go.etcd.io/bbolt"
)

// TestEmbeddedApprovalIndexBackfill: a file whose approvals have no list-order index (written
// before it existed) gets one when opened, so that every approval is listed.
func TestEmbeddedApprovalIndexBackfill(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	cfg := NewDefaultConfig()
	cfg.Directory = t.TempDir()
	e, err := OpenEmbedded(cfg, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		created := t0.Add(time.Duration(i%3) * time.Second)
		if _, err := e.CreateApproval(ctx, Approval{ID: fmt.Sprintf("ap%02d", i), Agent: "A", CreatedAt: created, ExpiresAt: created.Add(time.Hour)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	// Drop the index, as in a file of an older version.
	if err := e.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketApprovalsByCreated); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketApprovalsByCreated)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.ListApprovals(ctx, "", ApprovalCursor{}, 0, t0); len(got) != 0 {
		t.Fatalf("the test did not drop the index: %d listed", len(got))
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = OpenEmbedded(cfg, Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var all []Approval
	for after := (ApprovalCursor{}); ; {
		page, err := e.ListApprovals(ctx, decisionapi.ApprovalPending, after, 7, t0)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 7 {
			break
		}
		after = page[len(page)-1].Cursor()
	}
	if len(all) != 30 || all[0].ID != "ap00" || all[10].ID != "ap01" || all[29].ID != "ap29" {
		ids := make([]string, len(all))
		for i, a := range all {
			ids[i] = a.ID
		}
		t.Errorf("after reopening: %v", ids)
	}
}
