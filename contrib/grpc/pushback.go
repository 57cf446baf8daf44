package grpcguard

import (
	"math"
	"strconv"
	"time"

	"google.golang.org/grpc/metadata"
)

// PushbackKey is the trailing-metadata key of gRPC's retry pushback: the
// server's wish, in whole milliseconds, for the delay before a retry
// (gRPC proposal A6). A negative or malformed value means "do not retry".
const PushbackKey = "grpc-retry-pushback-ms"

// RefusedKey is the trailing-metadata key a Server sets on every call its
// admission refused, before the handler ran: its value names the reason
// (RefusalReason). A Client retries a method that is not idempotent only
// when the call provably did not run: it never left the client, or, with
// ClientConfig.RetryRefused, the server's answer carries this key as a
// Server writes it (exactly one value, a reason RefusalReason returns).
// That is the server's word: a server, proxy or handler that sends this
// key for a call that ran (a handler that copies a downstream call's
// trailers into its own answer does) makes such a Client run the call
// again; a handler must not forward it.
const RefusedKey = "stormguard-refused"

// MaxPushback is the longest pushback FormatPushback writes: the largest
// 32-bit millisecond count (about 24.8 days), so that clients that parse
// the value as a 32-bit integer, as gRPC's Java and C++ clients do, read
// it as written.
const MaxPushback = time.Duration(math.MaxInt32) * time.Millisecond

// FormatPushback returns the value of PushbackKey for a delay d: d rounded
// up to whole milliseconds (so a client never retries before d has
// passed), at most MaxPushback; "-1", the "do not retry" value, for a
// negative d.
func FormatPushback(d time.Duration) string {
	if d < 0 {
		return "-1"
	}
	if d > MaxPushback {
		d = MaxPushback
	}
	ms := d / time.Millisecond
	if d%time.Millisecond != 0 {
		ms++
	}
	return strconv.FormatInt(int64(ms), 10)
}

// ParsePushback reads the pushback values of a response's trailing
// metadata (md[PushbackKey]), following gRPC's retry design (A6):
//
//   - no value: present is false, and the client's own backoff decides;
//   - exactly one value made of decimal digits only: retry is true and d is
//     that many milliseconds (saturating at the longest time.Duration);
//   - anything else (a negative number, a sign, spaces, an empty string,
//     letters, several values): present is true and retry is false: the
//     server asked not to be retried, or said something that cannot be
//     trusted to mean otherwise.
func ParsePushback(values []string) (d time.Duration, retry, present bool) {
	if len(values) == 0 {
		return 0, false, false
	}
	if len(values) != 1 || values[0] == "" {
		return 0, false, true
	}
	const maxMS = int64(math.MaxInt64 / int64(time.Millisecond))
	var ms int64
	for i := 0; i < len(values[0]); i++ {
		c := values[0][i]
		if c < '0' || c > '9' {
			return 0, false, true
		}
		if ms <= maxMS {
			ms = ms*10 + int64(c-'0')
		}
	}
	if ms > maxMS {
		return time.Duration(math.MaxInt64), true, true
	}
	return time.Duration(ms) * time.Millisecond, true, true
}

// pushbackOf is ParsePushback of md's pushback values.
func pushbackOf(md metadata.MD) (d time.Duration, retry, present bool) {
	return ParsePushback(md[PushbackKey])
}
