package rfc2136_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/stormguard/stormguard/contrib/rfc2136"
	"github.com/stormguard/stormguard/dnsplan"
)

// Three enactors, one per Availability Zone, each in its own process, keep
// the records of example.com in step with the plans in a shared Store.
// The server refuses any update whose generation prerequisite no longer
// holds, so a delayed enactor cannot roll an endpoint back. (This example
// needs a DNS server at 127.0.0.1:53 that accepts updates signed with the
// key, so it is compiled but not run by go test.)
func Example() {
	provider, err := rfc2136.New(rfc2136.Config{
		Server:  "127.0.0.1:53",
		Zone:    "example.com.",
		KeyName: "dnsplan-key.",
		Secret:  "base64-secret-from-tsig-keygen==",
	})
	if err != nil {
		log.Fatal(err)
	}
	var store dnsplan.Store = &dnsplan.MemoryStore{} // shared by planner and enactors
	enactor, err := dnsplan.NewEnactor(dnsplan.EnactorConfig{Name: "us-east-1a", Interval: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := enactor.Run(ctx, store, provider); !errors.Is(err, context.DeadlineExceeded) {
		log.Fatal(err)
	}
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
