package remirror

import (
	"testing"

	"github.com/stormguard/stormguard/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
