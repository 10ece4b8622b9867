package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Server-Sent Events framing (WHATWG HTML, "Server-sent events"): per
// event an "id:" line, one "data:" line of JSON and a blank line; lines
// starting with ':' are comments, used for the ready marker and
// heartbeats.
const (
	sseReady     = ": ready\n\n"
	sseHeartbeat = ": heartbeat\n\n"
)

// handleEvents streams events until the client goes away or the server
// shuts down. The first thing written is a ready comment, sent once the
// subscription exists: a client that has read it sees every later event.
// Then comes the backlog (events published before, or after the
// Last-Event-ID the client sent), marked replayed, then live events.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if err := checkQuery(r); err != nil {
		s.fail(w, r, err)
		return
	}
	last, err := lastEventID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	// The server's ReadTimeout covers a request; a stream outlives it, and
	// a read deadline expiring under it would cancel its context.
	rc.SetReadDeadline(time.Time{})
	backlog, ch, stop := s.b.Subscribe(eventBuffer, last)
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte(sseReady)) {
		return
	}
	send := func(ev Event) bool {
		b, err := json.Marshal(ev)
		if err != nil {
			s.log.Error("encoding event", "err", err)
			return true
		}
		var frame []byte
		if validEventID(ev.ID) {
			frame = append(append(append(frame, "id: "...), ev.ID...), '\n')
		}
		// json.Marshal escapes newlines in strings, so b is one line.
		return write(append(append(append(frame, "data: "...), b...), '\n', '\n'))
	}
	for _, ev := range backlog {
		ev.Replayed = true
		if !send(ev) {
			return
		}
	}
	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if !send(ev) {
				return
			}
		case <-tick.C:
			if !write([]byte(sseHeartbeat)) {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
}

// lastEventID returns the Last-Event-ID header of a request resuming a
// stream, "" without one.
func lastEventID(r *http.Request) (string, error) {
	vs := r.Header.Values("Last-Event-ID")
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", fmt.Errorf("%w: Last-Event-ID repeated", ErrInvalid)
	case vs[0] != "" && !validEventID(vs[0]):
		return "", fmt.Errorf("%w: Last-Event-ID must be an event id (at most %d letters, digits and '-')", ErrInvalid, maxEventIDLen)
	}
	return vs[0], nil
}

// validEventID reports whether id is a well-formed event id: 1 to
// maxEventIDLen ASCII letters, digits and hyphens, so it can never break
// the framing.
func validEventID(id string) bool {
	if id == "" || len(id) > maxEventIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}
