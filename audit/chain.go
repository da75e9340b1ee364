package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The hash chain.
//
// Each environment's events (and the trail of unbound refusals, environment
// "") form one chain, in the order the store appended them: the event with
// Seq n (1, 2, 3, … without gaps) carries PrevHash, the Hash of event n-1
// ("" for event 1), and Hash, the sha256 of its canonical form, which
// includes PrevHash. Editing, deleting, inserting or reordering events
// therefore breaks a link that Chain reports, unless whoever did it also
// rewrote every later hash; a signed Checkpoint of an earlier head, kept
// by the operator, catches that too.
//
// The canonical form, version 1 (ChainVersion), is the JSON object
//
//	{"action","actor","credentialId","details","environment","errorCode",
//	 "name","outcome","prevHash","requestId","seq","target","time","v","version"}
//
// with exactly those keys, in that (byte) order, no insignificant
// whitespace, every key present ("" for empty strings, {} for no details),
// details' keys in byte order, "v" the number 1, "seq" an integer, "time"
// UTC with microseconds as TimeLayout writes it, and strings as Go's
// encoding/json writes them with HTML escaping off: '"' and '\' escaped,
// control characters as \n, \r, \t, \b, \f or \u00XX (lowercase hex),
// U+2028 and U+2029 as \u2028 and \u2029, everything else as UTF-8 (a
// run of bytes that is not UTF-8 is first replaced by one U+FFFD, as Go's
// strings.ToValidUTF8 does, so every string has one form). IDs are
// not part of it: they are the database's, with gaps; Seq is the chain's.
// A later form would carry another "v" and be told apart by it.

// ChainVersion is the version of the canonical form that Canonical writes.
const ChainVersion = 1

// TimeLayout is how the canonical form (and the store) writes times.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// HashPrefix starts every chain hash: "sha256:" and 64 lowercase hex digits.
const HashPrefix = "sha256:"

// canonicalEvent is the canonical form; its fields are in byte order of
// their JSON names, which is the order encoding/json writes them in.
type canonicalEvent struct {
	Action       string            `json:"action"`
	Actor        string            `json:"actor"`
	CredentialID string            `json:"credentialId"`
	Details      map[string]string `json:"details"`
	Environment  string            `json:"environment"`
	ErrorCode    string            `json:"errorCode"`
	Name         string            `json:"name"`
	Outcome      string            `json:"outcome"`
	PrevHash     string            `json:"prevHash"`
	RequestID    string            `json:"requestId"`
	Seq          int64             `json:"seq"`
	Target       string            `json:"target"`
	Time         string            `json:"time"`
	V            int               `json:"v"`
	Version      string            `json:"version"`
}

// Normalize returns ev as the store keeps it and the canonical form sees
// it: time in UTC truncated to microseconds, and every string valid UTF-8
// (a run of invalid bytes becomes one U+FFFD). The canonical form of an
// event and of its normalised self are the same, and what the store keeps
// reads back as what was hashed.
func (ev Event) Normalize() Event {
	ev.Time = ev.Time.UTC().Truncate(time.Microsecond)
	for _, s := range []*string{&ev.Environment, &ev.Actor, &ev.CredentialID, &ev.Action, &ev.Target,
		&ev.Name, &ev.Version, &ev.ErrorCode, &ev.RequestID, &ev.PrevHash} {
		*s = strings.ToValidUTF8(*s, "\uFFFD")
	}
	ev.Outcome = Outcome(strings.ToValidUTF8(string(ev.Outcome), "\uFFFD"))
	if len(ev.Details) > 0 {
		d := make(map[string]string, len(ev.Details))
		for k, v := range ev.Details {
			d[strings.ToValidUTF8(k, "\uFFFD")] = strings.ToValidUTF8(v, "\uFFFD")
		}
		ev.Details = d
	}
	return ev
}

// Canonical returns the canonical form of ev (version ChainVersion), from
// its Seq, PrevHash and content; ID and Hash are not part of it.
func (ev Event) Canonical() []byte {
	ev = ev.Normalize()
	details := ev.Details
	if details == nil {
		details = map[string]string{}
	}
	c := canonicalEvent{
		Action: ev.Action, Actor: ev.Actor, CredentialID: ev.CredentialID, Details: details,
		Environment: ev.Environment, ErrorCode: ev.ErrorCode, Name: ev.Name, Outcome: string(ev.Outcome),
		PrevHash: ev.PrevHash, RequestID: ev.RequestID, Seq: ev.Seq, Target: ev.Target,
		Time: ev.Time.UTC().Format(TimeLayout), V: ChainVersion, Version: ev.Version,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		// Strings and a map of strings always encode.
		panic(fmt.Sprintf("audit: canonical form: %v", err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// ComputeHash returns the chain hash of ev: "sha256:" and the hex sha256 of
// its canonical form.
func (ev Event) ComputeHash() string {
	sum := sha256.Sum256(ev.Canonical())
	return HashPrefix + hex.EncodeToString(sum[:])
}

// Link returns ev placed after head in its chain: Seq, PrevHash and Hash
// set. ev should be normalised (Normalize) first, so that what is stored is
// what was hashed.
func (ev Event) Link(head Head) Event {
	ev.Seq, ev.PrevHash = head.Seq+1, head.Hash
	ev.Hash = ev.ComputeHash()
	return ev
}

// Head is the last event of a chain: its Seq (the number of events in the
// chain) and Hash. The zero Head is an empty chain.
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// BrokenLink is the first place a chain does not hold, as Chain reports it.
type BrokenLink struct {
	// ID and Seq are the stored id and chain position of the event at which
	// the chain breaks (the event as stored, which may itself be forged).
	ID  int64 `json:"id"`
	Seq int64 `json:"seq"`
	// WantSeq is the position the next event should have had.
	WantSeq int64 `json:"wantSeq"`
	// Problem is one of the Problem constants; Detail explains it.
	Problem string `json:"problem"`
	Detail  string `json:"detail"`
}

// Problems a chain can have.
const (
	// ProblemSequence: the event's Seq is not the next one. Events were
	// deleted (a gap), inserted or reordered.
	ProblemSequence = "sequence"
	// ProblemLink: the event's PrevHash is not the hash of the event before
	// it. The previous event was replaced, or the events were reordered.
	ProblemLink = "link"
	// ProblemHash: the event's content does not hash to its Hash. The event
	// was edited after it was written.
	ProblemHash = "hash"
	// ProblemCheckpoint: the chain does not pass through a signed
	// checkpoint, or ends before it. History was rewritten (every later
	// hash recomputed) or truncated.
	ProblemCheckpoint = "checkpoint"
	// ProblemEnvironment: the event belongs to another environment's chain.
	ProblemEnvironment = "environment"
)

func (b *BrokenLink) Error() string {
	return fmt.Sprintf("audit chain broken at event id %d (seq %d): %s: %s", b.ID, b.Seq, b.Problem, b.Detail)
}

// Chain checks events of one environment's chain, fed in order, and reports
// the first broken link. The zero value expects a chain from its first
// event. It holds only the running head, so it checks a trail of any size
// in constant memory.
type Chain struct {
	environment string
	head        Head
	checkpoints map[int64]string // seq → hash the chain must pass through
	lastID      int64
}

// NewChain returns a Chain for environment's trail starting at its first
// event.
func NewChain(environment string) *Chain { return &Chain{environment: environment} }

// Expect adds a checkpoint the chain must pass through: its event at
// cp.Count must have hash cp.HeadHash. A checkpoint of an empty chain
// (Count 0) is trivially met.
func (c *Chain) Expect(cp Checkpoint) {
	if cp.Count == 0 {
		return
	}
	if c.checkpoints == nil {
		c.checkpoints = map[int64]string{}
	}
	c.checkpoints[cp.Count] = cp.HeadHash
}

// Head is the head of what has been checked so far.
func (c *Chain) Head() Head { return c.head }

// Next checks ev, the next event, and returns a *BrokenLink when the chain
// does not hold there. After a broken link the Chain should not be used.
func (c *Chain) Next(ev Event) error {
	want := c.head.Seq + 1
	broken := func(problem, format string, args ...any) error {
		return &BrokenLink{ID: ev.ID, Seq: ev.Seq, WantSeq: want, Problem: problem, Detail: fmt.Sprintf(format, args...)}
	}
	switch {
	case ev.Environment != c.environment:
		return broken(ProblemEnvironment, "event of environment %q in the chain of %q", ev.Environment, c.environment)
	case ev.Seq != want:
		how := "events before it were deleted, or moved after it"
		if ev.Seq < want {
			how = "it repeats or goes back: events were inserted or reordered"
		}
		return broken(ProblemSequence, "want seq %d, got %d: %s", want, ev.Seq, how)
	case ev.PrevHash != c.head.Hash:
		return broken(ProblemLink, "names previous hash %q, but event seq %d hashes to %q: the previous event was changed, or events were reordered",
			ev.PrevHash, c.head.Seq, c.head.Hash)
	}
	if got := ev.ComputeHash(); got != ev.Hash {
		return broken(ProblemHash, "content hashes to %s, stored hash is %s: the event was edited", got, ev.Hash)
	}
	if h, ok := c.checkpoints[ev.Seq]; ok && h != ev.Hash {
		return broken(ProblemCheckpoint, "a signed checkpoint says event seq %d hashes to %s, the trail says %s: history was rewritten",
			ev.Seq, h, ev.Hash)
	}
	c.head, c.lastID = Head{Seq: ev.Seq, Hash: ev.Hash}, ev.ID
	return nil
}

// End reports whether the chain reached every checkpoint it was told to
// expect, and nil when it did: a trail that ends early was truncated.
func (c *Chain) End() error {
	var first int64
	for seq := range c.checkpoints {
		if seq > c.head.Seq && (first == 0 || seq < first) {
			first = seq
		}
	}
	if first == 0 {
		return nil
	}
	return &BrokenLink{ID: c.lastID, Seq: c.head.Seq, WantSeq: c.head.Seq + 1, Problem: ProblemCheckpoint,
		Detail: fmt.Sprintf("the trail ends at seq %d, but a signed checkpoint names event seq %d (%s): events were removed from the end",
			c.head.Seq, first, c.checkpoints[first])}
}
