package gates

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// safetensors parses the header of every .safetensors file and checks that
// it describes the file exactly: dtype, shape and data_offsets agree, the
// tensors tile the data section with no gaps or overlaps, and the data
// section ends at the end of the file. A model that passes can be
// memory-mapped without surprises.
type safetensors struct{ maxHeader int64 }

type safetensorsParams struct {
	MaxHeaderBytes int64 `yaml:"max_header_bytes"`
}

// defaultMaxSafetensorsHeader is the limit the reference implementation
// enforces (100 MB).
const defaultMaxSafetensorsHeader = 100_000_000

func newSafetensorsCheck(n *yaml.Node) (Check, error) {
	p := safetensorsParams{MaxHeaderBytes: defaultMaxSafetensorsHeader}
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	if p.MaxHeaderBytes <= 0 || p.MaxHeaderBytes > 1<<30 {
		return nil, errAt(n, "max_header_bytes: want 1..%d, got %d", 1<<30, p.MaxHeaderBytes)
	}
	return safetensors{maxHeader: p.MaxHeaderBytes}, nil
}

func (safetensors) Name() string { return "safetensors" }

// SafetensorsFile summarises one checked file.
type SafetensorsFile struct {
	Path        string `json:"path"`
	HeaderBytes uint64 `json:"headerBytes"`
	Tensors     int    `json:"tensors"`
	Problem     string `json:"problem,omitempty"`
}

func (c safetensors) Run(ctx context.Context, s *Subject) Result {
	var files []SafetensorsFile
	bad := 0
	for _, f := range s.Files {
		if strings.ToLower(path.Ext(f.Path)) != ".safetensors" {
			continue
		}
		if f.Open == nil {
			return errored(files, "%s: no opener", f.Path)
		}
		rc, err := f.Open(ctx)
		if err != nil {
			return errored(files, "%s: open: %v", f.Path, err)
		}
		h, err := parseSafetensors(ctxReader{ctx, rc}, f.Size, c.maxHeader)
		rc.Close()
		sf := SafetensorsFile{Path: f.Path}
		if h != nil {
			sf.HeaderBytes, sf.Tensors = h.headerLen, len(h.tensors)
		}
		var herr *headerError
		switch {
		case err == nil:
		case asHeaderError(err, &herr):
			sf.Problem = herr.msg
			bad++
		default:
			return errored(files, "%s: read: %v", f.Path, err)
		}
		files = append(files, sf)
	}
	if bad > 0 {
		for _, f := range files {
			if f.Problem != "" {
				return fail(files, "%d invalid safetensors file(s), first %s: %s", bad, f.Path, f.Problem)
			}
		}
	}
	if len(files) == 0 {
		return skip("no .safetensors files")
	}
	return pass(files, "%d safetensors file(s) with consistent headers", len(files))
}

// headerError is a defect of the file itself (Failed), as opposed to an
// I/O error (Errored).
type headerError struct{ msg string }

func (e *headerError) Error() string { return e.msg }

func asHeaderError(err error, target **headerError) bool {
	he, ok := err.(*headerError)
	if ok {
		*target = he
	}
	return ok
}

func badHeader(format string, args ...any) error {
	return &headerError{msg: fmt.Sprintf(format, args...)}
}

type stTensor struct {
	name       string
	dtype      string
	shape      []uint64
	begin, end uint64
}

type stHeader struct {
	headerLen uint64
	tensors   []stTensor
}

// dtypeBits is the element width of each safetensors dtype.
func dtypeBits(dtype string) (uint64, bool) {
	switch dtype {
	case "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0":
		return 8, true
	case "I16", "U16", "F16", "BF16":
		return 16, true
	case "I32", "U32", "F32":
		return 32, true
	case "I64", "U64", "F64", "C64":
		return 64, true
	case "F4":
		return 4, true
	case "F6_E2M3", "F6_E3M2":
		return 6, true
	}
	return 0, false
}

// parseSafetensors reads the header of a safetensors stream of the given
// total size. It reads at most 8+maxHeader bytes; it never trusts the
// declared length before checking it against both bounds.
func parseSafetensors(r io.Reader, size, maxHeader int64) (*stHeader, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, badHeader("file is %d bytes, shorter than the 8-byte header length", size)
	}
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, truncatedOr(err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	switch {
	case n < 2:
		return nil, badHeader("header length %d is too small", n)
	case n > uint64(maxHeader):
		return nil, badHeader("header length %d exceeds the %d-byte limit", n, maxHeader)
	case n > uint64(size-8):
		return nil, badHeader("header length %d exceeds the file size %d", n, size)
	}
	// Read through a limit instead of allocating n up front: a recorded
	// size can be wrong, and memory should follow the bytes that arrive.
	raw, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, err
	}
	if uint64(len(raw)) != n {
		return nil, badHeader("file is shorter than its header declares")
	}
	h := &stHeader{headerLen: n}
	// The reference writer pads the JSON with trailing spaces to align the
	// data section.
	js := bytes.TrimRight(raw, " ")
	if len(js) == 0 || js[0] != '{' {
		return h, badHeader("header does not start with a JSON object")
	}
	if err := checkDuplicateKeys(js); err != nil {
		return h, err
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(js, &entries); err != nil {
		return h, badHeader("header is not valid JSON: %s", truncate(err.Error(), 120))
	}
	for name, msg := range entries {
		if name == "__metadata__" {
			var md map[string]string
			if err := json.Unmarshal(msg, &md); err != nil {
				return h, badHeader("__metadata__ must map strings to strings")
			}
			continue
		}
		var t struct {
			Dtype       string   `json:"dtype"`
			Shape       []uint64 `json:"shape"`
			DataOffsets []uint64 `json:"data_offsets"`
		}
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return h, badHeader("tensor %q: %s", truncate(name, 60), truncate(err.Error(), 120))
		}
		if t.Shape == nil || t.DataOffsets == nil || t.Dtype == "" {
			return h, badHeader("tensor %q: dtype, shape and data_offsets are required", truncate(name, 60))
		}
		if len(t.DataOffsets) != 2 {
			return h, badHeader("tensor %q: data_offsets must be [begin, end]", truncate(name, 60))
		}
		h.tensors = append(h.tensors, stTensor{name: name, dtype: t.Dtype, shape: t.Shape, begin: t.DataOffsets[0], end: t.DataOffsets[1]})
	}
	dataLen := uint64(size) - 8 - n
	return h, h.validate(dataLen)
}

func truncatedOr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return badHeader("file is shorter than its header declares")
	}
	return err
}

func (h *stHeader) validate(dataLen uint64) error {
	for _, t := range h.tensors {
		bitsPer, ok := dtypeBits(t.dtype)
		if !ok {
			return badHeader("tensor %q: unknown dtype %q", truncate(t.name, 60), truncate(t.dtype, 20))
		}
		if t.end < t.begin {
			return badHeader("tensor %q: data_offsets end %d before begin %d", truncate(t.name, 60), t.end, t.begin)
		}
		elems := uint64(1)
		for _, d := range t.shape {
			hi, lo := bits.Mul64(elems, d)
			if hi != 0 {
				return badHeader("tensor %q: shape %v overflows", truncate(t.name, 60), t.shape)
			}
			elems = lo
		}
		hi, totalBits := bits.Mul64(elems, bitsPer)
		if hi != 0 || totalBits > math.MaxUint64-7 {
			return badHeader("tensor %q: shape %v overflows", truncate(t.name, 60), t.shape)
		}
		if totalBits%8 != 0 {
			return badHeader("tensor %q: %d %s elements do not fill whole bytes", truncate(t.name, 60), elems, t.dtype)
		}
		if want := totalBits / 8; t.end-t.begin != want {
			return badHeader("tensor %q: %s%v needs %d bytes, data_offsets span %d", truncate(t.name, 60), t.dtype, t.shape, want, t.end-t.begin)
		}
	}
	sort.Slice(h.tensors, func(i, j int) bool {
		a, b := h.tensors[i], h.tensors[j]
		if a.begin != b.begin {
			return a.begin < b.begin
		}
		if a.end != b.end {
			return a.end < b.end
		}
		return a.name < b.name
	})
	var at uint64
	for _, t := range h.tensors {
		switch {
		case t.begin < at:
			return badHeader("tensor %q overlaps the previous tensor at byte %d", truncate(t.name, 60), t.begin)
		case t.begin > at:
			return badHeader("gap of %d bytes before tensor %q", t.begin-at, truncate(t.name, 60))
		}
		at = t.end
	}
	if at != dataLen {
		return badHeader("tensors cover %d bytes but the data section is %d bytes", at, dataLen)
	}
	return nil
}

// checkDuplicateKeys refuses a header naming a tensor twice; decoders
// disagree on which copy wins, which is exactly what an attacker wants.
func checkDuplicateKeys(js []byte) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	if _, err := dec.Token(); err != nil { // {
		return badHeader("header is not valid JSON")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return badHeader("header is not valid JSON")
		}
		key, _ := tok.(string)
		if seen[key] {
			return badHeader("tensor %q is listed twice", truncate(key, 60))
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return badHeader("header is not valid JSON")
		}
	}
	return nil
}

// allowedFormats refuses files whose extension is not on an allow-list, so
// a model cannot smuggle in executable or unscannable formats.
type allowedFormats struct{ exts map[string]bool }

type formatParams struct {
	Extensions []string `yaml:"extensions"`
}

func defaultModelExtensions() []string {
	return []string{".safetensors", ".gguf", ".onnx", ".json", ".txt", ".model", ".md", ".tiktoken"}
}

func newAllowedFormatsCheck(n *yaml.Node) (Check, error) {
	var p formatParams
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	exts, err := extensionSet(n, p.Extensions, defaultModelExtensions())
	if err != nil {
		return nil, err
	}
	return allowedFormats{exts: exts}, nil
}

func (allowedFormats) Name() string { return "allowed-formats" }

// FormatDetails lists refused files and the allow-list.
type FormatDetails struct {
	Allowed []string `json:"allowed"`
	Refused []string `json:"refused,omitempty"`
}

func (c allowedFormats) Run(_ context.Context, s *Subject) Result {
	d := FormatDetails{}
	for e := range c.exts {
		d.Allowed = append(d.Allowed, e)
	}
	sort.Strings(d.Allowed)
	for _, f := range s.Files {
		if !c.exts[strings.ToLower(path.Ext(f.Path))] {
			d.Refused = append(d.Refused, f.Path)
		}
	}
	if len(d.Refused) > 0 {
		return fail(d, "%d file(s) in formats not allowed, first %s", len(d.Refused), d.Refused[0])
	}
	return pass(d, "%d file(s) in allowed formats", len(s.Files))
}
