// Package stormotel exports the Stats of stormguard's primitives as
// OpenTelemetry metrics, read only when a reader collects.
package stormotel
