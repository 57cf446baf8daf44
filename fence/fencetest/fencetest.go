// Package fencetest checks that an implementation of fence.Store keeps the
// promises of the interface, in the manner of testing/fstest. An adapter's
// tests call TestStore with a constructor of empty stores:
//
//	func TestConformance(t *testing.T) {
//		fencetest.TestStore(t, func(t *testing.T) fence.Store {
//			return &fence.Memory{} // your Store: a new, empty one on each call
//		})
//	}
//
// Every behaviour the fence package documents is exercised against it —
// conditional writes and their refusals with the current token, deletes,
// listing, copying of values, the shared input limits, cancellation, and
// concurrent writers.
//
// fence.Memory passes it; so does github.com/stormguard/stormguard/contrib/etcd
// against a real etcd.
package fencetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stormguard/stormguard/fence"
)

// TestStore runs the conformance tests as subtests of t. newStore must
// return a new, empty store each time it is called (one per subtest); it
// may register cleanups on the *testing.T it is given.
func TestStore(t *testing.T, newStore func(t *testing.T) fence.Store) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, fence.Store)
	}{
		{"LoadAbsent", testLoadAbsent},
		{"CreateAndLoad", testCreateAndLoad},
		{"CompareAndSwap", testCompareAndSwap},
		{"WriteIfNewer", testWriteIfNewer},
		{"WriteIfNewerByCompareAndSwap", testWriteIfNewerFallback},
		{"Delete", testDelete},
		{"List", testList},
		{"ValuesAreCopied", testValuesAreCopied},
		{"Limits", testLimits},
		{"BadInput", testBadInput},
		{"CanceledContext", testCanceledContext},
		{"ConcurrentWriteIfNewer", testConcurrentWriteIfNewer},
		{"ConcurrentCompareAndSwap", testConcurrentCompareAndSwap},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// expectValue fails t unless key holds want with token tok.
func expectValue(t *testing.T, s fence.Store, key string, want []byte, tok fence.Token) {
	t.Helper()
	v, got, err := s.Load(context.Background(), key)
	if err != nil {
		t.Fatalf("Load(%q): %v", key, err)
	}
	if got != tok || !bytes.Equal(v, want) || (want != nil && v == nil) {
		t.Fatalf("Load(%q) = %q (nil: %v), token %d; want %q, token %d", key, v, v == nil, got, want, tok)
	}
}

// expectStale fails t unless err is a *StaleError with the given fields.
func expectStale(t *testing.T, err error, op fence.Op, key string, have, want fence.Token) {
	t.Helper()
	if !errors.Is(err, fence.ErrStale) {
		t.Fatalf("%v of %q: got error %v, want one matching fence.ErrStale", op, key, err)
	}
	var se *fence.StaleError
	if !errors.As(err, &se) {
		t.Fatalf("%v of %q: error %v is not a *fence.StaleError", op, key, err)
	}
	if wantErr := (fence.StaleError{Op: op, Key: key, Have: have, Want: want}); *se != wantErr {
		t.Fatalf("%v of %q: got %+v, want %+v", op, key, *se, wantErr)
	}
}

func noErr(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

func testLoadAbsent(t *testing.T, s fence.Store) {
	expectValue(t, s, "absent", nil, 0)
}

func testCreateAndLoad(t *testing.T, s fence.Store) {
	ctx := context.Background()
	noErr(t, s.CompareAndSwap(ctx, "plan/endpoint", 0, []byte("lb-1:100"), 7), "create")
	expectValue(t, s, "plan/endpoint", []byte("lb-1:100"), 7)

	noErr(t, s.CompareAndSwap(ctx, "empty", 0, []byte{}, 1), "create empty value")
	expectValue(t, s, "empty", []byte{}, 1)

	odd := "k\x00\xff/ü"
	noErr(t, s.CompareAndSwap(ctx, odd, 0, []byte{0, 1, 2, 255}, 3), "create key with odd bytes")
	expectValue(t, s, odd, []byte{0, 1, 2, 255}, 3)
}

func testCompareAndSwap(t *testing.T, s fence.Store) {
	ctx := context.Background()
	const k = "endpoint"
	noErr(t, s.CompareAndSwap(ctx, k, 0, []byte("gen1"), 1), "create")
	noErr(t, s.CompareAndSwap(ctx, k, 1, []byte("gen5"), 5), "1 → 5")
	noErr(t, s.CompareAndSwap(ctx, k, 5, []byte("gen6"), 6), "5 → 6")

	// A writer that read token 5 and was delayed is refused, and told 6.
	expectStale(t, s.CompareAndSwap(ctx, k, 5, []byte("late"), 7), fence.OpCompareAndSwap, k, 6, 5)
	// Creating an existing key is refused.
	expectStale(t, s.CompareAndSwap(ctx, k, 0, []byte("again"), 9), fence.OpCompareAndSwap, k, 6, 0)
	expectValue(t, s, k, []byte("gen6"), 6)

	// An absent key has token zero.
	expectStale(t, s.CompareAndSwap(ctx, "absent", 3, []byte("x"), 4), fence.OpCompareAndSwap, "absent", 0, 3)
	expectValue(t, s, "absent", nil, 0)
}

func testWriteIfNewer(t *testing.T, s fence.Store) {
	checkWriteIfNewer(t, s)
}

// storeOnly hides any NewerWriter method, so that fence.WriteIfNewer runs
// its compare-and-swap loop.
type storeOnly struct{ fence.Store }

func testWriteIfNewerFallback(t *testing.T, s fence.Store) {
	checkWriteIfNewer(t, storeOnly{s})
}

func checkWriteIfNewer(t *testing.T, s fence.Store) {
	ctx := context.Background()
	const k = "zone/regional"
	noErr(t, fence.WriteIfNewer(ctx, s, k, []byte("plan 3"), 3), "write 3 to absent key")
	expectStale(t, fence.WriteIfNewer(ctx, s, k, []byte("plan 3 again"), 3), fence.OpWriteIfNewer, k, 3, 3)
	noErr(t, fence.WriteIfNewer(ctx, s, k, []byte("plan 10"), 10), "write 10")
	// The delayed enactor of 2025: its plan is older than the applied one.
	expectStale(t, fence.WriteIfNewer(ctx, s, k, []byte("plan 4"), 4), fence.OpWriteIfNewer, k, 10, 4)
	expectValue(t, s, k, []byte("plan 10"), 10)
	noErr(t, fence.WriteIfNewer(ctx, s, k, []byte("plan max"), fence.MaxToken), "write MaxToken")
	expectStale(t, fence.WriteIfNewer(ctx, s, k, []byte("x"), fence.MaxToken), fence.OpWriteIfNewer, k, fence.MaxToken, fence.MaxToken)
	expectValue(t, s, k, []byte("plan max"), fence.MaxToken)
}

func testDelete(t *testing.T, s fence.Store) {
	ctx := context.Background()
	const k = "plans/41"
	noErr(t, s.CompareAndSwap(ctx, k, 0, []byte("old plan"), 41), "create")
	noErr(t, s.CompareAndSwap(ctx, k, 41, []byte("live plan"), 42), "replace")
	// A clean-up that inspected generation 41 must not delete 42.
	expectStale(t, s.Delete(ctx, k, 41), fence.OpDelete, k, 42, 41)
	expectValue(t, s, k, []byte("live plan"), 42)
	noErr(t, s.Delete(ctx, k, 42), "delete")
	expectValue(t, s, k, nil, 0)
	expectStale(t, s.Delete(ctx, k, 42), fence.OpDelete, k, 0, 42)
	// The token goes with the key: it may be created again from zero.
	noErr(t, s.CompareAndSwap(ctx, k, 0, []byte("new"), 1), "re-create")
	expectValue(t, s, k, []byte("new"), 1)
}

func testList(t *testing.T, s fence.Store) {
	ctx := context.Background()
	keys := []string{"a/2", "a/1", "b/1", "a", "a/10", "ab"}
	for i, k := range keys {
		noErr(t, s.CompareAndSwap(ctx, k, 0, []byte(k), fence.Token(i+1)), "create %q", k)
	}
	list := func(prefix string) []string {
		t.Helper()
		got, err := s.List(ctx, prefix)
		noErr(t, err, "List(%q)", prefix)
		return got
	}
	check := func(prefix string, want ...string) {
		t.Helper()
		if got := list(prefix); !slices.Equal(got, want) {
			t.Fatalf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
	check("a/", "a/1", "a/10", "a/2")
	check("a", "a", "a/1", "a/10", "a/2", "ab")
	check("", "a", "a/1", "a/10", "a/2", "ab", "b/1")
	check("zzz")
	noErr(t, s.Delete(ctx, "a/10", 5), "delete a/10")
	check("a/", "a/1", "a/2")
}

func testValuesAreCopied(t *testing.T, s fence.Store) {
	ctx := context.Background()
	buf := []byte("original")
	noErr(t, s.CompareAndSwap(ctx, "k", 0, buf, 1), "create")
	copy(buf, "MUTATED!")
	v, _, err := s.Load(ctx, "k")
	noErr(t, err, "load")
	if string(v) != "original" {
		t.Fatalf("the store shares the caller's slice: got %q", v)
	}
	copy(v, "MUTATED!")
	expectValue(t, s, "k", []byte("original"), 1)
}

func testLimits(t *testing.T, s fence.Store) {
	ctx := context.Background()
	key := strings.Repeat("k", fence.MaxKeyBytes)
	value := bytes.Repeat([]byte{0xa5}, fence.MaxValueBytes)
	noErr(t, s.CompareAndSwap(ctx, key, 0, value, 1), "write a key of MaxKeyBytes and a value of MaxValueBytes")
	expectValue(t, s, key, value, 1)
	got, err := s.List(ctx, key)
	noErr(t, err, "list by the longest prefix")
	if !slices.Equal(got, []string{key}) {
		t.Fatalf("List(longest key) = %d keys, want 1", len(got))
	}

	// A write-if-newer takes the same sizes as a compare-and-swap, whichever
	// way it is made: creating a key, replacing a full-size value, and
	// refusing one with the current token. A backend that builds its
	// write-if-newer from a bigger request than its compare-and-swap (the
	// value twice, say) fails here before it fails in production.
	type writer struct {
		name  string
		write func(key string, value []byte, t fence.Token) error
	}
	writers := []writer{
		{"fence.WriteIfNewer", func(key string, value []byte, t fence.Token) error {
			return fence.WriteIfNewer(ctx, s, key, value, t)
		}},
		{"fence.WriteIfNewer by compare-and-swap", func(key string, value []byte, t fence.Token) error {
			return fence.WriteIfNewer(ctx, storeOnly{s}, key, value, t)
		}},
	}
	if w, ok := s.(fence.NewerWriter); ok {
		writers = append(writers, writer{"NewerWriter.WriteIfNewer", func(key string, value []byte, t fence.Token) error {
			return w.WriteIfNewer(ctx, key, value, t)
		}})
	}
	for i, w := range writers {
		k := strings.Repeat(string(rune('a'+i)), fence.MaxKeyBytes)
		first := bytes.Repeat([]byte{byte(i)}, fence.MaxValueBytes)
		second := bytes.Repeat([]byte{byte(0x80 + i)}, fence.MaxValueBytes)
		noErr(t, w.write(k, first, 5), "%s: create a key of MaxKeyBytes with a value of MaxValueBytes", w.name)
		expectValue(t, s, k, first, 5)
		noErr(t, w.write(k, second, 6), "%s: replace a value of MaxValueBytes", w.name)
		expectValue(t, s, k, second, 6)
		expectStale(t, w.write(k, first, 6), fence.OpWriteIfNewer, k, 6, 6)
		expectValue(t, s, k, second, 6)
	}
}

func testBadInput(t *testing.T, s fence.Store) {
	ctx := context.Background()
	long := strings.Repeat("k", fence.MaxKeyBytes+1)
	huge := make([]byte, fence.MaxValueBytes+1)
	v := []byte("v")
	tests := []struct {
		name  string
		call  func() error
		wants []error
	}{
		{"load empty key", func() error { _, _, err := s.Load(ctx, ""); return err }, []error{fence.ErrInvalidKey}},
		{"load long key", func() error { _, _, err := s.Load(ctx, long); return err }, []error{fence.ErrInvalidKey}},
		{"cas empty key", func() error { return s.CompareAndSwap(ctx, "", 0, v, 1) }, []error{fence.ErrInvalidKey}},
		{"cas long key", func() error { return s.CompareAndSwap(ctx, long, 0, v, 1) }, []error{fence.ErrInvalidKey}},
		{"cas nil value", func() error { return s.CompareAndSwap(ctx, "k", 0, nil, 1) }, []error{fence.ErrInvalidValue}},
		{"cas huge value", func() error { return s.CompareAndSwap(ctx, "k", 0, huge, 1) }, []error{fence.ErrInvalidValue}},
		{"cas zero next", func() error { return s.CompareAndSwap(ctx, "k", 0, v, 0) }, []error{fence.ErrInvalidToken}},
		{"cas next equal to expect", func() error { return s.CompareAndSwap(ctx, "k", 4, v, 4) }, []error{fence.ErrInvalidToken}},
		{"cas next older than expect", func() error { return s.CompareAndSwap(ctx, "k", 4, v, 3) }, []error{fence.ErrInvalidToken}},
		{"cas all bad at once", func() error { return s.CompareAndSwap(ctx, "", 2, nil, 1) },
			[]error{fence.ErrInvalidKey, fence.ErrInvalidValue, fence.ErrInvalidToken}},
		{"write-if-newer zero token", func() error { return fence.WriteIfNewer(ctx, s, "k", v, 0) }, []error{fence.ErrInvalidToken}},
		{"write-if-newer all bad at once", func() error { return fence.WriteIfNewer(ctx, s, long, huge, 0) },
			[]error{fence.ErrInvalidKey, fence.ErrInvalidValue, fence.ErrInvalidToken}},
		{"delete zero token", func() error { return s.Delete(ctx, "k", 0) }, []error{fence.ErrInvalidToken}},
		{"delete empty key", func() error { return s.Delete(ctx, "", 1) }, []error{fence.ErrInvalidKey}},
		{"list long prefix", func() error { _, err := s.List(ctx, long); return err }, []error{fence.ErrInvalidKey}},
	}
	for _, tt := range tests {
		err := tt.call()
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		for _, w := range tt.wants {
			if !errors.Is(err, w) {
				t.Errorf("%s: error %q does not match %v", tt.name, err, w)
			}
		}
		if errors.Is(err, fence.ErrStale) {
			t.Errorf("%s: bad input reported as stale: %v", tt.name, err)
		}
	}
	keys, err := s.List(ctx, "")
	noErr(t, err, "list")
	if len(keys) != 0 {
		t.Fatalf("bad input wrote keys %q", keys)
	}
}

func testCanceledContext(t *testing.T, s fence.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v := []byte("v")
	for name, err := range map[string]error{
		"Load":           func() error { _, _, err := s.Load(ctx, "k"); return err }(),
		"CompareAndSwap": s.CompareAndSwap(ctx, "k", 0, v, 1),
		"WriteIfNewer":   fence.WriteIfNewer(ctx, s, "k", v, 1),
		"Delete":         s.Delete(ctx, "k", 1),
		"List":           func() error { _, err := s.List(ctx, ""); return err }(),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: got %v, want context.Canceled", name, err)
		}
	}
	expectValue(t, s, "k", nil, 0)
}

// testConcurrentWriteIfNewer offers the tokens 1..n from several goroutines
// in random order: the newest must win, and every refusal must name a
// token at least as new as the one refused.
func testConcurrentWriteIfNewer(t *testing.T, s fence.Store) {
	ctx := context.Background()
	const writers, n = 8, 96
	tokens := rand.Perm(n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += writers {
				tok := fence.Token(tokens[i] + 1)
				err := fence.WriteIfNewer(ctx, s, "k", []byte(tok.String()), tok)
				var se *fence.StaleError
				switch {
				case err == nil:
				case errors.As(err, &se):
					if se.Have < tok {
						errs <- fmt.Errorf("token %d refused by the older token %d", tok, se.Have)
					}
				default:
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	expectValue(t, s, "k", []byte(fence.Token(n).String()), n)
}

// testConcurrentCompareAndSwap increments a counter from several goroutines
// with read-modify-write loops: no increment may be lost.
func testConcurrentCompareAndSwap(t *testing.T, s fence.Store) {
	ctx := context.Background()
	const writers, each = 4, 12
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				v, tok, err := s.Load(ctx, "counter")
				for err == nil {
					count := 0
					if v != nil {
						fmt.Sscan(string(v), &count)
					}
					err = s.CompareAndSwap(ctx, "counter", tok, []byte(fmt.Sprint(count+1)), tok+1)
					if err == nil {
						break
					}
					// The refusal says what the token is; the value needs a read.
					if errors.Is(err, fence.ErrStale) {
						v, tok, err = s.Load(ctx, "counter")
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	expectValue(t, s, "counter", []byte(fmt.Sprint(writers*each)), writers*each)
}
