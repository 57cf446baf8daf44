package fence

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// DefaultMaxKeys is the number of keys a Memory store holds when
// MemoryConfig.MaxKeys is zero.
const DefaultMaxKeys = 1 << 20

// MemoryConfig configures a Memory store. The zero value is usable: at most
// DefaultMaxKeys keys, no hook.
type MemoryConfig struct {
	// MaxKeys bounds the number of keys, so that a runaway writer fails
	// with ErrFull instead of exhausting memory. Zero means DefaultMaxKeys;
	// negative is invalid.
	MaxKeys int
	// OnEvent, if not nil, is called after every write or delete that took
	// effect and every one refused as stale, on the caller's goroutine and
	// outside the store's lock. It must not block; Counters.Observe is a
	// ready-made hook.
	OnEvent func(Event)
}

// Memory is the in-memory Store: a map guarded by one mutex, whose every
// write checks the key's token and writes under the same lock, so the check
// is atomic with the write. It is linearizable, safe for concurrent use, and
// the default Store for a single process and for tests; a fleet that
// outgrows one process uses a durable Store such as contrib/etcd.
//
// The zero Memory is empty and ready to use, with the defaults of
// MemoryConfig. A nil *Memory is not: each of its methods, and every
// function and config of this package given it as a Store, refuses it with
// an error matching ErrInvalidArgument (ErrInvalidConfig for a config)
// rather than panic. Values are copied on the way in and on the way out. Memory
// also implements NewerWriter, so WriteIfNewer on it is one locked step. A
// Memory must not be copied after first use.
type Memory struct {
	mu      sync.RWMutex
	entries map[string]entry
	maxKeys int
	onEvent func(Event)
}

type entry struct {
	value []byte
	token Token
}

var (
	_ Store       = (*Memory)(nil)
	_ NewerWriter = (*Memory)(nil)
)

// NewMemory returns an empty Memory store configured by cfg, or an error
// matching ErrInvalidConfig that names every invalid field.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	if cfg.MaxKeys < 0 {
		return nil, fmt.Errorf("%w: MemoryConfig.MaxKeys %d is negative", ErrInvalidConfig, cfg.MaxKeys)
	}
	return &Memory{maxKeys: cfg.MaxKeys, onEvent: cfg.OnEvent}, nil
}

// Load returns a copy of the value stored under key and its token, or a nil
// value and token zero if the key is absent. It fails only for an invalid
// key or a done context.
func (m *Memory) Load(ctx context.Context, key string) ([]byte, Token, error) {
	if m == nil {
		return nil, 0, nilMemory("Load")
	}
	if err := ValidateKey(key); err != nil {
		return nil, 0, err
	}
	if err := contextErr(ctx); err != nil {
		return nil, 0, err
	}
	m.mu.RLock()
	e, ok := m.entries[key]
	m.mu.RUnlock()
	if !ok {
		return nil, 0, nil
	}
	return slices.Clone(e.value), e.token, nil
}

// CompareAndSwap stores a copy of value under key with token next if and
// only if the key's token is expect (zero: absent) at the instant of the
// write. See Store.CompareAndSwap. Creating a key beyond MaxKeys fails with
// an error matching ErrFull.
func (m *Memory) CompareAndSwap(ctx context.Context, key string, expect Token, value []byte, next Token) error {
	if m == nil {
		return nilMemory("CompareAndSwap")
	}
	if err := ValidateCompareAndSwap(key, expect, value, next); err != nil {
		return err
	}
	return m.write(ctx, OpCompareAndSwap, key, value, next, func(have Token) bool { return have == expect }, expect)
}

// WriteIfNewer stores a copy of value under key with token t if and only if
// t is newer than the key's token (zero: absent) at the instant of the
// write. See the package-level WriteIfNewer.
func (m *Memory) WriteIfNewer(ctx context.Context, key string, value []byte, t Token) error {
	if m == nil {
		return nilMemory("WriteIfNewer")
	}
	if err := ValidateWriteIfNewer(key, value, t); err != nil {
		return err
	}
	return m.write(ctx, OpWriteIfNewer, key, value, t, func(have Token) bool { return have < t }, t)
}

// write stores value with token next if ok accepts the key's current
// token; want is what a refusal reports the caller wanted.
func (m *Memory) write(ctx context.Context, op Op, key string, value []byte, next Token, ok func(Token) bool, want Token) error {
	if err := contextErr(ctx); err != nil {
		return err
	}
	// Copy outside the lock: the critical section is a map lookup, the
	// check and the store.
	v := slices.Clone(value)
	m.mu.Lock()
	cur, exists := m.entries[key]
	if !ok(cur.token) {
		m.mu.Unlock()
		m.observe(op, key, want, cur.token, true)
		return &StaleError{Op: op, Key: key, Have: cur.token, Want: want}
	}
	if !exists {
		if limit := m.limit(); len(m.entries) >= limit {
			m.mu.Unlock()
			return fmt.Errorf("%w: cannot create key %q: %d keys, limit %d", ErrFull, key, limit, limit)
		}
		if m.entries == nil {
			m.entries = make(map[string]entry)
		}
	}
	m.entries[key] = entry{value: v, token: next}
	m.mu.Unlock()
	m.observe(op, key, next, cur.token, false)
	return nil
}

// Delete removes key if and only if its token is expect at the instant of
// the delete. See Store.Delete.
func (m *Memory) Delete(ctx context.Context, key string, expect Token) error {
	if m == nil {
		return nilMemory("Delete")
	}
	if err := ValidateDelete(key, expect); err != nil {
		return err
	}
	if err := contextErr(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	cur := m.entries[key]
	if cur.token != expect {
		m.mu.Unlock()
		m.observe(OpDelete, key, expect, cur.token, true)
		return &StaleError{Op: OpDelete, Key: key, Have: cur.token, Want: expect}
	}
	delete(m.entries, key)
	m.mu.Unlock()
	m.observe(OpDelete, key, expect, cur.token, false)
	return nil
}

// List returns, in ascending order, the keys that begin with prefix. It
// scans every key, so it costs O(n log n) for n keys in the store.
func (m *Memory) List(ctx context.Context, prefix string) ([]string, error) {
	if m == nil {
		return nil, nilMemory("List")
	}
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := contextErr(ctx); err != nil {
		return nil, err
	}
	var keys []string
	m.mu.RLock()
	for k := range m.entries {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	m.mu.RUnlock()
	slices.Sort(keys)
	return keys, nil
}

// nilMemory refuses call on a nil *Memory.
func nilMemory(call string) error {
	return fmt.Errorf("%w: Memory.%s on a nil *fence.Memory", ErrInvalidArgument, call)
}

// isNilStore reports whether s is nil or holds a nil pointer (a nil
// *Memory, or a nil pointer of any other Store type), which a Store
// argument or config field must not be. It does not allocate.
func isNilStore(s Store) bool {
	if s == nil {
		return true
	}
	if m, ok := s.(*Memory); ok {
		return m == nil
	}
	v := reflect.ValueOf(s)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice:
		return v.IsNil()
	}
	return false
}

func (m *Memory) limit() int {
	if m.maxKeys == 0 {
		return DefaultMaxKeys
	}
	return m.maxKeys
}

func (m *Memory) observe(op Op, key string, t, cur Token, fenced bool) {
	if m.onEvent != nil {
		m.onEvent(Event{Op: op, Key: key, Token: t, Current: cur, FencedOff: fenced})
	}
}
