package shedhttp_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/stormguard/stormguard/shed"
	"github.com/stormguard/stormguard/shed/shedhttp"
)

// The package comment's code: a mux behind a Partition keyed by the
// request's zone header, so that one zone's slow requests fill only its
// share of the 64 slots.
func Example_package() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "served")
	})
	zones, err := shed.NewPartition(shed.PartitionConfig[string]{
		Total: 64, Share: 0.4, MaxQueuePerKey: 32, MaxWait: 50 * time.Millisecond,
	})
	if err != nil {
		panic(err)
	}
	h, err := shedhttp.New(mux, shedhttp.Options{
		Partition:      zones,
		Key:            func(r *http.Request) string { return r.Header.Get("X-Zone") },
		DeadlineHeader: "X-Timeout-Ms", // "250" (ms) or "250ms"
	})
	if err != nil {
		panic(err) // errors.Is(err, shedhttp.ErrInvalidConfig): a bad combination
	}
	srv := &http.Server{Addr: ":8080", Handler: h}

	// In the example, a loopback test server serves srv.Handler instead of
	// srv.ListenAndServe().
	ts := httptest.NewServer(srv.Handler)
	defer ts.Close()
	req, _ := http.NewRequest("GET", ts.URL+"/volumes/vol-42", nil)
	req.Header.Set("X-Zone", "us-east-1a")
	req.Header.Set("X-Timeout-Ms", "250")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	st, _ := zones.StatsFor("us-east-1a")
	fmt.Println(resp.Status, st.Admitted)
	// Output: 200 OK 1
}
