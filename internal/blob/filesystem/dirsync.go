package filesystem

import (
	"os"
	"sync"
)

// dirSyncer coalesces directory fsyncs. Every Put links a new entry into a
// directory and must make that entry durable before it returns; small
// publishes put the blob, config and manifest into the same directory
// (blobs/sha256/), so under concurrency one fsync(2) of the directory can
// stand for many links instead of one fsync each.
//
// Crash safety is unchanged: a caller returns only after an fsync of its
// directory that started after its own link(2)/rename(2) completed, and
// fsync of a directory makes every entry present when it starts durable.
// A caller that arrives while a sync is running joins the next batch, never
// the running one, whose start may predate its link.
type dirSyncer struct {
	mu   sync.Mutex
	dirs map[string]*dirState
	// fsync is fsyncDir; tests replace it to observe batching.
	fsync func(dir string)
}

type dirState struct {
	running bool
	next    *syncBatch // callers waiting for a sync that has not started
}

type syncBatch struct{ done chan struct{} }

// sync makes the entries of dir present now durable. Like the single
// fsync it replaces, failures are not reported: the entry is already
// visible and cannot be taken back.
func (s *dirSyncer) sync(dir string) {
	s.mu.Lock()
	if s.dirs == nil {
		s.dirs = map[string]*dirState{}
	}
	st := s.dirs[dir]
	if st == nil {
		st = &dirState{}
		s.dirs[dir] = st
	}
	b := st.next
	if b == nil {
		b = &syncBatch{done: make(chan struct{})}
		st.next = b
	}
	if st.running {
		s.mu.Unlock()
		<-b.done
		return
	}
	st.running = true
	st.next = nil
	s.mu.Unlock()
	s.run(dir, st, b)
}

// run syncs dir for batch b, then hands any batch that gathered meanwhile
// to a goroutine so that the caller is not held serving others.
func (s *dirSyncer) run(dir string, st *dirState, b *syncBatch) {
	if s.fsync != nil {
		s.fsync(dir)
	} else {
		fsyncDir(dir)
	}
	s.mu.Lock()
	close(b.done)
	nb := st.next
	if nb == nil {
		st.running = false
		delete(s.dirs, dir)
		s.mu.Unlock()
		return
	}
	st.next = nil
	s.mu.Unlock()
	go s.run(dir, st, nb)
}

func fsyncDir(dir string) {
	if df, err := os.Open(dir); err == nil {
		_ = df.Sync()
		df.Close()
	}
}
