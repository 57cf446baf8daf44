package textfmt

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSecs(t *testing.T) {
	assert.Equal(t, "0s", Secs(0))
	assert.Equal(t, "1.5s", Secs(1500*time.Millisecond))
	assert.Equal(t, "0.001s", Secs(time.Millisecond))
}

func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{
		0:             "0",
		999:           "999",
		1000:          "1,000",
		-1000:         "-1,000",
		1234567:       "1,234,567",
		-123456:       "-123,456",
		math.MinInt64: "-9,223,372,036,854,775,808",
		math.MaxInt64: "9,223,372,036,854,775,807",
	} {
		assert.Equal(t, want, Group(n), "Group(%d)", n)
	}
}

func TestWrap(t *testing.T) {
	var b strings.Builder
	Wrap(&b, 10, "aaa bbb ccc dddddddddddddd e")
	assert.Equal(t, "aaa bbb\nccc\ndddddddddddddd\ne\n", b.String())
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if !strings.Contains(line, "dddd") {
			assert.LessOrEqual(t, len(line), 10, line)
		}
	}

	b.Reset()
	Wrap(&b, 80, "  ")
	assert.Equal(t, "\n", b.String(), "empty text is an empty line")
}

func TestOutOfRange(t *testing.T) {
	bad := errors.New("bad config")
	assert.NoError(t, OutOfRange(bad, "hours", 1, 1, 72))
	assert.NoError(t, OutOfRange(bad, "hours", 72, 1, 72))
	err := OutOfRange(bad, "hours", 0, 1, 72)
	assert.ErrorIs(t, err, bad)
	assert.EqualError(t, err, "bad config: hours 0 is outside [1, 72]")
	assert.EqualError(t, OutOfRange(bad, "-n", math.MinInt, 0, math.MaxInt),
		fmt.Sprintf("bad config: -n %d is outside [0, %d]", math.MinInt, math.MaxInt))
}
