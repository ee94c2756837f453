package ledger

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// EvidenceAnchor is the head of one cost-evidence chain (internal/evidence) as last known durable:
// the ledger keeps it so that a chain cut at its end, which the chain alone cannot show, is told
// from one that simply stopped.
type EvidenceAnchor struct {
	// ChainID is the chain's id.
	ChainID string `json:"chain_id"`
	// Seq is the seq of the chain's last durable record.
	Seq uint64 `json:"seq"`
	// Hash is that record's hash (64 hex digits).
	Hash string `json:"hash"`
}

// EvidenceAnchorer is implemented by both backends: it stores the head of each evidence chain.
type EvidenceAnchorer interface {
	// SetEvidenceAnchor stores a as its chain's anchor. The anchor only moves forward: a seq at or
	// below the stored one of the same chain changes nothing, unless force (an operator accepting
	// a truncated chain) is set.
	SetEvidenceAnchor(ctx context.Context, a EvidenceAnchor, force bool) error
	// EvidenceAnchor returns the anchor of chainID; ok is false when none is stored.
	EvidenceAnchor(ctx context.Context, chainID string) (a EvidenceAnchor, ok bool, err error)
	// EvidenceAnchors returns every stored anchor, ordered by chain id.
	EvidenceAnchors(ctx context.Context) ([]EvidenceAnchor, error)
}

var (
	_ EvidenceAnchorer = (*Embedded)(nil)
	_ EvidenceAnchorer = (*Redis)(nil)
)

var anchorHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (a EvidenceAnchor) validate() error {
	switch {
	case a.ChainID == "" || strings.ContainsAny(a.ChainID, " \n"):
		return fmt.Errorf("evidence anchor: invalid chain id %q", a.ChainID)
	case a.Seq == 0:
		return errors.New("evidence anchor: seq must be positive")
	case !anchorHash.MatchString(a.Hash):
		return fmt.Errorf("evidence anchor: hash %q is not 64 hex digits", a.Hash)
	}
	return nil
}

// encode is the stored value: "seq hash".
func (a EvidenceAnchor) encode() string { return strconv.FormatUint(a.Seq, 10) + " " + a.Hash }

func decodeAnchor(chainID, v string) (EvidenceAnchor, error) {
	seq, hash, ok := strings.Cut(v, " ")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil {
		return EvidenceAnchor{}, fmt.Errorf("evidence anchor of chain %q: malformed value %q", chainID, v)
	}
	return EvidenceAnchor{ChainID: chainID, Seq: n, Hash: hash}, nil
}

// metaAnchorPrefix prefixes the chain id in the meta bucket's anchor keys.
const metaAnchorPrefix = "evidence_anchor:"

// SetEvidenceAnchor implements EvidenceAnchorer: one write transaction.
func (e *Embedded) SetEvidenceAnchor(ctx context.Context, a EvidenceAnchor, force bool) error {
	if err := a.validate(); err != nil {
		return err
	}
	key := []byte(metaAnchorPrefix + a.ChainID)
	err := e.update(ctx, func(t *txn) error {
		if v := t.meta().Get(key); v != nil && !force {
			if cur, err := decodeAnchor(a.ChainID, string(v)); err == nil && cur.Seq >= a.Seq {
				return nil
			}
		}
		return t.meta().Put(key, []byte(a.encode()))
	})
	if err != nil {
		return fmt.Errorf("storing the evidence anchor of chain %q: %w", a.ChainID, err)
	}
	return nil
}

// EvidenceAnchor implements EvidenceAnchorer.
func (e *Embedded) EvidenceAnchor(ctx context.Context, chainID string) (EvidenceAnchor, bool, error) {
	var a EvidenceAnchor
	var found bool
	err := e.view(ctx, func(t *txn) error {
		v := t.meta().Get([]byte(metaAnchorPrefix + chainID))
		if v == nil {
			return nil
		}
		var err error
		a, err = decodeAnchor(chainID, string(v))
		found = err == nil
		return err
	})
	return a, found, err
}

// EvidenceAnchors implements EvidenceAnchorer.
func (e *Embedded) EvidenceAnchors(ctx context.Context) ([]EvidenceAnchor, error) {
	var out []EvidenceAnchor
	err := e.view(ctx, func(t *txn) error {
		c := t.meta().Cursor()
		prefix := []byte(metaAnchorPrefix)
		for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), metaAnchorPrefix); k, v = c.Next() {
			a, err := decodeAnchor(string(k[len(prefix):]), string(v))
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// anchorScript stores ARGV[2] ("seq hash") under field ARGV[1] of the anchors hash unless the
// stored seq is at least ARGV[3] and ARGV[4] (force) is not "1".
var anchorScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and ARGV[4] ~= '1' then
  local seq = tonumber(string.match(cur, '^(%d+)'))
  if seq and seq >= tonumber(ARGV[3]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`)

func (r *Redis) anchorKey() string { return r.prefix + "eva" }

// SetEvidenceAnchor implements EvidenceAnchorer: one script, atomic across replicas.
func (r *Redis) SetEvidenceAnchor(ctx context.Context, a EvidenceAnchor, force bool) error {
	if err := a.validate(); err != nil {
		return err
	}
	f := "0"
	if force {
		f = "1"
	}
	if err := anchorScript.Run(ctx, r.client, []string{r.anchorKey()}, a.ChainID, a.encode(), strconv.FormatUint(a.Seq, 10), f).Err(); err != nil {
		return fmt.Errorf("storing the evidence anchor of chain %q: %w", a.ChainID, r.wrap(err))
	}
	return nil
}

// EvidenceAnchor implements EvidenceAnchorer.
func (r *Redis) EvidenceAnchor(ctx context.Context, chainID string) (EvidenceAnchor, bool, error) {
	v, err := r.client.HGet(ctx, r.anchorKey(), chainID).Result()
	if errors.Is(err, redis.Nil) {
		return EvidenceAnchor{}, false, nil
	}
	if err != nil {
		return EvidenceAnchor{}, false, fmt.Errorf("reading the evidence anchor of chain %q: %w", chainID, r.wrap(err))
	}
	a, err := decodeAnchor(chainID, v)
	return a, err == nil, err
}

// EvidenceAnchors implements EvidenceAnchorer.
func (r *Redis) EvidenceAnchors(ctx context.Context) ([]EvidenceAnchor, error) {
	m, err := r.client.HGetAll(ctx, r.anchorKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the evidence anchors: %w", r.wrap(err))
	}
	out := make([]EvidenceAnchor, 0, len(m))
	for id, v := range m {
		a, err := decodeAnchor(id, v)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChainID < out[j].ChainID })
	return out, nil
}
