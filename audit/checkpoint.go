package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CheckpointType names version 1 of the checkpoint payload.
const CheckpointType = "https://stagegate.dev/audit/checkpoint/v1"

// Checkpoint is a statement, signed with an environment's key, that the
// environment's audit chain had Count events and ended in HeadHash at Time.
// Kept by an operator, it pins history: a later trail must pass through it
// (Chain.Expect), so rewriting or truncating what came before is caught
// even by someone who recomputed every hash.
type Checkpoint struct {
	Type        string    `json:"type"` // CheckpointType
	Environment string    `json:"environment"`
	Count       int64     `json:"count"`    // the head's Seq; 0 for an empty chain
	HeadHash    string    `json:"headHash"` // the head's Hash; "" for an empty chain
	Time        time.Time `json:"time"`
}

// checkpointPayload is the signed form; fields in byte order of their names.
type checkpointPayload struct {
	Count       int64  `json:"count"`
	Environment string `json:"environment"`
	HeadHash    string `json:"headHash"`
	Time        string `json:"time"`
	Type        string `json:"type"`
}

// NewCheckpoint is the checkpoint of environment's chain at head, made at
// now.
func NewCheckpoint(environment string, head Head, now time.Time) Checkpoint {
	return Checkpoint{Type: CheckpointType, Environment: environment, Count: head.Seq, HeadHash: head.Hash,
		Time: now.UTC().Truncate(time.Microsecond)}
}

// Payload is the exact bytes that are signed: compact JSON with keys in
// byte order (count, environment, headHash, time, type) and the time as
// TimeLayout writes it, no trailing newline. It is what `cosign
// verify-blob` checks, so it is written to a file byte for byte.
func (c Checkpoint) Payload() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(checkpointPayload{Count: c.Count, Environment: c.Environment, HeadHash: c.HeadHash,
		Time: c.Time.UTC().Format(TimeLayout), Type: c.Type}); err != nil {
		panic(fmt.Sprintf("audit: checkpoint payload: %v", err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// MaxCheckpointSize bounds a checkpoint payload a reader accepts.
const MaxCheckpointSize = 4096

// ParseCheckpoint reads a signed payload. It accepts only the exact bytes
// Payload writes (so the signature and the values read cannot disagree on
// what was meant) of a version 1 checkpoint whose fields are well formed.
func ParseCheckpoint(payload []byte) (Checkpoint, error) {
	if len(payload) > MaxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("checkpoint: over %d bytes", MaxCheckpointSize)
	}
	var p checkpointPayload
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	if p.Type != CheckpointType {
		return Checkpoint{}, fmt.Errorf("checkpoint: type %q, want %q", p.Type, CheckpointType)
	}
	at, err := time.Parse(TimeLayout, p.Time)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: time %q: want %s", p.Time, TimeLayout)
	}
	switch {
	case p.Count < 0:
		return Checkpoint{}, errors.New("checkpoint: negative count")
	case p.Count == 0 && p.HeadHash != "":
		return Checkpoint{}, errors.New("checkpoint: an empty chain has no head hash")
	case p.Count > 0 && !validHash(p.HeadHash):
		return Checkpoint{}, fmt.Errorf("checkpoint: head hash %q is not %s<64 hex>", p.HeadHash, HashPrefix)
	}
	c := Checkpoint{Type: p.Type, Environment: p.Environment, Count: p.Count, HeadHash: p.HeadHash, Time: at}
	if !bytes.Equal(c.Payload(), payload) {
		return Checkpoint{}, errors.New("checkpoint: not in canonical form (key order, spacing or escaping differ)")
	}
	return c, nil
}

func validHash(h string) bool {
	hexPart, ok := strings.CutPrefix(h, HashPrefix)
	if !ok || len(hexPart) != 64 {
		return false
	}
	for _, r := range hexPart {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
