package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// JournalFileName is the embedded backend's reservation journal inside Config.Directory.
const JournalFileName = "reservations.journal"

// journalCompactBytes is the journal size past which the flusher applies everything pending and
// empties the file (new reservations wait for that one commit).
const journalCompactBytes = 64 << 20

// maxJournalRecord bounds one record when reading the journal back, so that a damaged length
// cannot make recovery allocate without limit.
const maxJournalRecord = 1 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journal is the append-only file that makes a reservation durable before it reaches the bbolt
// file. A record is
//
//	length (4, little endian, of the payload) | CRC-32C of the payload (4) | payload
//
// and the payload is the record's sequence number (8, little endian) followed by the
// reservation's binary encoding. Appends are serialised by the caller (the backend's reserve
// lock); durability is shared: the first waiter whose record is not yet synced runs fdatasync for
// everything written so far while later ones wait for it (group commit with one sync per group).
type journal struct {
	f    *os.File
	path string
	// size changes only on the appending side, which the caller serialises; it is atomic so that
	// telemetry can read it.
	size atomic.Int64
	err  error // sticky: a failed write that could not be undone

	written atomic.Uint64 // sequence number of the last record written
	stats   *statCounters // when set, counts the syncs

	smu     sync.Mutex
	cond    *sync.Cond
	syncing bool
	synced  uint64 // every record up to here is durable (in the journal or in the bbolt file)
	syncErr error
}

// journalRecord is one record read back from the journal: the reservation and its encoding.
type journalRecord struct {
	seq uint64
	res *reservation
	rec []byte
}

// openJournal opens (creating if needed) the journal at path and reads back its records, in
// order, up to the first incomplete or damaged one (a write cut short by a crash), whose offset is
// returned as torn (-1 when the file ends cleanly).
func openJournal(path string) (*journal, []journalRecord, int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("opening reservation journal %q: %w", path, err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		_ = f.Close()
		return nil, nil, 0, fmt.Errorf("reading reservation journal %q: %w", path, err)
	}
	recs, torn := parseJournal(data)
	return newJournal(f, path, int64(len(data))), recs, torn, nil
}

// newJournal returns the journal appending to f, which holds size bytes.
func newJournal(f *os.File, path string, size int64) *journal {
	j := &journal{f: f, path: path}
	j.size.Store(size)
	j.cond = sync.NewCond(&j.smu)
	return j
}

// parseJournal decodes records until the data ends, a record is incomplete or damaged, or a
// sequence number does not increase (the stale tail of an emptied file); torn is the offset where
// reading stopped early, -1 when every byte was read.
func parseJournal(data []byte) (recs []journalRecord, torn int64) {
	off := 0
	for off < len(data) {
		if len(data)-off < 8 {
			return recs, int64(off)
		}
		n := int(binary.LittleEndian.Uint32(data[off:]))
		sum := binary.LittleEndian.Uint32(data[off+4:])
		if n < 8 || n > maxJournalRecord || len(data)-off-8 < n {
			return recs, int64(off)
		}
		payload := data[off+8 : off+8+n]
		if crc32.Checksum(payload, crcTable) != sum {
			return recs, int64(off)
		}
		seq := binary.LittleEndian.Uint64(payload)
		res, err := decodeReservationRecord(payload[8:])
		if err != nil || (len(recs) > 0 && seq <= recs[len(recs)-1].seq) {
			return recs, int64(off)
		}
		recs = append(recs, journalRecord{seq: seq, res: res, rec: payload[8:]})
		off += 8 + n
	}
	return recs, -1
}

// append writes one record. The caller serialises appends. A failed write is undone (the file is
// truncated back) so that later records stay readable; when that fails too the journal refuses
// every later append.
func (j *journal) append(seq uint64, res []byte) error {
	if j.err != nil {
		return j.err
	}
	b := make([]byte, 16, 16+len(res))
	binary.LittleEndian.PutUint32(b, uint32(8+len(res)))
	binary.LittleEndian.PutUint64(b[8:], seq)
	b = append(b, res...)
	binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:], crcTable))
	if _, err := j.f.Write(b); err != nil {
		werr := fmt.Errorf("writing reservation journal %q: %w", j.path, err)
		if terr := j.f.Truncate(j.size.Load()); terr != nil {
			j.err = fmt.Errorf("%w; undoing the partial write failed: %v", werr, terr)
		}
		return werr
	}
	j.size.Add(int64(len(b)))
	j.written.Store(seq)
	return nil
}

// durable returns once record seq is durable, or at once when lazy (the syncer makes it durable
// within its interval); either way it fails once a sync has failed.
func (j *journal) durable(seq uint64, lazy bool) error {
	if !lazy {
		return j.waitDurable(seq)
	}
	j.smu.Lock()
	defer j.smu.Unlock()
	return j.syncErr
}

// syncWritten makes every record written so far durable: the syncer of durability "process".
func (j *journal) syncWritten() error {
	return j.waitDurable(j.written.Load())
}

// waitDurable returns once record seq is durable.
func (j *journal) waitDurable(seq uint64) error {
	j.smu.Lock()
	defer j.smu.Unlock()
	for j.synced < seq {
		if j.syncErr != nil {
			return j.syncErr
		}
		if j.syncing {
			j.cond.Wait()
			continue
		}
		j.syncing = true
		target := j.written.Load()
		j.smu.Unlock()
		began := time.Now()
		err := fdatasync(j.f)
		if j.stats != nil {
			j.stats.syncs.Add(1)
			j.stats.syncNanos.Add(int64(time.Since(began)))
		}
		j.smu.Lock()
		j.syncing = false
		switch {
		case err == nil:
			j.synced = max(j.synced, target)
		case j.synced < target:
			// A record that reached the file may not be on disk: nothing written after it can be
			// promised either, so every later wait fails as well.
			j.syncErr = fmt.Errorf("syncing reservation journal %q: %w", j.path, err)
		}
		j.cond.Broadcast()
	}
	return nil
}

// markDurable records that every record up to seq is durable elsewhere (applied to the bbolt
// file by a committed transaction).
func (j *journal) markDurable(seq uint64) {
	j.smu.Lock()
	if seq > j.synced {
		j.synced = seq
		j.cond.Broadcast()
	}
	j.smu.Unlock()
}

// reset empties the journal once every record in it is applied to the bbolt file. The caller
// holds the append side.
func (j *journal) reset() error {
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("emptying reservation journal %q: %w", j.path, err)
	}
	if err := fdatasync(j.f); err != nil {
		return fmt.Errorf("syncing reservation journal %q: %w", j.path, err)
	}
	j.size.Store(0)
	return nil
}

func (j *journal) close() error {
	if j == nil || j.f == nil {
		return nil
	}
	err := j.f.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}
