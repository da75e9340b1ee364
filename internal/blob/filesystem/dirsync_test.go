package filesystem

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A caller arriving while a sync runs must wait for a later sync: the
// running one may have started before its link, so it proves nothing.
func TestDirSyncerJoinsNextBatch(t *testing.T) {
	var calls atomic.Int32
	started := make(chan struct{}, 8)
	release := make(chan struct{})
	s := &dirSyncer{fsync: func(string) {
		calls.Add(1)
		started <- struct{}{}
		<-release
	}}
	first := make(chan struct{})
	go func() { s.sync("d"); close(first) }()
	<-started // first sync is running

	const late = 5
	var wg sync.WaitGroup
	var returned atomic.Int32
	for i := 0; i < late; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); s.sync("d"); returned.Add(1) }()
	}
	// Let the late callers queue up behind the running sync.
	for deadline := time.Now().Add(2 * time.Second); ; {
		s.mu.Lock()
		queued := s.dirs["d"] != nil && s.dirs["d"].next != nil
		s.mu.Unlock()
		if queued || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	release <- struct{}{} // finish the first sync only
	<-first
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d late callers returned on a sync that started before they arrived", n)
	}
	<-started // the second sync covers all late callers
	release <- struct{}{}
	wg.Wait()
	if n := calls.Load(); n != 2 {
		t.Errorf("fsync calls = %d, want 2 (one per batch)", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dirs) != 0 {
		t.Errorf("idle syncer keeps %d directory states", len(s.dirs))
	}
}

func TestDirSyncerRealDirectory(t *testing.T) {
	s := &dirSyncer{}
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); s.sync(dir) }()
	}
	wg.Wait()
	s.sync(dir + "/missing") // an unopenable directory is not reported, as before
}

// TestPutSyncsNewDirectories: a Put into directories it creates makes each
// new directory's entry durable (an fsync of its parent), and the object's
// entry (an fsync of its own directory); a Put into existing directories
// syncs only its own.
func TestPutSyncsNewDirectories(t *testing.T) {
	for _, anonymous := range []bool{true, false} {
		d, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		d.anonymous = d.anonymous && anonymous
		var mu sync.Mutex
		var synced []string
		d.dsync.fsync = func(dir string) {
			mu.Lock()
			synced = append(synced, strings.TrimPrefix(strings.TrimPrefix(dir, d.root), "/"))
			mu.Unlock()
		}
		ctx := context.Background()
		if err := d.Put(ctx, "signatures/sha256/abc/simplesigning/key", strings.NewReader("sig"), 3); err != nil {
			t.Fatal(err)
		}
		want := []string{"", "signatures", "signatures/sha256", "signatures/sha256/abc", "signatures/sha256/abc/simplesigning"}
		if !slices.Equal(synced, want) {
			t.Errorf("anonymous=%v: first Put synced %q, want %q", anonymous, synced, want)
		}
		synced = nil
		if err := d.Put(ctx, "signatures/sha256/abc/simplesigning/other", strings.NewReader("sig"), 3); err != nil {
			t.Fatal(err)
		}
		if want := []string{"signatures/sha256/abc/simplesigning"}; !slices.Equal(synced, want) {
			t.Errorf("anonymous=%v: second Put synced %q, want %q", anonymous, synced, want)
		}
	}
}
