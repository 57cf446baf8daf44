package dnsplan_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
)

// The 2025 race, with dnsplan's enactors: A takes plan 1 and stalls
// between its read and its write; B applies plan 3 and cleans up. A's
// write is conditioned on the generation it read, so the DNS refuses it;
// A reads again, sees generation 3, and writes nothing.
func Example() {
	ctx := context.Background()
	store, dns := &dnsplan.MemoryStore{}, &dnsplan.MemoryProvider{}
	put := func(g fence.Token, ip string) {
		_ = store.Put(ctx, dnsplan.Plan{Generation: g, Endpoints: map[string][]dnsplan.Target{
			"dynamodb.us-east-1": {{Addr: netip.MustParseAddr(ip), Weight: 1}},
		}})
	}
	a, _ := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "A", Retention: 1})
	b, _ := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "B", Retention: 1})

	put(1, "10.0.0.1")
	a.Deliver(dnsplan.Execute(ctx, a.Next(), store, dns)) // A loads plan 1
	a.Deliver(dnsplan.Execute(ctx, a.Next(), store, dns)) // A reads the endpoint
	fmt.Println("A stalls before:", a.Next())

	put(2, "10.0.0.2")
	put(3, "10.0.0.3")
	st, _ := b.Pass(ctx, store, dns)
	fmt.Printf("B applied plan %d, deleted %d old plan(s)\n", st.Generation, st.Deleted)

	r := dnsplan.Execute(ctx, a.Next(), store, dns)
	fmt.Println("A's write:", r.Err, errors.Is(r.Err, fence.ErrStale))
	a.Deliver(r)
	for a.Next().Op != dnsplan.OpRest { // A reads again, and finishes its pass
		a.Deliver(dnsplan.Execute(ctx, a.Next(), store, dns))
	}
	fmt.Println("A's pass:", a.LastPass().Newer, "endpoint newer than its plan")

	rec, _ := dns.Read(ctx, "dynamodb.us-east-1")
	fmt.Println("live:", rec.Generation, dnsplan.FormatTargets(rec.Targets))
	// Output:
	// A stalls before: apply "dynamodb.us-east-1" 1 if 0
	// B applied plan 3, deleted 1 old plan(s)
	// A's write: fence: stale compare-and-swap of "dynamodb.us-east-1": expected token 0, found the current token 3 true
	// A's pass: 1 endpoint newer than its plan
	// live: 3 10.0.0.3*1
}

// Health checks flap and report six of eight targets down: velocity
// control removes at most a quarter of the capacity per window.
func ExamplePlanner() {
	p, _ := dnsplan.NewPlanner(dnsplan.PlannerConfig{Window: 5 * time.Minute, MaxRemoveFraction: 0.25})
	report := func(down int) dnsplan.Report {
		var hs []dnsplan.TargetHealth
		for i := range 8 {
			hs = append(hs, dnsplan.TargetHealth{Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), Capacity: 10, Healthy: i >= down})
		}
		return dnsplan.Report{"nlb.example": hs}
	}
	now := time.Date(2025, 10, 20, 6, 52, 0, 0, time.UTC)
	for i, down := range []int{0, 6, 6, 8} {
		plan, _ := p.Next(now.Add(time.Duration(i)*time.Minute), report(down))
		fmt.Printf("plan %d: %d down, capacity %d\n", plan.Generation, down, plan.Capacity("nlb.example"))
	}
	// Output:
	// plan 1: 0 down, capacity 80
	// plan 2: 6 down, capacity 60
	// plan 3: 6 down, capacity 60
	// plan 4: 8 down, capacity 60
}

func ExampleValidate() {
	err := dnsplan.Validate(dnsplan.Plan{Generation: 7, Endpoints: map[string][]dnsplan.Target{
		"api": {{Addr: netip.MustParseAddr("10.0.0.1"), Weight: 0}},
		"web": nil,
	}}, dnsplan.Limits{})
	fmt.Println(err)
	fmt.Println(errors.Is(err, dnsplan.ErrInvalidPlan))
	// Output:
	// dnsplan: invalid plan: endpoint "api" target 10.0.0.1 has weight 0 (want > 0)
	// dnsplan: invalid plan: endpoint "web" has no targets
	// true
}

// Endpoint names are DNS names, which have many spellings; plans take the
// canonical one only. CanonicalEndpoint makes it from user input.
func ExampleCanonicalEndpoint() {
	for _, name := range []string{"API.Example.com.", "api.example.com", `\097pi.example.com`} {
		if c, err := dnsplan.CanonicalEndpoint(name); err != nil {
			fmt.Println(err)
		} else {
			fmt.Printf("%s -> %s (valid as given: %v)\n", name, c, dnsplan.ValidateEndpoint(name) == nil)
		}
	}
	fmt.Println(dnsplan.ValidateEndpoint("API.Example.com."))
	// Output:
	// API.Example.com. -> api.example.com (valid as given: false)
	// api.example.com -> api.example.com (valid as given: true)
	// dnsplan: invalid plan: endpoint name "\\097pi.example.com" has a backslash at byte 0: escapes are not decoded, spell the name with plain lowercase ASCII
	// dnsplan: invalid plan: endpoint name "API.Example.com." is not canonical: use "api.example.com"
}
