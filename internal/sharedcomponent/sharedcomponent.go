// Package sharedcomponent keeps one instance of a component per key (its configuration) for the
// pipelines that share it, so that one receiver or exporter ID serves one HTTP server whatever
// number of pipelines use it. It is the project's one equivalent of the collector's own
// sharedcomponent helper, which is internal to the collector module; unlike that helper it counts
// the pipelines and shuts the instance down on the last one's Shutdown.
package sharedcomponent

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
)

// Map holds the instances by key. The zero Map is not usable; use NewMap.
type Map[K comparable, V component.Component] struct {
	mu         sync.Mutex
	components map[K]*Component[V]
}

// NewMap returns an empty map.
func NewMap[K comparable, V component.Component]() *Map[K, V] {
	return &Map[K, V]{components: map[K]*Component[V]{}}
}

// LoadOrStore returns the instance of key, creating it with create for the first pipeline.
func (m *Map[K, V]) LoadOrStore(key K, create func() V) *Component[V] {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.components[key]; ok {
		return c
	}
	c := &Component[V]{component: create()}
	c.remove = func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.components[key] == c {
			delete(m.components, key)
		}
	}
	m.components[key] = c
	return c
}

// Len returns the number of instances held.
func (m *Map[K, V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.components)
}

// Component is one shared instance: started by the first pipeline's Start (the others get the
// same error) and shut down, and removed from its Map, by the last pipeline's Shutdown.
type Component[V component.Component] struct {
	component V
	remove    func()

	mu       sync.Mutex
	starts   int
	startErr error
	stopped  bool
}

// Unwrap returns the instance.
func (c *Component[V]) Unwrap() V { return c.component }

// Start starts the instance on the first call and returns that call's error on every call.
func (c *Component[V]) Start(ctx context.Context, host component.Host) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.starts++
	if c.starts == 1 {
		c.startErr = c.component.Start(ctx, host)
	}
	return c.startErr
}

// Shutdown counts a pipeline out; the last one (or a Shutdown without any Start) removes the
// instance from its Map and shuts it down, once.
func (c *Component[V]) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.starts > 1 {
		c.starts--
		return nil
	}
	c.starts = 0
	c.remove()
	if c.stopped {
		return nil
	}
	c.stopped = true
	return c.component.Shutdown(ctx)
}
