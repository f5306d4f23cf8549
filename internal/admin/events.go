package admin

import (
	"net/http"
	"strconv"
	"time"

	"github.com/latchkey/latchkey/storage"
)

// eventView is an audit event as the API shows it.
type eventView struct {
	ID        int64             `json:"id"`
	Time      time.Time         `json:"time"`
	Type      string            `json:"type"`
	Realm     string            `json:"realm,omitempty"`
	ClientID  string            `json:"client_id,omitempty"`
	UserID    string            `json:"user_id,omitempty"`
	SessionID string            `json:"session_id,omitempty"`
	FamilyID  string            `json:"family_id,omitempty"`
	IP        string            `json:"ip,omitempty"`
	UserAgent string            `json:"user_agent,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
}

// listEvents pages the realm's audit events, newest first; the cursor is the last
// event's ID.
func (a *API) listEvents(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := pageQueryOf(r)
	if err != nil {
		return err
	}
	realm := r.PathValue("realm")
	f := storage.AuditFilter{Realm: realm, Type: r.URL.Query().Get("type"), UserID: r.URL.Query().Get("user"),
		ClientID: r.URL.Query().Get("client"), Limit: q.limit + 1}
	for name, v := range map[string]string{"type": f.Type, "user": f.UserID, "client": f.ClientID} {
		if len(v) > 255 {
			return invalidField(name, "is too long")
		}
	}
	if s := r.URL.Query().Get("since"); s != "" {
		if f.Since, err = time.Parse(time.RFC3339, s); err != nil {
			return invalidField("since", "must be an RFC 3339 time, like 2026-01-02T15:04:05Z")
		}
	}
	if q.after != "" {
		if f.Before, err = strconv.ParseInt(q.after, 10, 64); err != nil || f.Before <= 0 {
			return invalidField("after", "is not a cursor of this list")
		}
	}
	if _, err := a.Store.GetRealm(r.Context(), realm); err != nil {
		return realmErr(err)
	}
	events, err := a.Store.ListAudit(r.Context(), f)
	if err != nil {
		return err
	}
	p := page[eventView]{Items: []eventView{}}
	for i, e := range events {
		if i == q.limit {
			p.Next = strconv.FormatInt(p.Items[i-1].ID, 10)
			break
		}
		p.Items = append(p.Items, eventView{ID: e.ID, Time: e.Time, Type: e.Type, Realm: e.Realm, ClientID: e.ClientID,
			UserID: e.UserID, SessionID: e.SessionID, FamilyID: e.FamilyID, IP: e.IP, UserAgent: e.UserAgent, Details: e.Details})
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}
