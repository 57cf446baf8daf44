package stormotel

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stormguard/stormguard/backoff"
	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	"github.com/stormguard/stormguard/lease"
	"github.com/stormguard/stormguard/remirror"
	"github.com/stormguard/stormguard/shed"
)

// leaves lists the exported leaf fields of a struct type, as paths such as
// "Shed.QueueFull" or "ByState[2]": nested structs are walked (time.Time
// is a leaf), arrays are listed element by element.
func leaves(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		p := prefix + f.Name
		switch {
		case f.Type == reflect.TypeFor[time.Time]():
			out = append(out, p)
		case f.Type.Kind() == reflect.Struct:
			out = append(out, leaves(f.Type, p+".")...)
		case f.Type.Kind() == reflect.Array:
			for i := range f.Type.Len() {
				out = append(out, p+"["+strconv.Itoa(i)+"]")
			}
		default:
			out = append(out, p)
		}
	}
	return out
}

func sources[S any](tables ...[]series[S]) map[string]bool {
	m := map[string]bool{}
	for _, t := range tables {
		for _, s := range t {
			m[s.source] = true
		}
	}
	return m
}

// TestEveryStatsFieldExported: every exported field of every Stats struct
// is read by some series, so a field added later fails this test until it
// is exported (and documented).
func TestEveryStatsFieldExported(t *testing.T) {
	cases := []struct {
		typ     reflect.Type
		sources map[string]bool
	}{
		{reflect.TypeFor[shed.Stats](), nil},
		{reflect.TypeFor[shed.AdaptiveStats](), sources(adaptiveTable)},
		{reflect.TypeFor[backoff.BudgetStats](), sources(budgetTable)},
		{reflect.TypeFor[backoff.BreakerStats](), sources(breakerTable)},
		{reflect.TypeFor[backoff.ThrottleStats](), sources(throttleTable)},
		{reflect.TypeFor[backoff.HedgeStats](), sources(hedgeTable)},
		{reflect.TypeFor[lease.Stats](), sources(leaseTable)},
		{reflect.TypeFor[lease.Progress](), sources(recoveryTable)},
		{reflect.TypeFor[fence.Stats](), sources(fenceTable)},
		{reflect.TypeFor[remirror.Stats](), sources(remirrorTable)},
	}
	for _, k := range shedKinds {
		cases = append(cases, struct {
			typ     reflect.Type
			sources map[string]bool
		}{reflect.TypeFor[shed.Stats](), sources(shedTables[k])})
	}
	for _, c := range cases[1:] {
		fields := leaves(c.typ, "")
		if len(fields) == 0 {
			t.Fatalf("%v: no fields", c.typ)
		}
		for _, f := range fields {
			if !c.sources[f] {
				t.Errorf("%v.%s is not exported as a metric", c.typ, f)
			}
		}
		for s := range c.sources {
			if !contains(fields, s) {
				t.Errorf("%v: series reads %q, which is no field", c.typ, s)
			}
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestEveryKindNamed: the states and event kinds used as attribute values
// are every kind the core defines, under their own names.
func TestEveryKindNamed(t *testing.T) {
	for i := 1; ; i++ {
		k := dnsplan.EventKind(i)
		if strings.HasPrefix(k.String(), "EventKind(") {
			if i != len(enactorKinds) {
				t.Errorf("dnsplan has %d event kinds, enactorKinds %d", i-1, len(enactorKinds)-1)
			}
			break
		}
		if i >= len(enactorKinds) || enactorKinds[i] != k || enactorTable[i].attr.Value.AsString() != k.String() {
			t.Errorf("dnsplan.EventKind %v is not counted under its name", k)
		}
	}
	for i, k := range plannerKinds {
		if int(k.kind) != i {
			t.Errorf("plannerKinds[%d] is kind %d", i, k.kind)
		}
	}
	for i := range remirrorStates {
		if remirrorStates[i] != remirror.State(i) || strings.HasPrefix(remirror.State(i).String(), "State(") {
			t.Errorf("remirrorStates[%d] = %v", i, remirrorStates[i])
		}
	}
	if s := remirror.State(len(remirrorStates)).String(); !strings.HasPrefix(s, "State(") {
		t.Errorf("remirror has a state %q this package does not export", s)
	}
	if s := backoff.BreakerState(len(breakerStates)).String(); !strings.HasPrefix(s, "BreakerState(") {
		t.Errorf("backoff has a breaker state %q this package does not export", s)
	}
	if n := reflect.TypeFor[shed.ShedCounts]().NumField(); n != len(shedReasons) {
		t.Errorf("shed.ShedCounts has %d fields, shedReasons %d", n, len(shedReasons))
	}
}

// TestInstrumentsUsedAndNamed: every instrument is fed by some series,
// every series names an instrument, and names follow the semantic
// conventions' style (lowercase, dot-separated, under stormguard.).
func TestInstrumentsUsedAndNamed(t *testing.T) {
	used := map[string]bool{}
	add := func(ms ...string) {
		for _, m := range ms {
			used[m] = true
		}
	}
	for _, k := range shedKinds {
		for _, s := range shedTables[k] {
			add(s.metric)
		}
	}
	for _, s := range adaptiveTable {
		add(s.metric)
	}
	for _, s := range budgetTable {
		add(s.metric)
	}
	for _, s := range breakerTable {
		add(s.metric)
	}
	for _, s := range throttleTable {
		add(s.metric)
	}
	for _, s := range hedgeTable {
		add(s.metric)
	}
	for _, s := range leaseTable {
		add(s.metric)
	}
	for _, s := range recoveryTable {
		add(s.metric)
	}
	for _, s := range fenceTable {
		add(s.metric)
	}
	for _, s := range remirrorTable {
		add(s.metric)
	}
	for _, s := range enactorTable {
		add(s.metric)
	}
	for _, s := range plannerTable {
		add(s.metric)
	}
	re := regexp.MustCompile(`^stormguard(\.[a-z][a-z0-9_]*)+$`)
	seen := map[string]bool{}
	for _, in := range instruments {
		if seen[in.name] {
			t.Errorf("instrument %s twice", in.name)
		}
		seen[in.name] = true
		if !used[in.name] {
			t.Errorf("instrument %s is fed by no series", in.name)
		}
		if !re.MatchString(in.name) {
			t.Errorf("instrument name %q is not in the semantic conventions' style", in.name)
		}
		if in.unit == "" || in.desc == "" {
			t.Errorf("instrument %s lacks a unit or description", in.name)
		}
	}
	for m := range used {
		if !seen[m] {
			t.Errorf("series feed %s, which is no instrument", m)
		}
	}
}

// docTable renders the metric table of the package documentation: the
// shed families once, with KIND for the primitive's name.
func docTable() string {
	src := map[string][]string{}
	addSrc := func(metric, source string) {
		if i := strings.IndexAny(source, ".["); i > 0 {
			source = source[:i] + ".*"
		}
		if !contains(src[metric], source) {
			src[metric] = append(src[metric], source)
		}
	}
	for _, k := range shedKinds {
		for _, s := range shedTables[k] {
			addSrc(s.metric, s.source)
		}
	}
	for _, t := range [][]string{
		sourcesOf(adaptiveTable), sourcesOf(budgetTable), sourcesOf(breakerTable), sourcesOf(throttleTable),
		sourcesOf(hedgeTable), sourcesOf(leaseTable), sourcesOf(recoveryTable), sourcesOf(fenceTable),
		sourcesOf(remirrorTable), sourcesOf(enactorTable), sourcesOf(plannerTable),
	} {
		for i := 0; i < len(t); i += 2 {
			addSrc(t[i], t[i+1])
		}
	}
	var b strings.Builder
	b.WriteString("//\t| metric | instrument | unit | attributes | source |\n")
	for _, in := range instruments {
		name := in.name
		if strings.HasPrefix(name, "stormguard.shed.") && !strings.HasPrefix(name, adaptivePrefix) {
			if !strings.HasPrefix(name, shedPrefix(shedKinds[0])+".") {
				continue
			}
			name = strings.Replace(name, shedKinds[0], "KIND", 1)
		}
		b.WriteString("//\t| " + name + " | " + in.kind.String() + " | " + in.unit + " | " +
			strings.Join(docAttrs[in.name], ", ") + " | " + strings.Join(src[in.name], ", ") + " |\n")
	}
	return b.String()
}

// sourcesOf lists a table's metric and source pairs, flattened.
func sourcesOf[S any](t []series[S]) []string {
	var out []string
	for _, s := range t {
		out = append(out, s.metric, s.source)
	}
	return out
}

// docAttrs are the attributes beyond stormguard.name of each instrument.
var docAttrs = func() map[string][]string {
	m := map[string][]string{}
	addAll := func(metric string, keys ...string) {
		m[metric] = append(m[metric], keys...)
	}
	for _, k := range shedKinds {
		addAll(shedPrefix(k)+".shed", "stormguard.reason")
	}
	for _, in := range instruments {
		if strings.HasPrefix(in.name, breakerPrefix+".") {
			addAll(in.name, "stormguard.key (Breakers)")
		}
	}
	for _, in := range instruments {
		if strings.HasPrefix(in.name, adaptivePrefix+".") {
			addAll(in.name, "stormguard.primitive (embedded)", "stormguard.key (Partition)")
		}
	}
	addAll(breakerPrefix+".state", "stormguard.state")
	addAll(leaseEvents, "stormguard.event")
	addAll(recoveryPrefix+".key.count", "stormguard.state")
	addAll(fenceOps, "stormguard.outcome")
	addAll(remirrorPrefix+".volume.state", "stormguard.state")
	addAll(remirrorPrefix+".actions", "stormguard.action")
	addAll(remirrorPrefix+".recoveries", "stormguard.outcome")
	addAll(remirrorPrefix+".searches.refused", "stormguard.reason")
	addAll(enactorEvents, "stormguard.event")
	addAll(plannerEvents, "stormguard.event")
	for k := range m {
		sort.Strings(m[k])
	}
	return m
}()

// TestDocTable: doc.go holds the table docTable renders, so the
// documentation lists every instrument as it is. Run with
// STORMOTEL_WRITE_DOC=1 to print it.
func TestDocTable(t *testing.T) {
	want := docTable()
	if os.Getenv("STORMOTEL_WRITE_DOC") != "" {
		t.Log("\n" + want)
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), want) {
		t.Errorf("doc.go lacks the current metric table; run STORMOTEL_WRITE_DOC=1 go test -run TestDocTable -v and paste it:\n%s", want)
	}
}
