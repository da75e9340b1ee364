package client

import (
	"strings"
	"testing"
)

const (
	hexA = "a3f1c0de00000000000000000000000000000000000000000000000000000001"
	hexB = "B3F1C0DE00000000000000000000000000000000000000000000000000000002"
)

func TestApplySHA256Sums(t *testing.T) {
	cases := []struct {
		name    string
		sums    string
		want    map[string]string // disk path -> hex ("" = still unknown)
		wantErr string
	}{
		{
			name: "text and binary markers, ./ and other files",
			sums: hexA + "  ./out/model.bin\n" + hexB + " *out/config.json\n" + hexA + "  out/not-pushed.bin\n",
			want: map[string]string{"out/model.bin": hexA, "out/config.json": strings.ToLower(hexB), "out/tokenizer.json": ""},
		},
		{
			name: "blank lines, comments and CRLF",
			sums: "# built by CI\r\n\r\n" + hexA + "  out/model.bin\r\n",
			want: map[string]string{"out/model.bin": hexA, "out/config.json": ""},
		},
		{name: "one space only", sums: hexA + " out/model.bin\n", wantErr: "line 1"},
		{name: "short digest", sums: hexA[:63] + "  out/model.bin\n", wantErr: "line 1"},
		{name: "not hex", sums: strings.Repeat("z", 64) + "  out/model.bin\n", wantErr: "line 1"},
		{name: "no path", sums: hexA + "  \n", wantErr: "line 1"},
		{name: "two digests for one file", sums: hexA + "  out/model.bin\n" + hexB + "  ./out/model.bin\n", wantErr: "listed twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := []LocalFile{{Path: "model.bin", Disk: "out/model.bin"}, {Path: "config.json", Disk: "out/config.json"}, {Path: "tokenizer.json", Disk: "out/tokenizer.json"}}
			err := ApplySHA256Sums(files, strings.NewReader(tc.sums))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				want, ok := tc.want[f.Disk]
				if ok && f.Digest.Hex != want {
					t.Errorf("%s: digest %q, want %q", f.Disk, f.Digest.Hex, want)
				}
			}
		})
	}
}

func FuzzParseSHA256Sums(f *testing.F) {
	f.Add(hexA + "  out/model.bin\n" + hexB + " *x\n")
	f.Add("# c\r\n\r\n")
	f.Add(hexA + " out\n")
	f.Fuzz(func(t *testing.T, sums string) {
		got, err := parseSHA256Sums(strings.NewReader(sums))
		if err != nil {
			return
		}
		for path, d := range got {
			if d.Algorithm != "sha256" || len(d.Hex) != 64 || strings.ToLower(d.Hex) != d.Hex {
				t.Fatalf("%q: accepted digest %v", path, d)
			}
		}
	})
}
