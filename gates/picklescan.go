package gates

// The opcode walker below parses untrusted bytes: it models just enough of
// the pickle machine (stack, marks, memo) to resolve which globals a
// stream imports, under hard limits, and never executes anything. It is
// kept apart from the check wiring in pickle.go so the code that faces
// hostile input can be read, fuzzed and reviewed on its own.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Bounds of the opcode walker; they keep memory flat on hostile input.
const (
	pickleMaxLine    = 64 << 10 // longest newline-terminated argument
	pickleMaxString  = 256      // longer strings are tracked as "unknown"
	pickleMaxStack   = 1 << 16
	pickleMaxMemo    = 1 << 16
	pickleMaxPickles = 64 // consecutive pickles in one stream
)

// errPickleLimit reports a stream too deep or large for the walker to
// judge; the check errors rather than pass what it could not read.
var errPickleLimit = errors.New("pickle exceeds scanner limits")

type pickleResult struct {
	pickles  int
	findings []PickleFinding
}

// pval is what the walker knows of a stack value: a short string or not.
type pval struct {
	s     string
	isStr bool
}

type pickleWalker struct {
	r       *countingReader
	c       *pickleScan
	stack   []pval
	marks   []int
	memo    map[uint64]pval
	res     *pickleResult
	scratch [8]byte
}

type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// scanPickles walks consecutive pickles in r. It returns an error only for
// read failures and scanner limits; malformed pickles simply end the walk.
func scanPickles(r io.Reader, c *pickleScan) (pickleResult, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	var res pickleResult
	w := &pickleWalker{r: &countingReader{r: br}, c: c, res: &res}
	for res.pickles < pickleMaxPickles {
		if _, err := br.Peek(1); err != nil {
			// Only the end of the stream (clean or truncated, as inside
			// a pickle) ends the scan: a read failure between two pickles
			// would otherwise pass what was never read, and hide a zip
			// member's checksum error.
			if err = readErr(err); errors.Is(err, errBadPickle) {
				break
			}
			return res, err
		}
		complete, err := w.walk()
		if err != nil {
			return res, err
		}
		if !complete {
			break
		}
		res.pickles++
	}
	return res, nil
}

var errBadPickle = errors.New("malformed pickle")

// walk runs one pickle to its STOP. complete is false when the bytes are
// not (or stop being) a valid pickle.
func (w *pickleWalker) walk() (complete bool, err error) {
	w.stack, w.marks, w.memo = w.stack[:0], w.marks[:0], map[uint64]pval{}
	for {
		off := w.r.n
		op, err := w.r.ReadByte()
		if err != nil {
			// A stream that ends between opcodes is as incomplete as
			// one that ends inside an argument: malformed, not an error.
			if err = readErr(err); errors.Is(err, errBadPickle) {
				return false, nil
			}
			return false, err
		}
		done, err := w.step(op, off)
		if errors.Is(err, errBadPickle) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if done {
			return true, nil
		}
		if len(w.stack) > pickleMaxStack || len(w.marks) > pickleMaxStack {
			return false, errPickleLimit
		}
	}
}

// readErr maps a truncated stream to a malformed pickle (not an error) and
// keeps real read failures.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errBadPickle
	}
	return err
}

func (w *pickleWalker) push(v pval) { w.stack = append(w.stack, v) }

func (w *pickleWalker) pop(n int) ([]pval, error) {
	base := 0
	if len(w.marks) > 0 {
		base = w.marks[len(w.marks)-1]
	}
	if len(w.stack)-n < base {
		return nil, errBadPickle
	}
	vs := slices.Clone(w.stack[len(w.stack)-n:])
	w.stack = w.stack[:len(w.stack)-n]
	return vs, nil
}

func (w *pickleWalker) popMark() error {
	if len(w.marks) == 0 {
		return errBadPickle
	}
	w.stack = w.stack[:w.marks[len(w.marks)-1]]
	w.marks = w.marks[:len(w.marks)-1]
	return nil
}

func (w *pickleWalker) unknown() { w.push(pval{}) }

func (w *pickleWalker) memoPut(idx uint64) error {
	if len(w.stack) == 0 {
		return errBadPickle
	}
	if len(w.memo) >= pickleMaxMemo {
		if _, ok := w.memo[idx]; !ok {
			return errPickleLimit
		}
	}
	w.memo[idx] = w.stack[len(w.stack)-1]
	return nil
}

func (w *pickleWalker) memoGet(idx uint64) error {
	v, ok := w.memo[idx]
	if !ok {
		return errBadPickle
	}
	w.push(v)
	return nil
}

func (w *pickleWalker) uint(n int) (uint64, error) {
	if _, err := io.ReadFull(w.r, w.scratch[:n]); err != nil {
		return 0, readErr(err)
	}
	var b [8]byte
	copy(b[:], w.scratch[:n])
	return binary.LittleEndian.Uint64(b[:]), nil
}

// line reads a newline-terminated argument (protocol 0 opcodes).
func (w *pickleWalker) line() (string, error) {
	var b []byte
	for {
		c, err := w.r.ReadByte()
		if err != nil {
			return "", readErr(err)
		}
		if c == '\n' {
			return string(b), nil
		}
		if len(b) >= pickleMaxLine {
			return "", errPickleLimit
		}
		b = append(b, c)
	}
}

// data reads an n-byte argument, keeping it only when short enough to be a
// module or attribute name.
func (w *pickleWalker) data(n uint64) (pval, error) {
	if n <= pickleMaxString {
		buf := make([]byte, n)
		if _, err := io.ReadFull(w.r, buf); err != nil {
			return pval{}, readErr(err)
		}
		return pval{s: string(buf), isStr: true}, nil
	}
	if _, err := io.CopyN(io.Discard, w.r, int64(min(n, 1<<62))); err != nil {
		return pval{}, readErr(err)
	}
	return pval{}, nil
}

func (w *pickleWalker) sizedData(lenBytes int) (pval, error) {
	n, err := w.uint(lenBytes)
	if err != nil {
		return pval{}, err
	}
	return w.data(n)
}

func (w *pickleWalker) global(off int64, opcode, module, name string) {
	if why := w.c.judge(module, name); why != "" {
		w.res.findings = append(w.res.findings, PickleFinding{Offset: off, Opcode: opcode,
			Global: truncate(printable(module), 100) + "." + truncate(printable(name), 100), Why: why})
	}
}

// step executes one opcode's effect on the walker's model of the stack.
// Every opcode of protocols 0-5 is known; anything else is malformed.
func (w *pickleWalker) step(op byte, off int64) (stop bool, err error) {
	switch op {
	case '.': // STOP
		return true, nil
	case '(': // MARK
		w.marks = append(w.marks, len(w.stack))
	case '0': // POP
		if len(w.stack) == 0 || (len(w.marks) > 0 && w.marks[len(w.marks)-1] == len(w.stack)) {
			err = w.popMark()
		} else {
			_, err = w.pop(1)
		}
	case '1': // POP_MARK
		err = w.popMark()
	case '2': // DUP
		if len(w.stack) == 0 {
			return false, errBadPickle
		}
		w.push(w.stack[len(w.stack)-1])
	case 'F', 'I', 'L': // FLOAT, INT, LONG
		_, err = w.line()
		w.unknown()
	case 'S': // STRING: quoted repr
		var s string
		s, err = w.line()
		v := pval{}
		if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] && len(s)-2 <= pickleMaxString && !strings.Contains(s, `\`) {
			v = pval{s: s[1 : len(s)-1], isStr: true}
		}
		w.push(v)
	case 'V': // UNICODE: raw-unicode-escape
		var s string
		s, err = w.line()
		v := pval{}
		if len(s) <= pickleMaxString && !strings.Contains(s, `\`) {
			v = pval{s: s, isStr: true}
		}
		w.push(v)
	case 'P': // PERSID
		_, err = w.line()
		w.unknown()
	case 'Q': // BINPERSID
		if _, err = w.pop(1); err == nil {
			w.unknown()
		}
	case 'J':
		_, err = w.uint(4)
		w.unknown()
	case 'K':
		_, err = w.uint(1)
		w.unknown()
	case 'M':
		_, err = w.uint(2)
		w.unknown()
	case 'G': // BINFLOAT
		_, err = w.uint(8)
		w.unknown()
	case 'N', 0x88, 0x89, ')', ']', '}', 0x8f: // NONE, NEWTRUE, NEWFALSE, EMPTY_TUPLE/LIST/DICT/SET
		w.unknown()
	case 0x97: // NEXT_BUFFER
		w.unknown()
	case 0x98: // READONLY_BUFFER
		if len(w.stack) == 0 {
			return false, errBadPickle
		}
	case 'T', 'X', 'B': // BINSTRING, BINUNICODE, BINBYTES: 4-byte length
		var v pval
		if v, err = w.sizedData(4); err == nil {
			if op == 'B' {
				v = pval{}
			}
			w.push(v)
		}
	case 'U', 'C', 0x8c: // SHORT_BINSTRING, SHORT_BINBYTES, SHORT_BINUNICODE
		var v pval
		if v, err = w.sizedData(1); err == nil {
			if op == 'C' {
				v = pval{}
			}
			w.push(v)
		}
	case 0x8d: // BINUNICODE8
		var v pval
		if v, err = w.sizedData(8); err == nil {
			w.push(v)
		}
	case 0x8e, 0x96: // BINBYTES8, BYTEARRAY8
		if _, err = w.sizedData(8); err == nil {
			w.unknown()
		}
	case 0x8a: // LONG1
		if _, err = w.sizedData(1); err == nil {
			w.unknown()
		}
	case 0x8b: // LONG4
		if _, err = w.sizedData(4); err == nil {
			w.unknown()
		}
	case 'a', 'b': // APPEND, BUILD
		_, err = w.pop(1)
	case 's': // SETITEM
		_, err = w.pop(2)
	case 'e', 'u', 0x90: // APPENDS, SETITEMS, ADDITEMS
		err = w.popMark()
	case 'l', 't', 'd', 0x91, 'o': // LIST, TUPLE, DICT, FROZENSET, OBJ
		if err = w.popMark(); err == nil {
			w.unknown()
		}
	case 0x85, 0x86, 0x87: // TUPLE1-3
		if _, err = w.pop(int(op - 0x84)); err == nil {
			w.unknown()
		}
	case 'R', 0x81: // REDUCE, NEWOBJ
		if _, err = w.pop(2); err == nil {
			w.unknown()
		}
	case 0x92: // NEWOBJ_EX
		if _, err = w.pop(3); err == nil {
			w.unknown()
		}
	case 'c', 'i': // GLOBAL, INST: module and name lines
		var module, name string
		if module, err = w.line(); err != nil {
			return false, err
		}
		if name, err = w.line(); err != nil {
			return false, err
		}
		opcode := "GLOBAL"
		if op == 'i' {
			opcode = "INST"
			if err = w.popMark(); err != nil {
				return false, err
			}
		}
		w.global(off, opcode, module, name)
		w.unknown()
	case 0x93: // STACK_GLOBAL
		var vs []pval
		if vs, err = w.pop(2); err != nil {
			return false, err
		}
		if !vs[0].isStr || !vs[1].isStr {
			w.res.findings = append(w.res.findings, PickleFinding{Offset: off, Opcode: "STACK_GLOBAL",
				Why: "import whose module or name cannot be resolved statically"})
		} else {
			w.global(off, "STACK_GLOBAL", vs[0].s, vs[1].s)
		}
		w.unknown()
	case 0x82, 0x83, 0x84: // EXT1, EXT2, EXT4: copyreg extension registry
		n := map[byte]int{0x82: 1, 0x83: 2, 0x84: 4}[op]
		if _, err = w.uint(n); err == nil {
			w.res.findings = append(w.res.findings, PickleFinding{Offset: off, Opcode: "EXT",
				Why: "import through the copyreg extension registry cannot be checked"})
			w.unknown()
		}
	case 'g', 'p': // GET, PUT: decimal index line
		var s string
		if s, err = w.line(); err != nil {
			return false, err
		}
		var idx uint64
		if _, perr := fmt.Sscanf(s, "%d", &idx); perr != nil {
			return false, errBadPickle
		}
		if op == 'g' {
			err = w.memoGet(idx)
		} else {
			err = w.memoPut(idx)
		}
	case 'h', 'j': // BINGET, LONG_BINGET
		var idx uint64
		if idx, err = w.uint(map[byte]int{'h': 1, 'j': 4}[op]); err == nil {
			err = w.memoGet(idx)
		}
	case 'q', 'r': // BINPUT, LONG_BINPUT
		var idx uint64
		if idx, err = w.uint(map[byte]int{'q': 1, 'r': 4}[op]); err == nil {
			err = w.memoPut(idx)
		}
	case 0x94: // MEMOIZE
		err = w.memoPut(uint64(len(w.memo)))
	case 0x80: // PROTO
		var v uint64
		if v, err = w.uint(1); err == nil && v > 5 {
			return false, errBadPickle
		}
	case 0x95: // FRAME: 8-byte length; frames only group opcodes
		_, err = w.uint(8)
	default:
		return false, errBadPickle
	}
	return false, err
}
