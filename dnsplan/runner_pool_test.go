package dnsplan_test

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"testing"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goroutineCounter is a MemoryProvider that records the goroutines its
// Read and Apply run on.
type goroutineCounter struct {
	dnsplan.MemoryProvider
	mu   sync.Mutex
	seen map[string]bool
}

func (p *goroutineCounter) note() {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := bytes.Cut(buf, []byte(" ["))
	p.mu.Lock()
	p.seen[string(id)] = true
	p.mu.Unlock()
}

func (p *goroutineCounter) Read(ctx context.Context, ep string) (dnsplan.Records, error) {
	p.note()
	return p.MemoryProvider.Read(ctx, ep)
}

func (p *goroutineCounter) Apply(ctx context.Context, ep string, expect, r dnsplan.Records) error {
	p.note()
	return p.MemoryProvider.Apply(ctx, ep, expect, r)
}

// TestPassRunsOnAPoolOfParallelGoroutines: a pass over 500 endpoints at
// Parallel 4 reads and applies them on at most four goroutines besides
// the caller's, not on a goroutine per action. Before, it started one
// goroutine per action: about a thousand.
func TestPassRunsOnAPoolOfParallelGoroutines(t *testing.T) {
	const parallel = 4
	e := mustEnactor(t, dnsplan.EnactorConfig{Parallel: parallel})
	store, p := &dnsplan.MemoryStore{}, &goroutineCounter{seen: map[string]bool{}}
	require.NoError(t, store.Put(ctx, bigPlan(1, 500, 0)))
	st, err := e.Pass(ctx, store, p)
	require.NoError(t, err)
	require.Equal(t, 500, st.Applied)
	assert.LessOrEqual(t, len(p.seen), parallel+1, "goroutines that ran Read or Apply")
}
