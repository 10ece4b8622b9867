package api

import (
	"encoding/json"
	"net/http"
	"time"
)

// Server-Sent Events framing (WHATWG HTML, "Server-sent events"): one
// "data:" line of JSON per event and a blank line; lines starting with ':'
// are comments, used for the ready marker and heartbeats.
const (
	sseReady     = ": ready\n\n"
	sseHeartbeat = ": heartbeat\n\n"
)

// handleEvents streams events until the client goes away or the server
// shuts down. The first thing written is a ready comment, sent once the
// subscription exists: a client that has read it sees every later event.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if err := checkQuery(r); err != nil {
		s.fail(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	// The server's ReadTimeout covers a request; a stream outlives it, and
	// a read deadline expiring under it would cancel its context.
	rc.SetReadDeadline(time.Time{})
	ch, stop := s.b.Subscribe(eventBuffer)
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
	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return
			}
			b, err := json.Marshal(ev)
			if err != nil {
				s.log.Error("encoding event", "err", err)
				continue
			}
			// json.Marshal escapes newlines in strings, so b is one line.
			if !write(append(append([]byte("data: "), b...), '\n', '\n')) {
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
