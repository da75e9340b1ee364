package server

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/internal/config"
)

func TestWarnOpenDataDir(t *testing.T) {
	for _, tt := range []struct {
		mode os.FileMode
		warn bool
	}{{0o700, false}, {0o750, false}, {0o755, true}, {0o777, true}, {0o701, true}} {
		dir := t.TempDir()
		if err := os.Chmod(dir, tt.mode); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		warnOpenDataDir(config.Config{DataDir: dir}, slog.New(slog.NewTextHandler(&logs, nil)))
		if got := strings.Contains(logs.String(), "chmod 700"); got != tt.warn {
			t.Errorf("mode %o: warned %v, want %v (%s)", tt.mode, got, tt.warn, logs.String())
		}
	}
}
