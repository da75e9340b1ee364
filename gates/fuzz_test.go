package gates

import (
	"bytes"
	"testing"
)

func FuzzLoadPolicy(f *testing.F) {
	for _, env := range []string{"staging", "prod"} {
		b, _ := DefaultPolicyBytes(env)
		f.Add(b)
	}
	f.Add([]byte("environment: prod\nchecks:\n  - name: freeze-windows\n    params:\n      windows:\n        - {name: w, cron: \"0 18 * * FRI\", duration: 62h, timezone: Europe/Berlin}\n"))
	f.Add([]byte("environment: prod\nchecks:\n  - name: approvals\n    params: {count: 2, max_age: 3d}\n  - name: soak-time\n    params: {min: 24h}\n"))
	f.Add([]byte("environment: x\nchecks: [{name: metric-rules, params: {rules: [{name: a, expr: 'metrics.a > 1'}]}}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := LoadPolicy(b)
		if err == nil && (p.Environment == "" || len(p.Checks) == 0) {
			t.Fatalf("accepted an incomplete policy: %+v", p)
		}
	})
}

func FuzzParseJUnit(f *testing.F) {
	f.Add([]byte(`<testsuites><testsuite name="a" tests="1"><testcase name="x"><failure/></testcase></testsuite></testsuites>`))
	f.Add([]byte(`<testsuite tests="3" failures="-1"/>`))
	f.Add([]byte(`<testsuite><testsuite><testsuite/></testsuite></testsuite>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseJUnit(b)
		if err == nil && (rep.Tests < 0 || rep.Failures < 0 || rep.Errors < 0) {
			t.Fatalf("negative counts accepted: %+v", rep)
		}
	})
}

func FuzzSafetensorsHeader(f *testing.F) {
	f.Add(stFile(`{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}`, 24))
	f.Add(stFile(`{"__metadata__":{"a":"b"}}`, 0))
	f.Add(stFile(`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, 2))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{'})
	f.Fuzz(func(t *testing.T, b []byte) {
		// The 1 MiB cap keeps memory bounded whatever length is declared.
		h, err := parseSafetensors(bytes.NewReader(b), int64(len(b)), 1<<20)
		if err == nil && h == nil {
			t.Fatal("nil header without error")
		}
	})
}

func FuzzPickleScan(f *testing.F) {
	for _, s := range []string{evilProto0, evilInst, evilBuiltinEval, benignProto2, benignTorch, evilExt} {
		f.Add([]byte(s))
	}
	for _, b := range [][]byte{evilStackGlobal, evilMemo, benignProto4, benignGlobal4, evilUnresolved} {
		f.Add(b)
	}
	f.Add([]byte("\x80\x05\x95\xff\xff\xff\xff\xff\xff\xff\x7f\x8e\xff\xff\xff\xff\xff\xff\xff\xff."))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := buildCheck(t, "pickle-scan", "").(*pickleScan)
		res, _ := scanPickles(bytes.NewReader(b), c)
		if res.pickles > pickleMaxPickles {
			t.Fatalf("walked %d pickles", res.pickles)
		}
	})
}
