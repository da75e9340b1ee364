package gates

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stagegate/stagegate/registry"
)

// framed wraps a protocol-4 body in PROTO and FRAME like Python does.
func framed(body string) []byte {
	var b bytes.Buffer
	b.WriteString("\x80\x04\x95")
	binary.Write(&b, binary.LittleEndian, uint64(len(body)))
	b.WriteString(body)
	return b.Bytes()
}

func torchZip(t testing.TB, members map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range members {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarball(t testing.TB, members map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range members {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes()
}

// flipByteOf changes the first byte of sub within within (a stored zip
// member's data) so the member still parses but fails its CRC-32.
func flipByteOf(t testing.TB, b []byte, within, sub string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(within))
	j := strings.Index(within, sub)
	if i < 0 || j < 0 {
		t.Fatalf("%q not found", sub)
	}
	out := bytes.Clone(b)
	out[i+j]++
	return out
}

// Pickle fixtures, built by hand so each opcode is deliberate.
const (
	evilProto0      = "cos\nsystem\n(S'id'\ntR."
	evilInst        = "(S'ls'\nios\nsystem\n."
	evilBuiltinEval = "\x80\x02c__builtin__\neval\nq\x00X\x03\x00\x00\x001+1q\x01\x85q\x02Rq\x03."
	benignProto2    = "\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01."
	benignTorch     = "\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00(X\x01\x00\x00\x000q\x01K\x00K\x02\x85q\x02tq\x03Rq\x04."
)

var (
	evilStackGlobal = framed("\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.")
	// the module and name reach STACK_GLOBAL through the memo
	evilMemo = framed("(\x8c\x08builtins\x94\x8c\x04exec\x94\x8c\x01x\x941h\x00h\x01\x93\x94h\x02\x85R.")
	evilSub  = framed("\x8c\x0esubprocess.run\x94\x8c\x03run\x94\x93\x94.")
	// operands that are not literal strings cannot be resolved
	evilUnresolved = framed("K\x01K\x02\x93\x94.")
	evilExt        = "\x80\x02\x82\x01."
	// protocol 4 qualnames walk attributes: torch.serialization.os.system
	evilQualname  = framed("\x8c\x13torch.serialization\x94\x8c\x09os.system\x94\x93\x94.")
	evilQualEval  = framed("\x8c\x05numpy\x94\x8c\x16core.__builtins__.eval\x94\x93\x94.")
	evilPy2       = "ccommands\ngetoutput\n(S'id'\ntR."
	benignProto4  = framed("}\x94(\x8c\x03auc\x94G?\xee\x14z\xe1G\xae\x14\x8c\x06labels\x94]\x94(\x8c\x01a\x94\x8c\x01b\x94eu.")
	benignGlobal4 = framed("\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94.")
)

func TestPickleScan(t *testing.T) {
	c := buildCheck(t, "pickle-scan", "")
	tests := []struct {
		name   string
		file   string
		data   []byte
		want   Status
		global string // expected first finding
	}{
		{"protocol 0 GLOBAL os.system", "model.pkl", []byte(evilProto0), Failed, "os.system"},
		{"INST os.system", "model.pickle", []byte(evilInst), Failed, "os.system"},
		{"builtins eval", "model.pt", []byte(evilBuiltinEval), Failed, "__builtin__.eval"},
		{"protocol 4 STACK_GLOBAL", "model.bin", evilStackGlobal, Failed, "os.system"},
		{"STACK_GLOBAL through memo", "model.ckpt", evilMemo, Failed, "builtins.exec"},
		{"submodule of denied module", "model.pth", evilSub, Failed, "subprocess.run.run"},
		{"unresolvable STACK_GLOBAL", "model.pkl", evilUnresolved, Failed, ""},
		{"extension registry", "model.pkl", []byte(evilExt), Failed, ""},
		{"qualname through module attribute", "model.pkl", evilQualname, Failed, "torch.serialization.os.system"},
		{"qualname to builtins eval", "model.pkl", evilQualEval, Failed, "numpy.core.__builtins__.eval"},
		{"python 2 module alias", "model.pkl", []byte(evilPy2), Failed, "commands.getoutput"},
		{"benign OrderedDict", "model.pkl", []byte(benignProto2), Passed, ""},
		{"benign torch rebuild", "model.pt", []byte(benignTorch), Passed, ""},
		{"benign protocol 4 dict", "model.pkl", benignProto4, Passed, ""},
		{"benign STACK_GLOBAL", "model.pkl", benignGlobal4, Passed, ""},
		{"not a pickle", "weights.bin", []byte("hello, raw tensor bytes"), Passed, ""},
		{"other extension not scanned", "model.safetensors", []byte(evilProto0), Passed, ""},
		{"torch zip evil", "model.pt", torchZip(t, map[string][]byte{"archive/data.pkl": []byte(evilProto0), "archive/data/0": {1, 2, 3}}), Failed, "os.system"},
		{"torch zip benign", "model.pt", torchZip(t, map[string][]byte{"archive/data.pkl": []byte(benignTorch), "archive/version": []byte("3\n")}), Passed, ""},
		{"torch zip constants.pkl", "model.pt", torchZip(t, map[string][]byte{"archive/data.pkl": []byte(benignTorch), "archive/constants.pkl": evilStackGlobal}), Failed, "os.system"},
		{"legacy second pickle", "model.pt", append([]byte(benignProto2), evilProto0...), Failed, "os.system"},
		{"legacy tar", "model.pt", tarball(t, map[string][]byte{"pickle": []byte(evilProto0)}), Failed, "os.system"},
		{"truncated after import", "model.pkl", []byte("cos\nsystem\n(S'id"), Failed, "os.system"},
		// A stream ending between opcodes is incomplete, like one ending
		// inside an argument: judged on what it imported so far.
		{"truncated between opcodes", "model.pkl", []byte("cos\nsystem\n"), Failed, "os.system"},
		{"raw bytes ending on an opcode", "weights.bin", []byte("("), Passed, ""},
		{"raw bytes ending after an argument", "weights.bin", []byte("K\x01"), Passed, ""},
		{"zip member failing its checksum", "model.pt", flipByteOf(t, torchZip(t, map[string][]byte{"archive/data.pkl": []byte(benignTorch)}), benignTorch, "0"), Failed, ""},
		// Names reach the one-line reason escaped, never raw.
		{"newline in STACK_GLOBAL name", "model.pkl", framed("\x8c\x02os\x94\x8c\x0bsystem\nPASS\x94\x93\x94."), Failed, `os.system\nPASS`},
		{"newline in zip member name", "model.pt", torchZip(t, map[string][]byte{"archive/x\nok.pkl": []byte(evilProto0)}), Failed, "os.system"},
		{"newline in tar member name", "model.pt", tarball(t, map[string][]byte{"pickle\nok": []byte(evilProto0)}), Failed, "os.system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.Run(context.Background(), subject(registry.KindModel, memFile(tt.file, tt.data)))
			wantStatus(t, r, tt.want)
			d := r.Details.(PickleDetails)
			if tt.want == Failed && tt.global != "" && d.Findings[0].Global != tt.global {
				t.Errorf("first finding %+v, want global %s", d.Findings[0], tt.global)
			}
		})
	}
}

func TestPickleScanOpenError(t *testing.T) {
	c := buildCheck(t, "pickle-scan", "")
	f := memFile("model.pkl", nil)
	f.Open = failingOpener
	wantStatus(t, c.Run(context.Background(), subject(registry.KindModel, f)), Errored)
}

// TestPickleScanReadErrorBetweenPickles: a read that fails where the next
// pickle of a legacy stream would start must not pass the unread rest.
func TestPickleScanReadErrorBetweenPickles(t *testing.T) {
	c := buildCheck(t, "pickle-scan", "")
	f := memFile("model.pt", nil)
	f.Open = func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader(benignProto2), iotest.ErrReader(errors.New("connection reset")))), nil
	}
	r := c.Run(context.Background(), subject(registry.KindModel, f))
	wantStatus(t, r, Errored)
	if !strings.Contains(r.Reason, "connection reset") {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestPickleScanCustomDeny(t *testing.T) {
	c := buildCheck(t, "pickle-scan", "deny_modules: [collections]")
	r := c.Run(context.Background(), subject(registry.KindModel, memFile("m.pkl", []byte(benignProto2))))
	wantStatus(t, r, Failed)
	if !strings.Contains(r.Reason, "collections.OrderedDict") {
		t.Errorf("reason %q", r.Reason)
	}
}

func TestPickleScanDeepStackErrors(t *testing.T) {
	c := buildCheck(t, "pickle-scan", "")
	deep := bytes.Repeat([]byte("("), pickleMaxStack+10)
	wantStatus(t, c.Run(context.Background(), subject(registry.KindModel, memFile("m.pkl", deep))), Errored)
}

// TestPickleFixtures walks pickles written by CPython's pickle module for
// protocols 0-5: testdata/pickle/valid must scan clean and completely,
// testdata/pickle/malicious must fail.
func TestPickleFixtures(t *testing.T) {
	c := buildCheck(t, "pickle-scan", "").(*pickleScan)
	for _, dir := range []string{"valid", "malicious"} {
		entries, err := os.ReadDir(filepath.Join("testdata", "pickle", dir))
		if err != nil {
			t.Fatal(err)
		}
		// An emptied or renamed fixture folder must not pass vacuously.
		if len(entries) == 0 {
			t.Fatalf("no fixtures in testdata/pickle/%s", dir)
		}
		for _, e := range entries {
			t.Run(dir+"/"+e.Name(), func(t *testing.T) {
				b := readFixture(t, filepath.Join("testdata", "pickle", dir, e.Name()))
				res, err := scanPickles(bytes.NewReader(b), c)
				if err != nil {
					t.Fatal(err)
				}
				if res.pickles != 1 {
					t.Errorf("walked %d complete pickles, want 1", res.pickles)
				}
				if got := len(res.findings) > 0; got != (dir == "malicious") {
					t.Errorf("findings %+v", res.findings)
				}
			})
		}
	}
}
