package server

import (
	"testing"
	"time"
)

func TestRateMeter(t *testing.T) {
	type read struct {
		waited time.Duration
		n      int
		times  int
	}
	tests := []struct {
		name  string
		reads []read
		// wantSlowAt is the 0-based index of the first read judged slow;
		// -1 for never.
		wantSlowAt int
	}{
		{"fast client", []read{{10 * time.Millisecond, 4 << 10, 500}}, -1},
		{"just above the minimum", []read{{100 * time.Millisecond, 110, 100}}, -1},
		// 5 B/s: judged at the first read that completes a window.
		{"dribbler", []read{{200 * time.Millisecond, 1, 100}}, 4},
		{"silent for a whole window in one read", []read{{time.Second, 0, 1}}, 0},
		// A burst early on does not buy slowness later: once the burst has
		// left the window, the trickle is judged alone.
		{"burst then trickle", []read{{100 * time.Millisecond, 64 << 10, 1}, {200 * time.Millisecond, 1, 100}}, 6},
		{"trickle then recovery before the first window ends", []read{{200 * time.Millisecond, 1, 4}, {10 * time.Millisecond, 4 << 10, 100}}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newRateMeter(1000, time.Second)
			i, gotSlowAt := 0, -1
			for _, r := range tt.reads {
				for range r.times {
					if _, slow := m.observe(r.waited, r.n); slow && gotSlowAt < 0 {
						gotSlowAt = i
					}
					i++
				}
			}
			if gotSlowAt != tt.wantSlowAt {
				t.Fatalf("first slow read %d, want %d", gotSlowAt, tt.wantSlowAt)
			}
			if len(m.marks) > marksPerWindow+2 {
				t.Fatalf("%d marks kept: memory is not bounded", len(m.marks))
			}
		})
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[float64]string{0: "0 B", 5: "5 B", 1024: "1 KiB", 64 << 10: "64 KiB", 1536: "1.5 KiB", 3 << 30: "3 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%v) = %q, want %q", n, got, want)
		}
	}
}
