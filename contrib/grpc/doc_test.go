package grpcguard_test

import (
	"testing"

	"github.com/stormguard/stormguard/internal/doccheck"
)

// TestEveryExportedNameDocumented keeps go doc of the package complete.
func TestEveryExportedNameDocumented(t *testing.T) {
	missing, err := doccheck.Missing(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range missing {
		t.Error("undocumented: " + m)
	}
}
