package server

import (
	"io/fs"
	"log/slog"
	"os"

	"github.com/stagegate/stagegate/internal/config"
)

// warnOpenDataDir warns when the data directory can be read by other users
// of the host. It holds the embedded default's database (API key hashes,
// the audit trail), blobs and encrypted signing keys with their generated
// password. stagegate creates it 0700 but does not change the mode of a
// directory an operator made: that may be deliberate (a shared volume), so
// it says so instead.
func warnOpenDataDir(cfg config.Config, logger *slog.Logger) {
	info, err := os.Stat(cfg.DataDir)
	if err != nil || !info.IsDir() {
		return
	}
	if perm := info.Mode().Perm(); perm&0o007 != 0 {
		logger.Warn("the data directory is accessible to other users of this host; run chmod 700 on it",
			"data_dir", cfg.DataDir, "mode", fs.FileMode(perm).String())
	}
}
