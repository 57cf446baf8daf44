package shed_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stormguard/stormguard/shed"
)

// One pool of calls to a regional dependency, partitioned by Availability
// Zone: calls into a sick zone that hang fill only that zone's share, and
// the other zones keep theirs.
func Example() {
	ctx := context.Background()
	zones, err := shed.NewPartition(shed.PartitionConfig[string]{
		Total:          64,                     // calls in flight, all zones together
		Share:          0.5,                    // no zone takes more than half
		MaxQueuePerKey: 8,                      // then wait in line, up to MaxWait
		MaxWait:        50 * time.Millisecond,  // then refuse
		CallTimeout:    200 * time.Millisecond, // short timeouts, the 2011 lesson
	})
	if err != nil {
		panic(err)
	}
	err = zones.Do(ctx, "us-east-1a", func(ctx context.Context) error {
		return nil // the call to the dependency, bounded by ctx
	})
	if errors.Is(err, shed.ErrShed) {
		// Refused early, with the reason and the numbers, e.g.
		// shed: queue full (8 waiting, limit 8) for key "us-east-1a"
		fmt.Println(err)
	}

	fmt.Println("done:", err)
	// Output:
	// done: <nil>
}
