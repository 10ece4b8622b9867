package api

import (
	"fmt"
	"net/http"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/securejingle/securejingle/policy"
)

// Alert feed limits.
const (
	// DefaultAlertsLimit is the page size of GET /v1/alerts without limit.
	DefaultAlertsLimit = 50
	// MaxAlertsLimit bounds the limit of GET /v1/alerts.
	MaxAlertsLimit = 200
	// MaxAlertCursor bounds the before parameter of GET /v1/alerts.
	MaxAlertCursor = 128
)

// AlertRecord is one alert of GET /v1/alerts: the record of the audit
// log (the alert object of "alert" events), with what to do about it and
// whether the user has seen it.
type AlertRecord struct {
	policy.Alert
	// Remedy says what the user should do (see policy.Remedy).
	Remedy string `json:"remedy,omitempty"`
	// Unseen: the alert is newer than the last one marked seen.
	Unseen bool `json:"unseen,omitempty"`
}

// AlertsQuery is a validated GET /v1/alerts request.
type AlertsQuery struct {
	Text   string // search text, "" for all
	Before string // a Next of an earlier answer, "" for the newest
	Limit  int    // 0 to MaxAlertsLimit
}

// AlertsResponse is the answer of GET /v1/alerts.
type AlertsResponse struct {
	// Alerts are the matching alerts, newest first.
	Alerts []AlertRecord `json:"alerts"`
	// Next is the before parameter of the next (older) page when More is
	// set.
	Next string `json:"next,omitempty"`
	// More reports that older alerts may match: the page is full, or the
	// search stopped after reading as much as one request may read.
	More bool `json:"more"`
	// Unseen counts the alerts newer than the last one marked seen (at
	// most UnseenMax; UnseenCapped says there are more).
	Unseen       int  `json:"unseen"`
	UnseenCapped bool `json:"unseen_capped,omitempty"`
	// Seen is the id of the newest alert marked seen, "" when none.
	Seen string `json:"seen,omitempty"`
}

// SeenRequest is the body of POST /v1/alerts/seen.
type SeenRequest struct {
	// ID marks this alert and every older one seen; "" marks every alert.
	ID string `json:"id,omitempty"`
}

// SeenResponse is the answer of POST /v1/alerts/seen.
type SeenResponse struct {
	Unseen       int    `json:"unseen"`
	UnseenCapped bool   `json:"unseen_capped,omitempty"`
	Seen         string `json:"seen,omitempty"`
}

// An AlertBackend is a [Backend] with an alert feed: the audit log,
// searchable and paged, and a mark of the alerts the user has seen. The
// server finds it by type assertion and answers the alert endpoints
// with 503 when the backend is not one.
type AlertBackend interface {
	// Alerts returns a page of the audit log, newest first. A Before that
	// does not parse wraps [ErrInvalid].
	Alerts(q AlertsQuery) (AlertsResponse, error)
	// MarkSeen marks alert id and the older ones seen ("" marks all). An
	// id that is not among the recent alerts wraps [ErrNotFound].
	MarkSeen(id string) (SeenResponse, error)
}

func (s *Server) alerts() (AlertBackend, error) {
	ab, ok := s.b.(AlertBackend)
	if !ok {
		return nil, fmt.Errorf("%w: this daemon has no alert feed", ErrUnavailable)
	}
	return ab, nil
}

// checkAlertsQuery validates the parameters of GET /v1/alerts.
func checkAlertsQuery(r *http.Request) (AlertsQuery, error) {
	q := AlertsQuery{Limit: DefaultAlertsLimit}
	if err := checkQuery(r, "q", "before", "limit"); err != nil {
		return q, err
	}
	v := r.URL.Query()
	q.Text, q.Before = v.Get("q"), v.Get("before")
	if err := checkSearchText("q", q.Text, policy.MaxAuditQuery); err != nil {
		return q, err
	}
	if len(q.Before) > MaxAlertCursor {
		return q, fmt.Errorf("%w: before: at most %d characters (pass the next value of an earlier answer)", ErrInvalid, MaxAlertCursor)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 || n > MaxAlertsLimit || (len(l) > 1 && l[0] == '0') || l[0] == '+' {
			return q, fmt.Errorf("%w: limit must be a number from 0 to %d", ErrInvalid, MaxAlertsLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// checkSearchText checks a search parameter: valid UTF-8 of at most max
// bytes without control characters.
func checkSearchText(field, s string, max int) error {
	switch {
	case len(s) > max:
		return fmt.Errorf("%w: %s: at most %d bytes", ErrInvalid, field, max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return fmt.Errorf("%w: %s holds a control character", ErrInvalid, field)
		}
	}
	return nil
}

func (s *Server) handleAlerts(w http.ResponseWriter, r *http.Request) {
	ab, err := s.alerts()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q, err := checkAlertsQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp, err := ab.Alerts(q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if resp.Alerts == nil {
		resp.Alerts = []AlertRecord{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleAlertsSeen(w http.ResponseWriter, r *http.Request) {
	ab, err := s.alerts()
	if err == nil {
		err = checkQuery(r)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req SeenRequest
	if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
		if !decode(w, r, MaxRequestBody, &req) {
			return
		}
	}
	if len(req.ID) > 64 {
		s.fail(w, r, fmt.Errorf("%w: id: at most 64 characters (an alert's id)", ErrInvalid))
		return
	}
	resp, err := ab.MarkSeen(req.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
