package metadata

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/stagegate/stagegate/registry"
)

// dbError turns a database failure into a registry error. Failures that a
// retry may cure (cancelled or timed-out contexts, lost connections, busy
// databases) become Unavailable; anything else is Internal. The cause, which
// may contain SQL, goes only into Err: Message is safe for clients.
func dbError(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *registry.Error
	if errors.As(err, &re) {
		return err
	}
	cause := fmt.Errorf("metadata: %s: %w", op, err)
	if transient(err) {
		return &registry.Error{Kind: registry.Unavailable, Code: registry.CodeUnavailable.Name,
			Message: "metadata database unavailable", Err: cause}
	}
	return &registry.Error{Kind: registry.Internal, Code: registry.CodeInternal.Name,
		Message: "internal error", Err: cause}
}

// transient reports whether err is a failure that retrying may cure.
func transient(err error) bool {
	switch {
	case errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone):
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:min(2, len(pgErr.Code))] {
		case "08", // connection exception
			"53", // insufficient resources
			"57": // operator intervention (shutdown, query cancelled)
			return true
		}
		// serialization_failure, deadlock_detected
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() & 0xff { // primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
}
