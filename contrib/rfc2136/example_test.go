package rfc2136_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"

	"github.com/stormguard/stormguard/contrib/rfc2136"
	"github.com/stormguard/stormguard/dnsplan"
)

// Three enactors, one per Availability Zone, each in its own process, keep
// the records of a zone in step with the plans in a shared Store. The
// server refuses any update whose generation prerequisite no longer holds,
// so a delayed enactor cannot roll an endpoint back. server is the DNS
// server's host:port, secret the TSIG key's base64 secret (tsig-keygen).
func Example() {
	provider, err := rfc2136.New(rfc2136.Config{
		Server:  server,
		Zone:    "dnsplan.test.",
		KeyName: "dnsplan-key.",
		Secret:  secret,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	store := &dnsplan.MemoryStore{} // shared by planner and enactors: contrib/etcd's PlanStore
	err = store.Put(ctx, dnsplan.Plan{Generation: 1, Endpoints: map[string][]dnsplan.Target{
		"api.dnsplan.test": {{Addr: netip.MustParseAddr("10.0.0.7"), Weight: 100}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	enactor, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "us-east-1a"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := enactor.Pass(ctx, store, provider); err != nil { // Run repeats passes
		log.Fatal(err)
	}
	rec, err := provider.Read(ctx, "api.dnsplan.test")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("plan", rec.Generation, dnsplan.FormatTargets(rec.Targets))
	// Output:
	// plan 1 10.0.0.7*100
}

// Configuration errors name every bad field at once.
func ExampleNew() {
	_, err := rfc2136.New(rfc2136.Config{Server: "127.0.0.1", Zone: "example.com", KeyName: "k."})
	fmt.Println(err)
	fmt.Println(errors.Is(err, rfc2136.ErrInvalidConfig))
	// Output:
	// rfc2136: invalid config: Config.Server "127.0.0.1" is not host:port: address 127.0.0.1: missing port in address
	// rfc2136: invalid config: Config.KeyName "k." has no Config.Secret
	// true
}
