package grpcguard_test

import (
	"context"
	"math"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	grpcguard "github.com/stormguard/stormguard/contrib/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"pgregory.net/rapid"
)

// TestParsePushbackProperty checks ParsePushback against gRPC's retry
// design (A6): one decimal value is a delay in milliseconds; a negative,
// malformed or repeated value means "do not retry"; none means "no hint".
func TestParsePushbackProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		switch rapid.IntRange(0, 3).Draw(t, "kind") {
		case 0: // a number, negative or not, possibly beyond any duration
			n := rapid.Int64().Draw(t, "n")
			d, retry, present := grpcguard.ParsePushback([]string{strconv.FormatInt(n, 10)})
			if !present {
				t.Fatalf("%d: not present", n)
			}
			if n < 0 {
				if retry {
					t.Fatalf("%d: retry, want do not retry", n)
				}
				return
			}
			want := time.Duration(math.MaxInt64)
			if n <= math.MaxInt64/int64(time.Millisecond) {
				want = time.Duration(n) * time.Millisecond
			}
			if !retry || d != want {
				t.Fatalf("%d: %v %v, want %v true", n, d, retry, want)
			}
		case 1: // any string
			s := rapid.String().Draw(t, "s")
			d, retry, present := grpcguard.ParsePushback([]string{s})
			digits := s != ""
			for _, c := range s {
				digits = digits && c >= '0' && c <= '9'
			}
			if !present || retry != digits {
				t.Fatalf("%q: retry %v present %v, want retry %v", s, retry, present, digits)
			}
			if !digits && d != 0 {
				t.Fatalf("%q: delay %v with no retry", s, d)
			}
		case 2: // several values
			vs := rapid.SliceOfN(rapid.StringMatching(`[0-9]{1,4}`), 2, 4).Draw(t, "vs")
			if _, retry, present := grpcguard.ParsePushback(vs); retry || !present {
				t.Fatalf("%q: retry %v present %v, want do not retry", vs, retry, present)
			}
		case 3: // FormatPushback round-trips, rounding up, within MaxPushback
			d := time.Duration(rapid.Int64().Draw(t, "d"))
			got, retry, present := grpcguard.ParsePushback([]string{grpcguard.FormatPushback(d)})
			if !present {
				t.Fatal("not present")
			}
			switch {
			case d < 0:
				if retry {
					t.Fatalf("%v: retry, want do not retry", d)
				}
			case d > grpcguard.MaxPushback:
				if !retry || got != grpcguard.MaxPushback {
					t.Fatalf("%v: %v, want MaxPushback", d, got)
				}
			default:
				if !retry || got < d || got-d >= time.Millisecond {
					t.Fatalf("%v: %v, want d rounded up to a millisecond", d, got)
				}
			}
		}
	})
	if _, _, present := grpcguard.ParsePushback(nil); present {
		t.Fatal("no value: present")
	}
}

// TestRetryDecisionProperty checks which failed attempts Client.Unary
// retries against a model of the rules: a negative or malformed pushback
// never; otherwise RetryCodes always, ResourceExhausted with a pushback
// always, IdempotentCodes for idempotent methods; nothing else.
func TestRetryDecisionProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		code := codes.Code(rapid.IntRange(1, 18).Draw(t, "code"))
		pb := rapid.SampledFrom([][]string{nil, {"0"}, {"1"}, {"-1"}, {"x"}, {""}, {"1", "1"}}).Draw(t, "pushback")
		idem := rapid.Bool().Draw(t, "idempotent")
		sent := rapid.Bool().Draw(t, "sent")      // the attempt reached a connection
		marked := rapid.Bool().Draw(t, "refused") // the server's admission refused it
		trust := rapid.Bool().Draw(t, "retryRefused")
		retryCodes := rapid.SliceOfDistinct(rapid.IntRange(1, 16), func(i int) int { return i }).Draw(t, "retryCodes")
		cfg := grpcguard.ClientConfig{Policy: backoff.Policy{Base: time.Microsecond, Cap: time.Microsecond, MaxAttempts: 3}, RetryRefused: trust}
		inRetry := false
		for _, c := range retryCodes {
			cfg.RetryCodes = append(cfg.RetryCodes, codes.Code(c))
			inRetry = inRetry || codes.Code(c) == code
		}
		if len(retryCodes) == 0 {
			cfg.RetryCodes = nil // the default: Unavailable
			inRetry = code == codes.Unavailable
		}
		if idem {
			cfg.IdempotentMethods = []string{checkMethod}
		}
		cl, err := grpcguard.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, retry, present := grpcguard.ParsePushback(pb)
		idemCode := code == codes.Unavailable || code == codes.ResourceExhausted || code == codes.Aborted || code == codes.DeadlineExceeded
		want := 1
		mayHaveRun := !idem && sent && !(marked && trust)
		if !(present && !retry) && !mayHaveRun && (inRetry || code == codes.ResourceExhausted && present || idem && idemCode) {
			want = 3
		}
		calls := 0
		err = cl.Unary(context.Background(), checkMethod, nil, nil, nil,
			func(_ context.Context, _ string, _, _ any, _ *grpc.ClientConn, opts ...grpc.CallOption) error {
				calls++
				for _, o := range opts {
					if tr, ok := o.(grpc.TrailerCallOption); ok {
						md := metadata.MD{}
						if pb != nil {
							md[grpcguard.PushbackKey] = pb
						}
						if marked {
							md[grpcguard.RefusedKey] = []string{"queue_full"}
						}
						*tr.TrailerAddr = md
					}
					if p, ok := o.(grpc.PeerCallOption); ok && sent {
						p.PeerAddr.Addr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
					}
				}
				return status.Error(code, "failed")
			})
		if calls != want {
			t.Fatalf("%d attempts, want %d", calls, want)
		}
		if status.Code(err) != code {
			t.Fatalf("code %v, want %v", status.Code(err), code)
		}
	})
}
