package sharedcomponent

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
)

type counting struct {
	starts, stops int
	startErr      error
}

func (c *counting) Start(context.Context, component.Host) error { c.starts++; return c.startErr }
func (c *counting) Shutdown(context.Context) error              { c.stops++; return nil }

func TestSharedLifecycle(t *testing.T) {
	ctx, host := context.Background(), componenttest.NewNopHost()
	m := NewMap[string, *counting]()
	created := 0
	create := func() *counting { created++; return &counting{} }
	a, b := m.LoadOrStore("x", create), m.LoadOrStore("x", create)
	if a != b || created != 1 || m.Len() != 1 {
		t.Fatalf("two pipelines got %p and %p, %d created, %d held", a, b, created, m.Len())
	}
	if m.LoadOrStore("y", create) == a || m.Len() != 2 {
		t.Fatal("another key shares the instance")
	}
	for _, c := range []*Component[*counting]{a, b} {
		if err := c.Start(ctx, host); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.Unwrap().starts; got != 1 {
		t.Errorf("started %d times, want once", got)
	}
	if err := a.Shutdown(ctx); err != nil || a.Unwrap().stops != 0 || m.Len() != 2 {
		t.Fatalf("first shutdown stopped the shared instance: %v, %d stops, %d held", err, a.Unwrap().stops, m.Len())
	}
	if err := b.Shutdown(ctx); err != nil || a.Unwrap().stops != 1 || m.Len() != 1 {
		t.Fatalf("last shutdown: %v, %d stops, %d held", err, a.Unwrap().stops, m.Len())
	}
	if err := b.Shutdown(ctx); err != nil || a.Unwrap().stops != 1 {
		t.Fatalf("a shutdown after the last stopped again: %v, %d stops", err, a.Unwrap().stops)
	}
	if m.LoadOrStore("x", create) == a || created != 3 {
		t.Error("a stopped instance was handed out again")
	}
}

func TestSharedStartError(t *testing.T) {
	ctx, host := context.Background(), componenttest.NewNopHost()
	m := NewMap[int, *counting]()
	boom := errors.New("boom")
	a := m.LoadOrStore(1, func() *counting { return &counting{startErr: boom} })
	b := m.LoadOrStore(1, func() *counting { t.Fatal("created twice"); return nil })
	if err := a.Start(ctx, host); !errors.Is(err, boom) {
		t.Fatalf("first start: %v", err)
	}
	if err := b.Start(ctx, host); !errors.Is(err, boom) || a.Unwrap().starts != 1 {
		t.Fatalf("second start: %v after %d starts, want the first's error without a retry", err, a.Unwrap().starts)
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	m := NewMap[int, *counting]()
	c := m.LoadOrStore(1, func() *counting { return &counting{} })
	if err := c.Shutdown(context.Background()); err != nil || c.Unwrap().stops != 1 || m.Len() != 0 {
		t.Fatalf("shutdown without start: %v, %d stops, %d held", err, c.Unwrap().stops, m.Len())
	}
}
