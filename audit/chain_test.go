package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/audit"
)

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))

func sample() audit.Event {
	return audit.Event{ID: 99, Time: t0, Environment: "prod", Actor: "alice", CredentialID: "key_1",
		Action: "artifact.promote", Target: "fraud-detector@1.2.0", Name: "fraud-detector", Version: "1.2.0",
		Outcome: audit.Denied, ErrorCode: "gate_failed", RequestID: "req-1",
		Details: map[string]string{"z": "last", "a": "first <&>"}}
}

// TestCanonicalForm pins version 1 of the canonical form byte for byte: a
// change here breaks every stored chain.
func TestCanonicalForm(t *testing.T) {
	ev := sample()
	ev.Seq, ev.PrevHash = 7, "sha256:"+strings.Repeat("ab", 32)
	want := `{"action":"artifact.promote","actor":"alice","credentialId":"key_1","details":{"a":"first <&>","z":"last"},` +
		`"environment":"prod","errorCode":"gate_failed","name":"fraud-detector","outcome":"denied",` +
		`"prevHash":"sha256:abababababababababababababababababababababababababababababababab","requestId":"req-1",` +
		`"seq":7,"target":"fraud-detector@1.2.0","time":"2026-03-14T14:09:26.535897Z","v":1,"version":"1.2.0"}`
	if got := string(ev.Canonical()); got != want {
		t.Fatalf("canonical form\n got %s\nwant %s", got, want)
	}
	if got, want := ev.ComputeHash(), "sha256:c317e08fb6ecc2f7258d31422490175d23f51aae33b8e1217955e06855c7dbd7"; got != want {
		t.Errorf("hash %s, want %s", got, want)
	}
	// ID, Hash and the time zone are not part of it.
	other := ev
	other.ID, other.Hash, other.Time = 1, "sha256:x", ev.Time.UTC()
	if string(other.Canonical()) != want {
		t.Errorf("ID, Hash or the zone changed the canonical form")
	}
}

func TestCanonicalEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		edit func(*audit.Event)
		want string // a fragment of the canonical form
	}{
		{"no details is {}", func(e *audit.Event) { e.Details = nil }, `"details":{}`},
		{"empty details is {}", func(e *audit.Event) { e.Details = map[string]string{} }, `"details":{}`},
		{"empty strings are present", func(e *audit.Event) { e.ErrorCode = "" }, `"errorCode":""`},
		{"first event has an empty prevHash", func(e *audit.Event) { e.PrevHash = "" }, `"prevHash":""`},
		{"no HTML escaping", func(e *audit.Event) { e.Actor = "<a&b>" }, `"actor":"<a&b>"`},
		{"control characters", func(e *audit.Event) { e.Actor = "a\nb\x01" }, `"actor":"a\nb\u0001"`},
		{"line separators escaped", func(e *audit.Event) { e.Actor = "a\u2028b" }, `"actor":"a\u2028b"`},
		{"quotes and backslashes", func(e *audit.Event) { e.Actor = `"\` }, `"actor":"\"\\"`},
		{"non-ASCII as UTF-8", func(e *audit.Event) { e.Actor = "zoë" }, `"actor":"zoë"`},
		{"invalid UTF-8 as U+FFFD", func(e *audit.Event) { e.Actor = "a\xff\xfeb" }, `"actor":"a` + "\uFFFD" + `b"`},
		{"microseconds, UTC", func(e *audit.Event) { e.Time = time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC) }, `"time":"2026-01-02T03:04:05.000000Z"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := sample()
			tc.edit(&ev)
			if got := string(ev.Canonical()); !strings.Contains(got, tc.want) {
				t.Errorf("canonical form %s lacks %s", got, tc.want)
			}
		})
	}
}

// TestNormalize: what the store keeps hashes as what was hashed.
func TestNormalize(t *testing.T) {
	ev := sample()
	ev.Actor, ev.Details = "a\xffb", map[string]string{"k\xfe": "v\xfd"}
	n := ev.Normalize()
	if n.Actor != "a\uFFFDb" || n.Details["k\uFFFD"] != "v\uFFFD" || n.Time.Location() != time.UTC || n.Time.Nanosecond()%1000 != 0 {
		t.Fatalf("Normalize = %+v", n)
	}
	if ev.Details["k\xfe"] != "v\xfd" {
		t.Errorf("Normalize changed the caller's details map")
	}
	if n.ComputeHash() != ev.ComputeHash() {
		t.Errorf("normalising changed the hash")
	}
}

// chainOf links n events of env.
func chainOf(env string, n int) []audit.Event {
	var (
		out  []audit.Event
		head audit.Head
	)
	for i := range n {
		ev := sample()
		ev.ID, ev.Environment, ev.Time = int64(10*(i+1)), env, t0.Add(time.Duration(i)*time.Minute)
		ev.Actor = string(rune('a' + i))
		ev = ev.Normalize().Link(head)
		head = audit.Head{Seq: ev.Seq, Hash: ev.Hash}
		out = append(out, ev)
	}
	return out
}

// walk feeds events to a chain of env expecting cps, and returns the first
// broken link (nil when it holds) and the head.
func walk(env string, events []audit.Event, cps ...audit.Checkpoint) (*audit.BrokenLink, audit.Head) {
	c := audit.NewChain(env)
	for _, cp := range cps {
		c.Expect(cp)
	}
	var b *audit.BrokenLink
	for _, ev := range events {
		if err := c.Next(ev); err != nil {
			if !errors.As(err, &b) {
				panic(err)
			}
			return b, c.Head()
		}
	}
	if err := c.End(); err != nil {
		errors.As(err, &b)
	}
	return b, c.Head()
}

func TestChain(t *testing.T) {
	good := chainOf("prod", 5)
	headOf := func(evs []audit.Event, seq int) audit.Checkpoint {
		return audit.NewCheckpoint("prod", audit.Head{Seq: evs[seq-1].Seq, Hash: evs[seq-1].Hash}, t0)
	}
	// rewritten is good with event 3 edited and every hash from there recomputed:
	// what an attacker with database access and no signing key can do.
	rewritten := append([]audit.Event(nil), good...)
	rewritten[2].Actor = "mallory"
	for i := 2; i < len(rewritten); i++ {
		rewritten[i].PrevHash = rewritten[i-1].Hash
		rewritten[i].Hash = rewritten[i].ComputeHash()
	}

	tests := []struct {
		name        string
		events      func() []audit.Event
		checkpoints []audit.Checkpoint
		wantSeq     int64 // seq of the broken event; 0: the chain holds
		problem     string
	}{
		{"intact", func() []audit.Event { return good }, nil, 0, ""},
		{"empty", func() []audit.Event { return nil }, nil, 0, ""},
		{"intact through a checkpoint", func() []audit.Event { return good }, []audit.Checkpoint{headOf(good, 3)}, 0, ""},
		{"edited", func() []audit.Event {
			evs := clone(good)
			evs[2].Actor = "mallory"
			return evs
		}, nil, 3, audit.ProblemHash},
		{"edited with its own hash recomputed", func() []audit.Event {
			evs := clone(good)
			evs[2].Actor = "mallory"
			evs[2].Hash = evs[2].ComputeHash()
			return evs
		}, nil, 4, audit.ProblemLink},
		{"deleted", func() []audit.Event { return append(clone(good[:2]), good[3:]...) }, nil, 4, audit.ProblemSequence},
		{"first deleted", func() []audit.Event { return clone(good[1:]) }, nil, 2, audit.ProblemSequence},
		{"reordered", func() []audit.Event {
			evs := clone(good)
			evs[1], evs[2] = evs[2], evs[1]
			return evs
		}, nil, 3, audit.ProblemSequence},
		{"reordered with seq renumbered", func() []audit.Event {
			evs := clone(good)
			evs[1], evs[2] = evs[2], evs[1]
			evs[1].Seq, evs[2].Seq = 2, 3
			return evs
		}, nil, 2, audit.ProblemLink},
		{"inserted", func() []audit.Event {
			evs := clone(good)
			forged := evs[1]
			return append(evs[:2], append([]audit.Event{forged}, evs[2:]...)...)
		}, nil, 2, audit.ProblemSequence},
		{"moved from another environment", func() []audit.Event {
			evs := clone(good)
			evs[1].Environment = "dev"
			return evs
		}, nil, 2, audit.ProblemEnvironment},
		{"rewritten, no checkpoint: undetectable alone", func() []audit.Event { return rewritten }, nil, 0, ""},
		{"rewritten, checkpoint before the edit", func() []audit.Event { return rewritten }, []audit.Checkpoint{headOf(good, 2)}, 0, ""},
		{"rewritten, checkpoint after the edit", func() []audit.Event { return rewritten }, []audit.Checkpoint{headOf(good, 4)}, 4, audit.ProblemCheckpoint},
		{"truncated below a checkpoint", func() []audit.Event { return clone(good[:3]) }, []audit.Checkpoint{headOf(good, 5)}, 3, audit.ProblemCheckpoint},
		{"checkpoint of an empty chain", func() []audit.Event { return nil },
			[]audit.Checkpoint{audit.NewCheckpoint("prod", audit.Head{}, t0)}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, head := walk("prod", tc.events(), tc.checkpoints...)
			switch {
			case tc.wantSeq == 0 && b != nil:
				t.Fatalf("chain broken: %v", b)
			case tc.wantSeq == 0:
				if evs := tc.events(); len(evs) > 0 && head.Hash != evs[len(evs)-1].Hash {
					t.Errorf("head %+v, want the last event's", head)
				}
			case b == nil:
				t.Fatalf("chain holds, want %s broken at seq %d", tc.problem, tc.wantSeq)
			case b.Seq != tc.wantSeq || b.Problem != tc.problem:
				t.Errorf("broken at seq %d (%s: %s), want seq %d (%s)", b.Seq, b.Problem, b.Detail, tc.wantSeq, tc.problem)
			}
		})
	}
}

func clone(evs []audit.Event) []audit.Event { return append([]audit.Event(nil), evs...) }

func TestCheckpointPayload(t *testing.T) {
	cp := audit.NewCheckpoint("prod", audit.Head{Seq: 42, Hash: "sha256:" + strings.Repeat("0f", 32)}, t0)
	want := `{"count":42,"environment":"prod","headHash":"sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",` +
		`"time":"2026-03-14T14:09:26.535897Z","type":"https://stagegate.dev/audit/checkpoint/v1"}`
	if got := string(cp.Payload()); got != want {
		t.Fatalf("payload\n got %s\nwant %s", got, want)
	}
	back, err := audit.ParseCheckpoint([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	if back != cp {
		t.Errorf("ParseCheckpoint = %+v, want %+v", back, cp)
	}
	empty := audit.NewCheckpoint("dev", audit.Head{}, t0)
	if _, err := audit.ParseCheckpoint(empty.Payload()); err != nil {
		t.Errorf("checkpoint of an empty chain: %v", err)
	}
}

func TestParseCheckpointRefuses(t *testing.T) {
	good := `{"count":1,"environment":"dev","headHash":"sha256:` + strings.Repeat("a", 64) + `","time":"2026-03-14T14:09:26.535897Z","type":"https://stagegate.dev/audit/checkpoint/v1"}`
	if _, err := audit.ParseCheckpoint([]byte(good)); err != nil {
		t.Fatalf("the good payload: %v", err)
	}
	tests := map[string]string{
		"trailing newline":  good + "\n",
		"spaces":            strings.Replace(good, `"count":1`, `"count": 1`, 1),
		"key order":         `{"environment":"dev",` + strings.Replace(good[1:], `"environment":"dev",`, "", 1),
		"unknown field":     strings.Replace(good, `{`, `{"extra":1,`, 1),
		"other type":        strings.Replace(good, "checkpoint/v1", "checkpoint/v2", 1),
		"bad time":          strings.Replace(good, "14:09:26.535897Z", "14:09:26Z", 1),
		"negative count":    strings.Replace(good, `"count":1`, `"count":-1`, 1),
		"short hash":        strings.Replace(good, strings.Repeat("a", 64), "aa", 1),
		"upper-case hash":   strings.Replace(good, strings.Repeat("a", 64), strings.Repeat("A", 64), 1),
		"empty with a hash": strings.Replace(good, `"count":1`, `"count":0`, 1),
		"not JSON":          "checkpoint",
		"too large":         strings.Repeat(" ", audit.MaxCheckpointSize+1),
	}
	for name, payload := range tests {
		t.Run(name, func(t *testing.T) {
			if cp, err := audit.ParseCheckpoint([]byte(payload)); err == nil {
				t.Errorf("ParseCheckpoint accepted %q as %+v", payload, cp)
			}
		})
	}
}

// FuzzParseCheckpoint: a checkpoint file comes from wherever an operator
// kept it. Whatever parses is exactly what Payload writes.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add(audit.NewCheckpoint("prod", audit.Head{Seq: 3, Hash: "sha256:" + strings.Repeat("1", 64)}, t0).Payload())
	f.Add(audit.NewCheckpoint("", audit.Head{}, t0).Payload())
	f.Add([]byte(`{"count":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := audit.ParseCheckpoint(data)
		if err != nil {
			return
		}
		if string(cp.Payload()) != string(data) {
			t.Fatalf("parsed %q, which writes back as %q", data, cp.Payload())
		}
	})
}

// FuzzChain: an export comes from a server the verifier does not trust.
// Whatever its lines say, checking them never panics, and an intact chain
// stays intact when fed again.
func FuzzChain(f *testing.F) {
	var lines []byte
	for _, ev := range chainOf("prod", 3) {
		b, _ := json.Marshal(ev)
		lines = append(append(lines, b...), '\n')
	}
	f.Add(lines)
	f.Add([]byte(`{"seq":1,"environment":"prod","hash":"sha256:00"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var events []audit.Event
		for _, line := range bytes.Split(data, []byte("\n")) {
			var ev audit.Event
			if json.Unmarshal(line, &ev) == nil {
				events = append(events, ev)
			}
		}
		first, _ := walk("prod", events)
		again, _ := walk("prod", events)
		if (first == nil) != (again == nil) {
			t.Fatalf("the same events checked twice: %v, then %v", first, again)
		}
	})
}
