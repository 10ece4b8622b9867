package webapp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/securejingle/securejingle/dtls"
	"github.com/securejingle/securejingle/internal/api"
)

// Limits of login tokens and sessions.
const (
	// TokenTTL is how long a login token may be used.
	TokenTTL = 2 * time.Minute
	// MaxTokens bounds the login tokens outstanding (issued, not used, not
	// expired); issuing one more retires the oldest.
	MaxTokens = 4
	// maxTokenRecords bounds the tokens remembered, used or expired ones
	// included, so that a replayed link is told apart from a wrong one.
	maxTokenRecords = 32
	// tokenMemory is how long a used or expired token is remembered.
	tokenMemory = time.Hour
	// SessionTTL is the lifetime of a session, from login.
	SessionTTL = 12 * time.Hour
	// MaxSessions bounds the sessions; a new login ends the oldest.
	MaxSessions = 8
	// secretBytes is the size of tokens, session ids and CSRF tokens.
	secretBytes = 32
)

// Errors of login.
var (
	// ErrTokenUnknown: the token was never issued (mistyped, or issued by
	// another daemon or before a restart).
	ErrTokenUnknown = errors.New("webapp: unknown login token")
	// ErrTokenUsed: the token was already exchanged for a session. The
	// second use also ends that session: one of the two users of the
	// link is not the user ([auth.redeem]).
	ErrTokenUsed = errors.New("webapp: login token already used")
	// ErrTokenExpired: the token is older than TokenTTL, or was retired
	// by newer ones.
	ErrTokenExpired = errors.New("webapp: login token expired")
)

// tokenState is the state of a remembered token.
type tokenState int

const (
	tokenFresh tokenState = iota
	tokenUsed
	tokenRetired
)

type tokenRecord struct {
	hash    [sha256.Size]byte
	issued  time.Time
	expires time.Time
	state   tokenState
	// sess is the session the token opened, while it lives.
	sess *session
}

// endedRecord remembers a session ended because its login link was used
// again, so that its page is told why.
type endedRecord struct {
	id    [sha256.Size]byte
	ended time.Time
}

type session struct {
	id [sha256.Size]byte // hash of the cookie value
	// base is the session's path ("/s/" and a secret): the cookie's
	// Path, under which the page reaches /api and /logout. Browsers send
	// a host's cookies to every port of it, but only to paths under the
	// cookie's, so no server on another port gets the cookie.
	base    string
	csrf    string
	created time.Time
	expires time.Time
	// leg is the DTLS certificate of the session's local call leg: the
	// daemon presents it to this session's browser, whose page pins its
	// fingerprint (GET /api/session leg_fingerprint).
	leg            *dtls.Certificate
	legFingerprint string
	// ctx ends with the session (logout, a newer login that retires it,
	// expiry): the session's requests in flight, event streams and
	// downloads included, end with it.
	ctx    context.Context
	cancel context.CancelFunc
}

// auth holds the login tokens and sessions of one web server. Secrets are
// kept only as SHA-256 hashes and compared in constant time.
type auth struct {
	now func() time.Time

	mu       sync.Mutex
	tokens   []*tokenRecord // oldest first
	sessions []*session     // oldest first
	// reused are the sessions ended because their link was used again,
	// oldest first: at most maxTokenRecords, for tokenMemory.
	reused []endedRecord
}

func newAuth(now func() time.Time) *auth {
	if now == nil {
		now = time.Now
	}
	return &auth{now: now}
}

// randomSecret returns secretBytes random bytes, base64url without
// padding.
func randomSecret() string {
	b := make([]byte, secretBytes)
	rand.Read(b) // never fails (crypto/rand panics on a broken system)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeSecret hashes s if it is a well-formed secret.
func decodeSecret(s string) ([sha256.Size]byte, bool) {
	if base64.RawURLEncoding.EncodedLen(secretBytes) != len(s) {
		return [sha256.Size]byte{}, false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != secretBytes {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256(b), true
}

// issueToken returns a fresh login token and when it expires.
func (a *auth) issueToken() (string, time.Time) {
	tok := randomSecret()
	h, _ := decodeSecret(tok)
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pruneTokens(now)
	fresh := 0
	for _, r := range a.tokens {
		if r.state == tokenFresh {
			fresh++
		}
	}
	for _, r := range a.tokens {
		if fresh < MaxTokens {
			break
		}
		if r.state == tokenFresh {
			r.state = tokenRetired
			fresh--
		}
	}
	rec := &tokenRecord{hash: h, issued: now, expires: now.Add(TokenTTL)}
	a.tokens = append(a.tokens, rec)
	if len(a.tokens) > maxTokenRecords {
		a.tokens = a.tokens[len(a.tokens)-maxTokenRecords:]
	}
	return tok, rec.expires
}

// pruneTokens forgets tokens older than tokenMemory; a.mu is held.
func (a *auth) pruneTokens(now time.Time) {
	keep := a.tokens[:0]
	for _, r := range a.tokens {
		if now.Sub(r.issued) < tokenMemory {
			keep = append(keep, r)
		}
	}
	clear(a.tokens[len(keep):])
	a.tokens = keep
}

// redeem exchanges a login token for a new session; it returns the
// session cookie value. Every remembered token is compared, in constant
// time, whatever matches.
func (a *auth) redeem(tok string) (string, *session, error) {
	h, ok := decodeSecret(tok)
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pruneTokens(now)
	var found *tokenRecord
	for _, r := range a.tokens {
		if subtle.ConstantTimeCompare(r.hash[:], h[:]) == 1 && ok {
			found = r
		}
	}
	switch {
	case found == nil:
		return "", nil, ErrTokenUnknown
	case found.state == tokenUsed:
		// Two users of one link: the one who came first may be someone
		// who read it (the terminal, the process list of xdg-open). End
		// the session it opened; its page is told why. Only within the
		// link's lifetime, when the real user can still be the second:
		// later, anyone who once saw the link (a screen share, a pasted
		// log) could otherwise end the session by sending the browser
		// to it.
		if x := found.sess; x != nil && now.Before(found.expires) {
			found.sess = nil
			a.endLocked(x)
			a.reused = append(a.reused, endedRecord{id: x.id, ended: now})
			if len(a.reused) > maxTokenRecords {
				a.reused = a.reused[len(a.reused)-maxTokenRecords:]
			}
		}
		return "", nil, ErrTokenUsed
	case found.state == tokenRetired || !now.Before(found.expires):
		found.state = tokenRetired
		return "", nil, ErrTokenExpired
	}
	leg, legFP, err := api.NewLegCertificate()
	if err != nil {
		return "", nil, err
	}
	found.state = tokenUsed
	id := randomSecret()
	sh, _ := decodeSecret(id)
	s := &session{id: sh, base: basePrefix + randomSecret(), csrf: randomSecret(), created: now, expires: now.Add(SessionTTL), leg: leg, legFingerprint: legFP}
	// The deadline is on the wall clock, a.now is for the checks of tests.
	s.ctx, s.cancel = context.WithTimeout(context.Background(), SessionTTL)
	a.pruneSessions(now)
	if len(a.sessions) >= MaxSessions {
		n := len(a.sessions) - MaxSessions + 1
		for _, old := range a.sessions[:n] {
			old.cancel()
		}
		clear(a.sessions[:n])
		a.sessions = a.sessions[n:]
	}
	a.sessions = append(a.sessions, s)
	found.sess = s
	return id, s, nil
}

// pruneSessions drops expired sessions; a.mu is held.
func (a *auth) pruneSessions(now time.Time) {
	keep := a.sessions[:0]
	for _, s := range a.sessions {
		if now.Before(s.expires) {
			keep = append(keep, s)
		} else {
			s.cancel()
		}
	}
	clear(a.sessions[len(keep):])
	a.sessions = keep
}

// session returns the live session of a cookie value, nil for none;
// reused reports a session ended because its login link was used again.
func (a *auth) session(cookie string) (_ *session, reused bool) {
	h, ok := decodeSecret(cookie)
	if !ok {
		return nil, false
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pruneSessions(now)
	var found *session
	for _, s := range a.sessions {
		if subtle.ConstantTimeCompare(s.id[:], h[:]) == 1 {
			found = s
		}
	}
	for _, r := range a.reused {
		if now.Sub(r.ended) < tokenMemory && subtle.ConstantTimeCompare(r.id[:], h[:]) == 1 {
			reused = true
		}
	}
	return found, reused && found == nil
}

// endSession ends s (logout).
func (a *auth) endSession(s *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.endLocked(s)
}

// endLocked ends s; a.mu is held.
func (a *auth) endLocked(s *session) {
	s.cancel()
	for i, x := range a.sessions {
		if x == s {
			a.sessions = append(a.sessions[:i], a.sessions[i+1:]...)
			break
		}
	}
	for _, r := range a.tokens {
		if r.sess == s {
			r.sess = nil
		}
	}
}

// checkBase reports whether got is the session's base path.
func (s *session) checkBase(got string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.base)) == 1
}

// checkCSRF reports whether got is the session's CSRF token.
func (s *session) checkCSRF(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}
