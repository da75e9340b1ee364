package metadata

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// timeLayout is how timestamps are stored: UTC, microseconds, fixed width,
// so that comparing the text compares the times.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// normTime is t as the store keeps it: UTC, truncated to microseconds.
func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}

func parseNullTime(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// toJSON encodes a column value. nil slices and maps become "null" and read
// back as nil, so values round-trip exactly.
func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func fromJSON(s string, v any) error {
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("stored JSON: %w", err)
	}
	return nil
}
