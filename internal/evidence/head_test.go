package evidence

import (
	"sync"
	"testing"
)

// TestOnDurable: every policy hands the durable head to OnDurable — the last record's seq and
// hash once it is durable — and a reopened directory reports the same head.
func TestOnDurable(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncNever, SyncInterval} {
		t.Run(string(policy), func(t *testing.T) {
			dir := t.TempDir()
			var mu sync.Mutex
			var heads []Head
			w, rep := open(t, dir, Options{Sync: policy, OnDurable: func(h Head) {
				mu.Lock()
				heads = append(heads, h)
				mu.Unlock()
			}})
			if rep.LastHash != "" || w.Head().Seq != 0 {
				t.Fatalf("new chain: report %+v, head %+v", rep, w.Head())
			}
			out := appendN(t, w, 0, 5)
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
			last := out[len(out)-1].Record
			want := Head{ChainID: last.ChainID, Seq: last.Seq, Hash: last.Hash}
			mu.Lock()
			got := append([]Head(nil), heads...)
			mu.Unlock()
			if len(got) == 0 || got[len(got)-1] != want {
				t.Fatalf("heads %+v, want the last one %+v", got, want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Seq < got[i-1].Seq {
					t.Errorf("heads went back: %+v", got)
				}
			}
			if policy == SyncAlways && len(got) != 5 {
				t.Errorf("%d heads for 5 serial appends under always, want one per fsync", len(got))
			}
			if w.Head() != want {
				t.Errorf("Head() %+v, want %+v", w.Head(), want)
			}
			closeW(t, w)
			w2, rep2 := open(t, dir, Options{})
			defer closeW(t, w2)
			if rep2.LastSeq != want.Seq || rep2.LastHash != want.Hash || w2.Head() != want {
				t.Errorf("reopened: report %+v head %+v, want %+v", rep2, w2.Head(), want)
			}
		})
	}
}
