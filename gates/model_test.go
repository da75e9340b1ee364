package gates

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/registry"
)

// stFile builds a safetensors file: the 8-byte little-endian header length,
// the JSON header padded with spaces to 8 bytes, and dataLen data bytes.
func stFile(header string, dataLen int) []byte {
	h := []byte(header)
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(h)))
	b.Write(h)
	b.Write(make([]byte, dataLen))
	return b.Bytes()
}

func TestSafetensors(t *testing.T) {
	c := buildCheck(t, "safetensors", "max_header_bytes: 4096")
	valid := `{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[24,30]}}`
	tests := []struct {
		name     string
		data     []byte
		want     Status
		contains string
	}{
		{"valid", stFile(valid, 30), Passed, ""},
		{"valid scalar and empty", stFile(`{"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"e":{"dtype":"F16","shape":[0,4],"data_offsets":[8,8]}}`, 8), Passed, ""},
		{"valid F4", stFile(`{"q":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}`, 2), Passed, ""},
		{"only metadata", stFile(`{"__metadata__":{}}`, 0), Passed, ""},
		{"shorter than 8 bytes", []byte{1, 2, 3}, Failed, "shorter than the 8-byte"},
		{"header longer than file", append(binary.LittleEndian.AppendUint64(nil, 100), '{', '}'), Failed, "exceeds the file size"},
		{"header over limit", append(binary.LittleEndian.AppendUint64(nil, 1<<40), '{'), Failed, "exceeds the 4096-byte limit"},
		{"not json", stFile(`nope`, 0), Failed, "JSON object"},
		{"broken json", stFile(`{"w":`, 0), Failed, "not valid JSON"},
		{"unknown dtype", stFile(`{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, 16), Failed, "unknown dtype"},
		{"shape mismatch", stFile(`{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}`, 20), Failed, "needs 24 bytes"},
		{"gap", stFile(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}`, 12), Failed, "gap of 4 bytes"},
		{"overlap", stFile(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, 6), Failed, "overlaps"},
		{"trailing data", stFile(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, 10), Failed, "data section is 10 bytes"},
		{"truncated data", stFile(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, 2), Failed, "data section is 2 bytes"},
		{"reversed offsets", stFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, 4), Failed, "before begin"},
		{"overflowing shape", stFile(`{"a":{"dtype":"F64","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}`, 8), Failed, "overflows"},
		{"negative dim", stFile(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`, 0), Failed, "tensor \"a\""},
		{"three offsets", stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, 1), Failed, "[begin, end]"},
		{"extra field", stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"evil":1}}`, 1), Failed, "unknown field"},
		{"bad metadata", stFile(`{"__metadata__":{"n":1}}`, 0), Failed, "__metadata__"},
		{"duplicate tensor", stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1), Failed, "listed twice"},
		{"sub-byte remainder", stFile(`{"q":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, 2), Failed, "whole bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.Run(context.Background(), subject(registry.KindModel, memFile("model.safetensors", tt.data)))
			wantStatus(t, r, tt.want)
			if !strings.Contains(r.Reason, tt.contains) {
				t.Errorf("reason %q does not contain %q", r.Reason, tt.contains)
			}
		})
	}
}

func TestSafetensorsSkipsOtherModels(t *testing.T) {
	c := buildCheck(t, "safetensors", "")
	wantStatus(t, c.Run(context.Background(), subject(registry.KindModel, memFile("model.gguf", []byte("GGUF")))), Skipped)
}

func TestSafetensorsOpenError(t *testing.T) {
	c := buildCheck(t, "safetensors", "")
	f := memFile("model.safetensors", stFile(`{}`, 0))
	f.Open = failingOpener
	wantStatus(t, c.Run(context.Background(), subject(registry.KindModel, f)), Errored)
}

func TestAllowedFormats(t *testing.T) {
	def := buildCheck(t, "allowed-formats", "")
	custom := buildCheck(t, "allowed-formats", "extensions: [.safetensors, .PT]")
	tests := []struct {
		name  string
		check Check
		files []string
		want  Status
	}{
		{"hf model dir", def, []string{"model-00001-of-00002.safetensors", "config.json", "tokenizer.json", "vocab.txt", "tokenizer.model"}, Passed},
		{"gguf and onnx", def, []string{"m.gguf", "m.onnx"}, Passed},
		{"pickle refused by default", def, []string{"model.safetensors", "pytorch_model.bin"}, Failed},
		{"script refused", def, []string{"model.safetensors", "setup.py"}, Failed},
		{"no extension", def, []string{"Makefile"}, Failed},
		{"custom list, case-insensitive", custom, []string{"a.safetensors", "b.pt"}, Passed},
		{"custom list refuses json", custom, []string{"config.json"}, Failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []File
			for _, p := range tt.files {
				files = append(files, memFile(p, nil))
			}
			wantStatus(t, tt.check.Run(context.Background(), subject(registry.KindModel, files...)), tt.want)
		})
	}
}
