package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/securejingle/securejingle/internal/api"
	"github.com/securejingle/securejingle/policy"
)

// The alert feed: GET /v1/alerts pages through the audit log itself,
// read backwards (policy.ScanAudit), so it costs what a page reads
// whatever the log's size. Only the badge state lives in memory: the ids
// of the newest alerts and the one the user last marked seen.

// maxRecentAlerts is how many of the newest alert ids the feed keeps for
// the unseen count; beyond it the count is capped.
const maxRecentAlerts = 4096

// maxAlertIDLen bounds an alert id of a seen mark.
const maxAlertIDLen = 64

// alertFeed implements the daemon's api.AlertBackend on the audit log.
// It is safe for concurrent use.
type alertFeed struct {
	path     string // the audit log
	seenPath string // the seen mark: the id of the newest alert seen
	log      *slog.Logger

	mu     sync.Mutex
	seq    map[string]uint64 // id -> position, for the ids in order
	order  []string          // the newest alert ids, oldest first
	next   uint64            // the position of the next alert
	capped bool              // older alerts than order[0] exist
	seen   string
}

// openAlertFeed reads the newest alert ids of the audit log at path and
// the seen mark stored next to it. A log that cannot be read yet (no
// alert so far) is an empty feed.
func openAlertFeed(path string, logger *slog.Logger) *alertFeed {
	f := &alertFeed{path: path, seenPath: path + ".seen", log: logger, seq: map[string]uint64{}}
	if b, err := os.ReadFile(f.seenPath); err == nil {
		if id := strings.TrimSpace(string(b)); validAlertID(id) {
			f.seen = id
		}
	}
	p, err := policy.ScanAudit(path, policy.AuditQuery{Limit: maxRecentAlerts})
	if err != nil {
		logger.Warn("alert feed: reading the audit log", "path", path, "err", err)
	}
	f.capped = p.More
	for i := len(p.Alerts) - 1; i >= 0; i-- {
		f.noteLocked(p.Alerts[i].ID)
	}
	return f
}

// validAlertID reports whether id can be an alert id: 1 to maxAlertIDLen
// letters, digits, '-' or '_'.
func validAlertID(id string) bool {
	if id == "" || len(id) > maxAlertIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// note records a new alert and returns the unseen count.
func (f *alertFeed) note(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteLocked(id)
	n, _ := f.unseenLocked()
	return n
}

func (f *alertFeed) noteLocked(id string) {
	if _, dup := f.seq[id]; dup || id == "" {
		return
	}
	if len(f.order) >= maxRecentAlerts {
		delete(f.seq, f.order[0])
		f.order = f.order[1:]
		f.capped = true
	}
	f.seq[id] = f.next
	f.next++
	f.order = append(f.order, id)
}

// unseenLocked counts the alerts after the seen mark; capped says there
// may be more than counted.
func (f *alertFeed) unseenLocked() (int, bool) {
	if s, ok := f.seq[f.seen]; ok {
		return int(f.next - 1 - s), false
	}
	return len(f.order), f.capped
}

// isUnseenLocked reports whether the alert id is newer than the seen
// mark; alerts older than the ids kept count as seen.
func (f *alertFeed) isUnseenLocked(id string) bool {
	p, ok := f.seq[id]
	if !ok {
		return false
	}
	s, ok := f.seq[f.seen]
	return !ok || p > s
}

// Alerts implements api.AlertBackend.
func (f *alertFeed) Alerts(q api.AlertsQuery) (api.AlertsResponse, error) {
	before, err := policy.ParseAuditCursor(q.Before)
	if err != nil {
		return api.AlertsResponse{}, fmt.Errorf("%w: before: pass the next value of an earlier answer", api.ErrInvalid)
	}
	p, err := policy.ScanAudit(f.path, policy.AuditQuery{Text: q.Text, Before: before, Limit: q.Limit})
	if err != nil {
		return api.AlertsResponse{}, fmt.Errorf("daemon: alert feed: %w", err)
	}
	resp := api.AlertsResponse{Alerts: make([]api.AlertRecord, 0, len(p.Alerts)), More: p.More}
	if p.More {
		resp.Next = p.Next.String()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range p.Alerts {
		resp.Alerts = append(resp.Alerts, api.AlertRecord{Alert: a, Remedy: policy.Remedy(a), Unseen: f.isUnseenLocked(a.ID)})
	}
	resp.Unseen, resp.UnseenCapped = f.unseenLocked()
	resp.Seen = f.seen
	return resp, nil
}

// MarkSeen implements api.AlertBackend. The mark never moves back to an
// older alert, and is kept next to the audit log across restarts.
func (f *alertFeed) MarkSeen(id string) (api.SeenResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case id == "" && len(f.order) > 0:
		id = f.order[len(f.order)-1]
	case id == "":
	case !validAlertID(id):
		return api.SeenResponse{}, fmt.Errorf("%w: id: not an alert id", api.ErrInvalid)
	default:
		if _, ok := f.seq[id]; !ok {
			return api.SeenResponse{}, fmt.Errorf("%w: no alert %s among the newest %d (mark all seen with an empty id)", api.ErrNotFound, id, maxRecentAlerts)
		}
	}
	if cur, ok := f.seq[f.seen]; id != "" && (!ok || f.seq[id] > cur) {
		f.seen = id
		if err := writeFileAtomic(f.seenPath, []byte(id+"\n")); err != nil {
			// The mark holds in memory; only a restart forgets it.
			f.log.Warn("alert feed: storing the seen mark", "path", f.seenPath, "err", err)
		}
	}
	n, capped := f.unseenLocked()
	return api.SeenResponse{Unseen: n, UnseenCapped: capped, Seen: f.seen}, nil
}

// writeFileAtomic replaces path with data (mode 0600) by a rename, so a
// crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
