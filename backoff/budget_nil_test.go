package backoff

import (
	"testing"
	"time"
)

// TestNilBudget: a nil *Budget is no budget, as WithBudget(nil) is: every
// retry is allowed, deposits do nothing, and nothing panics.
func TestNilBudget(t *testing.T) {
	var b *Budget
	b.Deposit()
	if !b.Withdraw() || !b.WithdrawAt(time.Unix(0, 0)) {
		t.Fatal("a nil Budget refused a retry")
	}
	if got := b.Tokens(); got != 0 {
		t.Fatalf("Tokens() = %v, want 0", got)
	}
	if got := b.Stats(); got != (BudgetStats{}) {
		t.Fatalf("Stats() = %+v, want zero", got)
	}
}
