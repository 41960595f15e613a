package handlers

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/store"
)

type requestView struct {
	ID         string    `json:"id"`
	At         time.Time `json:"at"`
	Method     string    `json:"method"`
	KeyID      *string   `json:"key_id"` // null: no key, or none that was found
	KeyPrefix  *string   `json:"key_prefix"`
	Source     string    `json:"source"`
	UserAgent  string    `json:"user_agent"`
	EventID    *string   `json:"event_id"`
	Status     int       `json:"status"`
	Code       string    `json:"code"`
	DispatchID *string   `json:"dispatch_id"`
	LatencyMS  float64   `json:"latency_ms"`
}

// timeParam reads an RFC 3339 query parameter. It forgives what a hand-typed
// URL does to one: a "+" offset not written %2B arrives as a space, and "t"
// and "z" in lower case (which RFC 3339 allows).
func timeParam(c *gin.Context, name string) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return time.Time{}, nil
	}
	v = strings.ToUpper(v)
	if m := plusAsSpace.FindStringSubmatchIndex(v); m != nil {
		v = v[:m[2]] + "+" + v[m[2]+1:]
	}
	t, err := time.Parse(time.RFC3339, v)
	switch {
	case err != nil:
		return t, badRequest("%s must be an RFC 3339 time, such as 2026-11-24T09:30:00Z (an offset's + written %%2B)", name)
	case t.UTC().Year() < 1 || t.UTC().Year() > 9999:
		// An offset can take 0000-01-01 or 9999-12-31 past what the
		// database's times hold; SQLite's text sorts the year 10000 first.
		return t, badRequest("%s must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z", name)
	}
	return t.UTC(), nil
}

// plusAsSpace finds the space that an unescaped "+" of an offset became.
var plusAsSpace = regexp.MustCompile(`\d( )\d\d:\d\d$`)

// windowOf reads ?since= and ?until=, RFC 3339 times that bound a list by
// when its rows were made: from since, up to but not including until.
func windowOf(c *gin.Context) (since, until time.Time, err error) {
	if since, err = timeParam(c, "since"); err == nil {
		until, err = timeParam(c, "until")
	}
	return since, until, err
}

func requestViewOf(r *store.RequestLog) requestView {
	return requestView{
		ID: r.ID, At: r.At, Method: r.Method, KeyID: nullIfEmpty(r.KeyID), KeyPrefix: nullIfEmpty(r.KeyPrefix), Source: r.Source,
		UserAgent: r.UserAgent, EventID: nullIfEmpty(r.EventID), Status: r.Status, Code: r.Code, DispatchID: nullIfEmpty(r.DispatchID),
		LatencyMS: float64(r.LatencyUS) / 1000,
	}
}

// listRequests lists webhook calls, filtered by code, key_id, source, method,
// since and until. Codes and methods are matched in any case, as the UI's
// filters are, and every filter without the spaces around it.
func (a *api) listRequests(c *gin.Context) {
	q := func(name string) string { return strings.TrimSpace(c.Query(name)) }
	f := store.RequestFilter{Code: strings.ToLower(q("code")), KeyID: q("key_id"), Source: q("source"), Method: strings.ToUpper(q("method"))}
	var err error
	if f.Since, f.Until, err = windowOf(c); err != nil {
		respondError(c, a.Log, err)
		return
	}
	serveList(a, c, func(ctx context.Context, p store.Page) ([]store.RequestLog, int64, error) {
		return a.Store.RequestLogs(ctx, f, p)
	}, requestViewOf)
}

// topSources shows who called most since ?since= (default: the last hour).
func (a *api) topSources(c *gin.Context) {
	since, err := timeParam(c, "since")
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	if since.IsZero() {
		since = time.Now().Add(-time.Hour)
	}
	out, err := a.Store.TopSources(c.Request.Context(), since, 20)
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	if out == nil {
		out = []store.SourceCount{}
	}
	c.JSON(http.StatusOK, gin.H{"since": since.UTC(), "items": out})
}
