package gates

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// pickleScan walks the opcodes of pickle streams in model files and fails
// on imports of modules that can execute code. Loading a pickle runs the
// callables it imports, so a model file is a program; this check keeps
// programs that reach for os.system and friends out of production.
type pickleScan struct {
	exts    map[string]bool
	deny    map[string]bool // whole modules (and their submodules)
	denyFn  map[string]bool // "module.name" entries
	tempDir string
}

type pickleParams struct {
	Extensions  []string `yaml:"extensions"`
	DenyModules []string `yaml:"deny_modules"` // added to the built-in list
	DenyGlobals []string `yaml:"deny_globals"` // "module.name", added to the built-in list
}

func defaultPickleExtensions() []string {
	return []string{".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib"}
}

// deniedModules can run code or reach the system merely by being imported
// and called; any global from them is refused.
func deniedModules() []string {
	return []string{"os", "posix", "nt", "subprocess", "sys", "socket", "shutil", "runpy", "importlib",
		"pty", "commands", "popen2", "platform", "ctypes", "cffi", "multiprocessing", "code", "codeop",
		"pdb", "bdb", "profile", "cProfile", "timeit", "webbrowser", "asyncio", "signal", "tempfile",
		"glob", "pathlib", "io", "_io", "http", "urllib", "urllib2", "requests", "httplib", "ftplib",
		"smtplib", "telnetlib", "pickle", "_pickle", "cPickle", "dill", "marshal", "types", "pydoc",
		"distutils", "setuptools", "pip", "torch.hub", "numpy.testing", "zipimport", "inspect"}
}

// deniedGlobals are dangerous names in otherwise harmless modules.
func deniedGlobals() []string {
	var out []string
	for _, m := range []string{"builtins", "__builtin__", "__builtins__"} {
		for _, n := range []string{"eval", "exec", "execfile", "compile", "open", "getattr", "setattr",
			"delattr", "__import__", "globals", "locals", "vars", "input", "breakpoint", "apply", "file", "reload"} {
			out = append(out, m+"."+n)
		}
	}
	return append(out, "operator.attrgetter", "operator.methodcaller", "functools.reduce",
		"numpy.load", "numpy.lib.npyio.load", "torch.load", "torch.jit.load", "torch.serialization.load",
		"torch._C._jit_load", "joblib.load", "pandas.read_pickle", "shelve.open")
}

func newPickleScanCheck(n *yaml.Node) (Check, error) {
	var p pickleParams
	if err := decodeStrict(n, &p); err != nil {
		return nil, err
	}
	exts, err := extensionSet(n, p.Extensions, defaultPickleExtensions())
	if err != nil {
		return nil, err
	}
	c := &pickleScan{exts: exts, deny: map[string]bool{}, denyFn: map[string]bool{}}
	for _, m := range append(deniedModules(), p.DenyModules...) {
		if m == "" {
			return nil, errAt(n, "deny_modules: empty module name")
		}
		c.deny[m] = true
	}
	for _, g := range append(deniedGlobals(), p.DenyGlobals...) {
		if !strings.Contains(g, ".") {
			return nil, errAt(n, "deny_globals: %q is not module.name", truncate(g, 60))
		}
		c.denyFn[g] = true
	}
	return c, nil
}

func (*pickleScan) Name() string { return "pickle-scan" }

// PickleFinding is one refused import in one file.
type PickleFinding struct {
	Path   string `json:"path"`             // file, plus "!member" inside an archive
	Offset int64  `json:"offset"`           // byte offset of the opcode in the stream
	Opcode string `json:"opcode"`           // GLOBAL, STACK_GLOBAL, INST, EXT...
	Global string `json:"global,omitempty"` // module.name
	Why    string `json:"why"`
}

// PickleDetails lists scanned files, findings and notes (e.g. "not a pickle").
type PickleDetails struct {
	Scanned  []string        `json:"scanned"`
	Findings []PickleFinding `json:"findings,omitempty"`
	Notes    []string        `json:"notes,omitempty"`
}

func (c *pickleScan) Run(ctx context.Context, s *Subject) Result {
	d := PickleDetails{Scanned: []string{}}
	for _, f := range s.Files {
		if !c.exts[strings.ToLower(path.Ext(f.Path))] {
			continue
		}
		if err := c.scanFile(ctx, f, &d); err != nil {
			return errored(d, "%s: %v", f.Path, err)
		}
		d.Scanned = append(d.Scanned, f.Path)
	}
	if len(d.Findings) > 0 {
		f := d.Findings[0]
		return fail(d, "%d dangerous pickle import(s), first %s in %s", len(d.Findings), f.Global+f.Why, f.Path)
	}
	if len(d.Scanned) == 0 {
		return pass(d, "no pickle files")
	}
	return pass(d, "%d pickle file(s) import no code-execution globals", len(d.Scanned))
}

func (c *pickleScan) scanFile(ctx context.Context, f File, d *PickleDetails) error {
	if f.Open == nil {
		return fmt.Errorf("no opener")
	}
	rc, err := f.Open(ctx)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer rc.Close()
	br := bufio.NewReaderSize(ctxReader{ctx, rc}, 64<<10)
	head, _ := br.Peek(512)
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return c.scanZip(ctx, br, f.Path, d)
	case len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")):
		return c.scanTar(br, f.Path, d)
	}
	return c.scanStream(br, f.Path, d)
}

// scanStream scans the consecutive pickles of one stream (legacy torch
// files hold several). Trailing bytes that are not a pickle (raw tensor
// data) end the scan: the unpickler would stop there too.
func (c *pickleScan) scanStream(r io.Reader, name string, d *PickleDetails) error {
	res, err := scanPickles(r, c)
	for _, f := range res.findings {
		f.Path = name
		d.Findings = append(d.Findings, f)
	}
	if res.pickles == 0 && len(res.findings) == 0 && err == nil {
		d.Notes = append(d.Notes, name+": not a pickle stream")
	}
	return err
}

// scanZip scans every .pkl member of a PyTorch zip archive. The archive is
// spooled to a temporary file: the central directory, which torch.load
// trusts, is at the end and needs random access.
func (c *pickleScan) scanZip(ctx context.Context, r io.Reader, name string, d *PickleDetails) error {
	tmp, err := os.CreateTemp(c.tempDir, "stagegate-pickle-*")
	if err != nil {
		return fmt.Errorf("spool archive: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, r)
	if err != nil {
		return fmt.Errorf("spool archive: %w", err)
	}
	zr, err := zip.NewReader(tmp, n)
	if err != nil {
		d.Findings = append(d.Findings, PickleFinding{Path: name, Opcode: "ZIP", Why: "unreadable zip archive: " + err.Error()})
		return nil
	}
	found := 0
	for _, zf := range zr.File {
		if !strings.HasSuffix(zf.Name, ".pkl") {
			continue
		}
		found++
		if err := ctx.Err(); err != nil {
			return err
		}
		mr, err := zf.Open()
		if err != nil {
			d.Findings = append(d.Findings, PickleFinding{Path: name + "!" + zf.Name, Opcode: "ZIP", Why: "unreadable member: " + err.Error()})
			continue
		}
		err = c.scanStream(mr, name+"!"+zf.Name, d)
		mr.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", zf.Name, err)
		}
	}
	if found == 0 {
		d.Notes = append(d.Notes, name+": zip archive without .pkl members")
	}
	return nil
}

// scanTar scans every member of a legacy torch tar archive as pickles.
func (c *pickleScan) scanTar(r io.Reader, name string, d *PickleDetails) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			d.Findings = append(d.Findings, PickleFinding{Path: name, Opcode: "TAR", Why: "unreadable tar archive: " + err.Error()})
			return nil
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if err := c.scanStream(tr, name+"!"+h.Name, d); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
}

// py2Modules are the Python 2 module names that Python 3's unpickler
// renames (fix_imports) to modules this check cares about.
func py2Modules() map[string]string {
	return map[string]string{"__builtin__": "builtins", "exceptions": "builtins", "commands": "subprocess",
		"cPickle": "pickle", "httplib": "http.client", "urllib2": "urllib.request", "BaseHTTPServer": "http.server",
		"SimpleHTTPServer": "http.server", "CGIHTTPServer": "http.server", "SocketServer": "socketserver",
		"xmlrpclib": "xmlrpc.client", "StringIO": "io", "cStringIO": "io", "copy_reg": "copyreg"}
}

// dangerousAttrs are callables that run code or commands; reaching one
// through a dotted name (protocol 4 qualnames) is refused.
func dangerousAttrs() []string {
	return []string{"eval", "exec", "execfile", "compile", "__import__", "getattr", "setattr", "system", "popen",
		"Popen", "call", "check_call", "check_output", "run", "spawnl", "spawnv", "execv", "execve", "execl",
		"fork", "load", "loads", "import_module", "__builtins__", "__globals__", "__subclasses__"}
}

// judge returns why module.name is refused, or "". Protocol 4 names may be
// dotted attribute paths (torch.serialization + "os.system" reaches
// os.system), so every component of the path is judged, not only the
// module.
func (c *pickleScan) judge(module, name string) string {
	if m, ok := py2Modules()[module]; ok {
		if why := c.judge(m, name); why != "" {
			return why
		}
	}
	if c.denyFn[module+"."+name] {
		return " (code execution)"
	}
	full := module + "." + name
	parts := strings.Split(full, ".")
	for i := range parts {
		if prefix := strings.Join(parts[:i+1], "."); c.deny[prefix] {
			return " (module " + prefix + " is denied)"
		}
	}
	modParts := len(strings.Split(module, "."))
	for i, p := range parts[modParts:] {
		if c.deny[p] {
			return " (reaches module " + p + " through an attribute path)"
		}
		for _, b := range []string{"builtins", "__builtin__"} {
			if c.denyFn[b+"."+p] && (i > 0 || strings.Contains(name, ".")) {
				return " (reaches " + p + " through an attribute path)"
			}
		}
		if strings.Contains(name, ".") && slices.Contains(dangerousAttrs(), p) {
			return " (reaches " + p + " through an attribute path)"
		}
	}
	return ""
}

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
			break
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
			return false, readErr(err)
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
			Global: truncate(module, 100) + "." + truncate(name, 100), Why: why})
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
