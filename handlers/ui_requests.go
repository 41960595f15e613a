package handlers

import (
	"net/http"
	"strconv"
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
	Sources  []store.SourceCount // the busiest addresses of the last hour
	Pager    pager
}

// requestList shows the request log: every webhook call, accepted or not, newest
// first, filtered by code, source address or key, with the busiest sources.
func (u *ui) requestList(c *gin.Context) {
	ctx := c.Request.Context()
	f := store.RequestFilter{Code: c.Query("code"), Source: c.Query("source"), KeyID: c.Query("key")}
	pg, offset := pagerOf(c, requestsPerPage)
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
	rows := make([]requestRow, len(rs))
	for i, r := range rs {
		rows[i] = requestRow{RequestLog: r, Latency: strconv.FormatFloat(float64(r.LatencyUS)/1000, 'f', 1, 64) + " ms"}
	}
	u.render(c, http.StatusOK, "requests", &web.View{Title: "Requests", Nav: "requests", Data: requestsView{
		Requests: rows, Filter: f, Filtered: f.Code != "" || f.Source != "" || f.KeyID != "", Sources: sources, Pager: pg,
	}})
}
