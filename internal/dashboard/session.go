package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// A session is one signed-in person: the keys they gave, verified, and
// nothing else. The keys live only in this process's memory, never in the
// browser: the browser holds a random session id in an HttpOnly cookie that
// no page script can read (the pages run none anyway).
type session struct {
	csrf    string
	keys    []envKey // in promotion order
	order   []string // every configured environment, in promotion order
	created time.Time

	lastSeen time.Time // guarded by sessionStore.mu
}

// envKey is one verified key: the environment and role the API reported
// for it at sign-in.
type envKey struct {
	Env      string
	Position int
	Role     string
	Actor    string
	KeyID    string
	token    string
}

// key returns the person's key for env. For an environment they hold no
// key for it returns another of their keys, so that the API itself refuses
// the request (403 wrong_environment) and files the attempt in that
// environment's audit trail, exactly as for a request made with curl.
func (s *session) key(env string) (envKey, bool) {
	for _, k := range s.keys {
		if k.Env == env {
			return k, true
		}
	}
	if len(s.keys) == 0 {
		return envKey{}, false
	}
	return s.keys[0], false
}

// holds reports whether the person holds a key for env.
func (s *session) holds(env string) bool {
	_, ok := s.key(env)
	return ok
}

// previous is the environment promotions into env come from ("" for the
// first environment).
func (s *session) previous(env string) string {
	for i, e := range s.order {
		if e == env && i > 0 {
			return s.order[i-1]
		}
	}
	return ""
}

// sessionStore keeps sessions in memory, keyed by the SHA-256 of their id
// (a memory dump or a timing difference reveals no usable id). Sessions end
// after IdleTimeout unused or MaxAge after sign-in, or at sign-out; ended
// sessions are dropped, with their keys, as they are found.
type sessionStore struct {
	mu       sync.Mutex
	byID     map[[32]byte]*session
	idle     time.Duration
	maxAge   time.Duration
	capacity int
	now      func() time.Time
}

var errTooManySessions = errors.New("too many sessions")

func newSessionStore(idle, maxAge time.Duration, capacity int, now func() time.Time) *sessionStore {
	return &sessionStore{byID: map[[32]byte]*session{}, idle: idle, maxAge: maxAge, capacity: capacity, now: now}
}

func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// create stores s and returns its id.
func (st *sessionStore) create(s *session) (string, error) {
	id, err := randomToken()
	if err != nil {
		return "", err
	}
	if s.csrf, err = randomToken(); err != nil {
		return "", err
	}
	now := st.now()
	s.created, s.lastSeen = now, now
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.byID) >= st.capacity {
		st.sweepLocked(now)
		if len(st.byID) >= st.capacity {
			return "", errTooManySessions
		}
	}
	st.byID[sha256.Sum256([]byte(id))] = s
	return id, nil
}

// get returns the live session of id and marks it used.
func (st *sessionStore) get(id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	h := sha256.Sum256([]byte(id))
	now := st.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.byID[h]
	if !ok {
		return nil, false
	}
	if st.expired(s, now) {
		delete(st.byID, h)
		return nil, false
	}
	s.lastSeen = now
	return s, true
}

// end deletes the session of id, dropping its keys.
func (st *sessionStore) end(id string) {
	h := sha256.Sum256([]byte(id))
	st.mu.Lock()
	defer st.mu.Unlock()
	// A request still in flight may hold the session; the keys go with the
	// last reference (Go cannot overwrite a string's bytes in place).
	delete(st.byID, h)
}

func (st *sessionStore) expired(s *session, now time.Time) bool {
	return now.Sub(s.lastSeen) > st.idle || now.Sub(s.created) > st.maxAge
}

func (st *sessionStore) sweepLocked(now time.Time) {
	for h, s := range st.byID {
		if st.expired(s, now) {
			delete(st.byID, h)
		}
	}
}

// len is the number of sessions held (tests).
func (st *sessionStore) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.byID)
}

// sameToken compares a submitted token with the expected one in constant
// time; an empty expected token matches nothing.
func sameToken(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
