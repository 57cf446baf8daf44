package sim_test

import (
	"fmt"
	"log"
	"time"

	"github.com/stormguard/stormguard/remirror/sim"
)

// The April 2011 storm, twice on one seed: the naive engine (the 2011
// settings) and the guarded one (remirror's defaults) see the same network
// fault in zone 0.
func Example() {
	cfg := sim.DefaultConfig() // one seed, one result
	cfg.Duration = 4 * time.Hour
	for _, mode := range []sim.Mode{sim.Naive, sim.Guarded} {
		r, err := sim.Run(cfg, mode)
		if err != nil {
			log.Fatal(err)
		}
		healed := "still stuck at the end"
		if r.HealthyAfter >= 0 {
			healed = fmt.Sprintf("healthy %v after the heal", r.HealthyAfter)
		}
		fmt.Printf("%v: peak stuck %.0f%%, %d searches, %s\n", mode, 100*r.PeakStuck, r.Searches, healed)
	}
	// Output:
	// naive: peak stuck 36%, 221027 searches, still stuck at the end
	// guarded: peak stuck 9%, 1063 searches, healthy 1m0s after the heal
}
