package fence

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stormguard/stormguard/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestTokenStringAndParse(t *testing.T) {
	assert.Equal(t, "0", Token(0).String())
	assert.Equal(t, "42", Token(42).String())
	assert.Equal(t, "18446744073709551615", MaxToken.String())
	for _, bad := range []string{"", "-1", "1.5", "0x10", "18446744073709551616", " 7"} {
		_, err := ParseToken(bad)
		assert.ErrorIs(t, err, ErrInvalidToken, "%q", bad)
	}
	rapid.Check(t, func(t *rapid.T) {
		tok := Token(rapid.Uint64().Draw(t, "token"))
		got, err := ParseToken(tok.String())
		if err != nil || got != tok {
			t.Fatalf("ParseToken(%q) = %v, %v", tok.String(), got, err)
		}
	})
}

func TestStaleErrorMessages(t *testing.T) {
	tests := []struct {
		err  StaleError
		want string
	}{
		{StaleError{Op: OpWriteIfNewer, Key: "dns/us-east-1", Have: 42, Want: 41},
			`fence: stale write-if-newer of "dns/us-east-1": token 41 is not newer than the current token 42`},
		{StaleError{Op: OpCompareAndSwap, Key: "k", Have: 7, Want: 5},
			`fence: stale compare-and-swap of "k": expected token 5, found the current token 7`},
		{StaleError{Op: OpCompareAndSwap, Have: 0, Want: 5},
			`fence: stale compare-and-swap: expected token 5, found no token (absent)`},
		{StaleError{Op: OpDelete, Key: "plans/41", Have: 42, Want: 41},
			`fence: stale delete of "plans/41": expected token 41, found the current token 42`},
		{StaleError{Op: OpAdmit, Key: "zone a", Have: 9, Want: 3},
			`fence: stale admit of "zone a": token 3 is older than the newest admitted token 9`},
		{StaleError{Op: OpAdmit, Have: math.MaxUint64, Want: 3},
			`fence: stale admit: token 3 is older than the newest admitted token 18446744073709551615`},
	}
	for _, tt := range tests {
		err := error(&tt.err)
		assert.Equal(t, tt.want, err.Error())
		assert.ErrorIs(t, err, ErrStale)
		var se *StaleError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, tt.err.Have, se.Have)
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{
		OpCompareAndSwap: "compare-and-swap", OpWriteIfNewer: "write-if-newer", OpDelete: "delete",
		OpAdmit: "admit", OpNext: "next", 0: "Op(0)", 99: "Op(99)",
	} {
		assert.Equal(t, want, op.String())
	}
}

// TestValidateReportsEveryBadArgument: one line per bad argument, with the
// numbers, and each line matches its sentinel.
func TestValidateReportsEveryBadArgument(t *testing.T) {
	long := strings.Repeat("x", MaxKeyBytes+1)
	tests := []struct {
		name  string
		err   error
		wants []string
		is    []error
	}{
		{"valid cas", ValidateCompareAndSwap("k", 0, []byte{}, 1), nil, nil},
		{"valid cas at the limits", ValidateCompareAndSwap(long[:MaxKeyBytes], MaxToken-1, make([]byte, MaxValueBytes), MaxToken), nil, nil},
		{"empty key", ValidateKey(""), []string{"fence: invalid key: empty key"}, []error{ErrInvalidKey}},
		{"long key", ValidateKey(long), []string{"key of 1025 bytes exceeds the limit of 1024 bytes"}, []error{ErrInvalidKey}},
		{"long prefix", ValidatePrefix(long), []string{"prefix of 1025 bytes exceeds the limit of 1024 bytes"}, []error{ErrInvalidKey}},
		{"empty prefix", ValidatePrefix(""), nil, nil},
		{"nil value", ValidateCompareAndSwap("k", 0, nil, 1), []string{"fence: invalid value: nil value (use []byte{} for an empty value)"}, []error{ErrInvalidValue}},
		{"huge value", ValidateWriteIfNewer("k", make([]byte, MaxValueBytes+1), 1), []string{"value of 1048577 bytes exceeds the limit of 1048576 bytes"}, []error{ErrInvalidValue}},
		{"zero next", ValidateCompareAndSwap("k", 0, []byte{}, 0), []string{"the token to write is zero"}, []error{ErrInvalidToken}},
		{"next not newer", ValidateCompareAndSwap("k", 9, []byte{}, 9), []string{"the token to write, 9, is not newer than the expected token 9"}, []error{ErrInvalidToken}},
		{"zero delete", ValidateDelete("k", 0), []string{"the expected token is zero"}, []error{ErrInvalidToken}},
		{"everything", ValidateCompareAndSwap("", 3, nil, 2),
			[]string{"empty key", "nil value", "2, is not newer than the expected token 3"},
			[]error{ErrInvalidKey, ErrInvalidValue, ErrInvalidToken}},
		{"delete everything", ValidateDelete(long, 0), []string{"1025 bytes", "expected token is zero"}, []error{ErrInvalidKey, ErrInvalidToken}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.wants) == 0 {
				require.NoError(t, tt.err)
				return
			}
			require.Error(t, tt.err)
			for _, w := range tt.wants {
				assert.Contains(t, tt.err.Error(), w)
			}
			for _, s := range tt.is {
				assert.ErrorIs(t, tt.err, s)
			}
			assert.Len(t, strings.Split(tt.err.Error(), "\n"), len(tt.wants), "one line per bad argument: %v", tt.err)
			assert.False(t, errors.Is(tt.err, ErrStale))
		})
	}
}

func TestCounters(t *testing.T) {
	var c Counters
	c.Observe(Event{Op: OpAdmit, Token: 3})
	c.Observe(Event{Op: OpWriteIfNewer, Token: 3, Current: 4, FencedOff: true})
	c.Observe(Event{Op: OpNext, Token: 5})
	assert.Equal(t, Stats{Admitted: 2, FencedOff: 1}, c.Stats())
}
