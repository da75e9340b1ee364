package gates

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"context"
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
		// Member names come from the archive and reach the reason.
		member := truncate(printable(zf.Name), 200)
		mr, err := zf.Open()
		if err != nil {
			d.Findings = append(d.Findings, PickleFinding{Path: name + "!" + member, Opcode: "ZIP", Why: "unreadable member: " + err.Error()})
			continue
		}
		err = c.scanStream(mr, name+"!"+member, d)
		mr.Close()
		if corruptMember(err) {
			d.Findings = append(d.Findings, PickleFinding{Path: name + "!" + member, Opcode: "ZIP", Why: "unreadable member: " + err.Error()})
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", member, err)
		}
	}
	if found == 0 {
		d.Notes = append(d.Notes, name+": zip archive without .pkl members")
	}
	return nil
}

// corruptMember reports whether err is a defect of a zip member (bad
// checksum, broken compression): the archive's fault, so a finding, not a
// failure to read the spooled copy.
func corruptMember(err error) bool {
	var ce flate.CorruptInputError
	return errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) || errors.As(err, &ce)
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
		// Member names come from the archive and reach the reason.
		member := truncate(printable(h.Name), 200)
		if err := c.scanStream(tr, name+"!"+member, d); err != nil {
			return fmt.Errorf("%s: %w", member, err)
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
