package handlers

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/store"
	"devicehooks/web"
)

// requestsPerPage is how many webhook calls the requests page lists at once.
const requestsPerPage = 50

// requestRow is one webhook call as the page shows it.
type requestRow struct {
	store.RequestLog
	Latency string // "3.2 ms"
}

type requestsView struct {
	Requests []requestRow
	Filter   store.RequestFilter
	Filtered bool
	Chips    []filterChip        // the active filters, each with a link that removes it
	Sources  []store.SourceCount // the busiest addresses of the last hour
	Pager    pager
}

// filterChip is an active filter of a list: "code unauthorized ×".
type filterChip struct {
	Name   string    // the query parameter: "code", "source", "key"
	Label  string    // "code", "source", "key"
	Value  string    // what it is filtered to, as the title says it
	Time   web.Stamp // the instant it is filtered to, shown instead of Value
	Title  string    // more about it (the key's name), or ""
	Remove string    // the list's address without this filter
}

// requestFilterOf reads the request log's filters from the query: the code
// trimmed and lowercased (codes are lowercase), the address and key trimmed.
func requestFilterOf(c *gin.Context) store.RequestFilter {
	return store.RequestFilter{
		Code:   strings.ToLower(strings.TrimSpace(c.Query("code"))),
		Source: strings.TrimSpace(c.Query("source")),
		KeyID:  strings.TrimSpace(c.Query("key")),
	}
}

// requestChips lists the active filters, naming a key by its prefix.
func (u *ui) requestChips(c *gin.Context, f store.RequestFilter) ([]filterChip, error) {
	q := url.Values{}
	for name, v := range map[string]string{"key": f.KeyID, "code": f.Code, "source": f.Source} {
		if v != "" {
			q.Set(name, v)
		}
	}
	var chips []filterChip
	if f.KeyID != "" {
		chip, err := u.keyChip(c, f.KeyID, withoutFilter("/requests", q, "key"))
		if err != nil {
			return nil, err
		}
		chips = append(chips, chip)
	}
	if f.Code != "" {
		chips = append(chips, filterChip{Name: "code", Label: "code", Value: f.Code, Remove: withoutFilter("/requests", q, "code")})
	}
	if f.Source != "" {
		chips = append(chips, filterChip{Name: "source", Label: "source", Value: f.Source, Remove: withoutFilter("/requests", q, "source")})
	}
	return chips, nil
}

// keyChip is the filter chip of an API key, named by its prefix, with the
// key's name as its title (a revoked key's too, saying so).
func (u *ui) keyChip(c *gin.Context, id, remove string) (filterChip, error) {
	ctx := c.Request.Context()
	chip := filterChip{Name: "key", Label: "key", Value: id, Remove: remove}
	k, err := u.Store.APIKey(ctx, id)
	if isUserError(err) {
		if k, err = u.Store.RevokedAPIKey(ctx, id); err == nil {
			k.Name += " (revoked)"
		}
	}
	switch {
	case err == nil:
		chip.Value, chip.Title = k.Prefix+"…", k.Name
	case isUserError(err):
		chip.Title = "no such API key"
	default:
		return chip, err
	}
	return chip, nil
}

// withoutFilter is the address of a list at path with the filters q but
// the one named.
func withoutFilter(path string, q url.Values, name string) string {
	rest := url.Values{}
	for k, v := range q {
		if k != name {
			rest[k] = v
		}
	}
	if len(rest) == 0 {
		return path
	}
	return path + "?" + rest.Encode()
}

// chipsTitle says what a list is filtered to, for its title: "code
// unauthorized, source 192.0.2.7".
func chipsTitle(chips []filterChip) string {
	filters := make([]string, len(chips))
	for i, chip := range chips {
		filters[i] = chip.Label + " " + chip.Value
	}
	return strings.Join(filters, ", ")
}

// requestList shows the request log: every webhook call, accepted or not, newest
// first, filtered by code, source address or key, with the busiest sources.
func (u *ui) requestList(c *gin.Context) {
	ctx := c.Request.Context()
	f := requestFilterOf(c)
	pg, offset := pagerOf(c, requestsPerPage)
	for name, v := range map[string]string{"code": f.Code, "source": f.Source, "key": f.KeyID} {
		if v == "" {
			pg.query.Del(name)
		} else {
			pg.query.Set(name, v)
		}
	}
	rs, total, err := u.Store.RequestLogs(ctx, f, store.Page{Limit: requestsPerPage, Offset: offset})
	if err != nil {
		u.fail(c, err)
		return
	}
	pg.setTotal(total, requestsPerPage)
	sources, err := u.Store.TopSources(ctx, time.Now().UTC().Add(-time.Hour), 10)
	if err != nil {
		u.fail(c, err)
		return
	}
	chips, err := u.requestChips(c, f)
	if err != nil {
		u.fail(c, err)
		return
	}
	rows := make([]requestRow, len(rs))
	for i, r := range rs {
		rows[i] = requestRow{RequestLog: r, Latency: strconv.FormatFloat(float64(r.LatencyUS)/1000, 'f', 1, 64) + " ms"}
	}
	u.render(c, http.StatusOK, "requests", &web.View{Title: pg.title("Requests", chipsTitle(chips)), Nav: "requests", Data: requestsView{
		Requests: rows, Filter: f, Filtered: len(chips) > 0, Chips: chips, Sources: sources, Pager: pg,
	}})
}
