package remirror

import (
	"context"
	"errors"
	"testing"

	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/shed"
)

func newAuthority(t *testing.T) (*Authority, *fence.Memory) {
	t.Helper()
	m, err := fence.NewMemory(fence.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthority(AuthorityConfig{Store: m, Total: 2, Share: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	return a, m
}

func TestAuthorityElectsWithFencing(t *testing.T) {
	ctx := context.Background()
	a, m := newAuthority(t)
	key := VolumeKey("us-east-1a", 7)
	if err := m.WriteIfNewer(ctx, key, []byte("0"), 1); err != nil {
		t.Fatal(err)
	}
	in, err := a.Elect(ctx, "us-east-1a", Action{Kind: Elect, Volume: 7, Attempt: 3, From: 1, Expect: 1})
	if err != nil || in.Kind != Elected || in.Token != 2 || in.Node != 1 || in.Attempt != 3 {
		t.Fatalf("Elect: %+v %v", in, err)
	}
	// The answer was lost and node 1 asks again: it gets its generation.
	in, err = a.Elect(ctx, "us-east-1a", Action{Kind: Elect, Volume: 7, Attempt: 4, From: 1, Expect: 1})
	if err != nil || in.Kind != Elected || in.Token != 2 {
		t.Fatalf("retry: %+v %v", in, err)
	}
	// Another node with the old generation is fenced off.
	in, err = a.Elect(ctx, "us-east-1a", Action{Kind: Elect, Volume: 7, Attempt: 1, From: 0, Expect: 1})
	if !errors.Is(err, fence.ErrStale) || in.Kind != ElectionFailed || in.Token != 2 {
		t.Fatalf("stale: %+v %v", in, err)
	}
	if _, err := a.Elect(ctx, "z", Action{Kind: Copy}); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("non-elect action: %v", err)
	}
}

// One zone holding its share of the authority is shed at once; another zone
// still gets through.
func TestAuthorityIsolatesZones(t *testing.T) {
	ctx := context.Background()
	a, m := newAuthority(t)
	m.WriteIfNewer(ctx, VolumeKey("sick", 1), []byte("0"), 1)
	m.WriteIfNewer(ctx, VolumeKey("well", 1), []byte("0"), 1)
	if !a.partition.TryAcquire("sick") {
		t.Fatal("no slot")
	}
	defer a.partition.Release("sick")
	if _, err := a.Elect(ctx, "sick", Action{Kind: Elect, Volume: 1, From: 1, Expect: 1}); !errors.Is(err, shed.ErrShed) {
		t.Fatalf("sick zone over its share: %v, want shed.ErrShed", err)
	}
	if in, err := a.Elect(ctx, "well", Action{Kind: Elect, Volume: 1, From: 1, Expect: 1}); err != nil || in.Kind != Elected {
		t.Fatalf("healthy zone: %+v %v", in, err)
	}
}

func TestAuthorityBadConfig(t *testing.T) {
	_, err := NewAuthority(AuthorityConfig{Total: -1})
	if !errors.Is(err, ErrInvalidSettings) || !errors.Is(err, shed.ErrInvalidConfig) {
		t.Fatalf("err %v", err)
	}
}
