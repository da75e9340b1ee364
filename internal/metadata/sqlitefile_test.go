package metadata

import "testing"

func TestSQLiteFile(t *testing.T) {
	tests := []struct {
		dsn    string
		want   string
		isFile bool
	}{
		{"metadata.db", "metadata.db", true},
		{"/var/lib/stagegate/metadata.db?_pragma=foreign_keys(1)", "/var/lib/stagegate/metadata.db", true},
		{"file:metadata.db", "metadata.db", true},
		{"file:/abs/metadata.db?mode=rwc", "/abs/metadata.db", true},
		{"file:///abs/metadata.db", "/abs/metadata.db", true},
		{"file://localhost/abs/metadata.db", "/abs/metadata.db", true},
		{"file:my%20data.db#fragment", "my data.db", true},
		{"file://elsewhere/abs/metadata.db", "", false},
		{":memory:", "", false},
		{"file::memory:?cache=shared", "", false},
		{"file:metadata.db?mode=memory", "", false},
		{"file:", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.dsn, func(t *testing.T) {
			got, ok := sqliteFile(tc.dsn)
			if got != tc.want || ok != tc.isFile {
				t.Errorf("sqliteFile(%q) = %q, %v; want %q, %v", tc.dsn, got, ok, tc.want, tc.isFile)
			}
		})
	}
}
