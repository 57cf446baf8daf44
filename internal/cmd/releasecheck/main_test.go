package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stormguard/stormguard/internal/release"
)

// TestSetRewritesRequirements: -set moves every requirement between the
// repository's modules to the version, and leaves other requirements alone;
// without -set, the same repository is refused.
func TestSetRewritesRequirements(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example.com/core\n\ngo 1.25.0\n",
		"go.work": "go 1.25.0\n\nuse (\n\t.\n\t./contrib/a\n)\n",
		"contrib/a/go.mod": "module example.com/core/contrib/a\n\ngo 1.25.0\n\n" +
			"require (\n\texample.com/core v0.0.0\n\texample.com/other v1.4.0\n)\n\nreplace example.com/core => ../..\n",
	}
	for p, s := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := run(root, "v0.3.0", false, false); err == nil || !strings.Contains(err.Error(), "1 problem") {
		t.Fatalf("run without -set = %v, want 1 problem", err)
	}
	if err := run(root, "v0.3", true, false); err == nil {
		t.Fatal("run -set with an invalid version rewrote nothing but succeeded")
	}
	if err := run(root, "v0.3.0", true, false); err != nil {
		t.Fatal(err)
	}
	mods, err := release.Modules(root)
	if err != nil {
		t.Fatal(err)
	}
	a := mods[1]
	if a.Require["example.com/core"] != "v0.3.0" || a.Require["example.com/other"] != "v1.4.0" {
		t.Fatalf("requirements after -set: %v", a.Require)
	}
	if err := run(root, "", false, false); err == nil {
		t.Fatal("run without a version succeeded")
	}
}
