package baseline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.uber.org/zap"
)

// Keeper keeps a Store across restarts in a collector storage extension (file_storage): it restores
// the saved snapshot when it starts, saves one every interval, and a last one when it stops.
type Keeper struct {
	store    *Store
	client   storage.Client
	key      string
	interval time.Duration
	logger   *zap.Logger

	stop chan struct{}
	done sync.WaitGroup
}

// StartKeeper opens a storage client of the extension storageID for the component (kind, id),
// restores store from it (a missing or unreadable snapshot starts cold, with a warning) and starts
// saving every interval. The storage setting's YAML key is named in errors.
func StartKeeper(ctx context.Context, host component.Host, storageID component.ID, kind component.Kind, id component.ID,
	store *Store, key string, interval time.Duration, logger *zap.Logger,
) (*Keeper, error) {
	ext, ok := host.GetExtensions()[storageID]
	if !ok {
		return nil, fmt.Errorf("baseline.storage: extension %q not found", storageID)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("baseline.storage: extension %q is not a storage extension", storageID)
	}
	client, err := se.GetClient(ctx, kind, id, "")
	if err != nil {
		return nil, fmt.Errorf("baseline.storage: %w", err)
	}
	k := &Keeper{store: store, client: client, key: key, interval: interval, logger: logger, stop: make(chan struct{})}
	data, err := client.Get(ctx, key)
	switch {
	case err != nil:
		logger.Warn("Could not read saved baselines; starting cold", zap.Error(err))
	case data != nil:
		if err := store.Restore(data); err != nil {
			logger.Warn("Saved baselines are unreadable; starting cold", zap.Error(err))
		} else {
			logger.Info("Restored baselines", zap.Int("keys", store.Len()))
		}
	}
	k.done.Add(1)
	go k.loop()
	return k, nil
}

func (k *Keeper) loop() {
	defer k.done.Done()
	t := time.NewTicker(k.interval)
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
			k.save(context.Background())
		}
	}
}

func (k *Keeper) save(ctx context.Context) {
	data, err := k.store.Snapshot()
	if err == nil {
		err = k.client.Set(ctx, k.key, data)
	}
	if err != nil {
		k.logger.Warn("Could not save baselines", zap.Error(err))
	}
}

// Stop ends the periodic saves, saves a last snapshot and closes the storage client.
func (k *Keeper) Stop(ctx context.Context) error {
	close(k.stop)
	k.done.Wait()
	k.save(ctx)
	return k.client.Close(ctx)
}
