package handlers

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"devicehooks/auth"
	"devicehooks/store"
)

// api serves the management API (CONTRACT §4).
type api struct {
	Deps
}

// requireAdmin authenticates "Authorization: Bearer <admin token>".
func requireAdmin(admins *auth.Admins, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		scheme, token, ok := strings.Cut(c.GetHeader("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") { // the scheme is case-insensitive (RFC 9110)
			c.Header("WWW-Authenticate", `Bearer realm="devicehooks"`)
			respondError(c, log, errAdminTokenMissing)
			return
		}
		name, err := admins.Authenticate(c.Request.Context(), strings.TrimSpace(token))
		if err != nil {
			c.Header("WWW-Authenticate", `Bearer realm="devicehooks", error="invalid_token"`)
			respondError(c, log, err)
			return
		}
		c.Set("admin", name)
		c.Next()
		// Who changed what, as the UI's changes are logged: the route, not the
		// URL, so nothing a caller typed ends up in the log.
		if m := c.Request.Method; m != http.MethodGet && m != http.MethodHead && c.Writer.Status() < http.StatusBadRequest {
			id := c.Param("id")
			if loc := c.Writer.Header().Get("Location"); id == "" && loc != "" {
				id = path.Base(loc) // a create: the new object's id
			}
			log.Info("api: change", "method", m, "route", c.FullPath(), "id", id,
				"status", c.Writer.Status(), "by", name)
		}
	}
}

// takesQuery refuses a request with a query parameter that is not one of
// names (400, naming it and those the route takes).
func takesQuery(log *slog.Logger, names []string) gin.HandlerFunc {
	takes := "takes none"
	if len(names) > 0 {
		takes = "takes " + strings.Join(names, ", ")
	}
	return func(c *gin.Context) {
		query, err := url.ParseQuery(c.Request.URL.RawQuery)
		if err != nil { // a pair that does not read (a ';'), which would be dropped without a word
			respondError(c, log, badRequest("the query cannot be read: %v", err))
			return
		}
		for _, name := range slices.Sorted(maps.Keys(query)) { // the same one named first every time
			if !slices.Contains(names, name) {
				respondError(c, log, badRequest("%q is not a query parameter of %s %s, which %s", name, c.Request.Method, c.FullPath(), takes))
				return
			}
		}
	}
}

// pageOf reads ?limit= and ?offset=.
func pageOf(c *gin.Context) (store.Page, error) {
	var p store.Page
	for name, dst := range map[string]*int{"limit": &p.Limit, "offset": &p.Offset} {
		v := c.Query(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, badRequest("%s must be a whole number, 0 or more", name)
		}
		*dst = n
	}
	switch {
	case p.Limit == 0:
		p.Limit = 50
	case p.Limit > store.MaxPageSize:
		p.Limit = store.MaxPageSize
	}
	return p, nil
}

// list is the shape of every list answer.
type list[T any] struct {
	Items  []T   `json:"items"`
	Total  int64 `json:"total"`
	Limit  int   `json:"limit"`
	Offset int   `json:"offset"`
}

// serveList answers a list endpoint: read the page, fetch, convert each item to
// its view, respond.
func serveList[T, V any](a *api, c *gin.Context, fetch func(context.Context, store.Page) ([]T, int64, error), view func(*T) V) {
	p, err := pageOf(c)
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	items, total, err := fetch(c.Request.Context(), p)
	if err != nil {
		respondError(c, a.Log, err)
		return
	}
	views := make([]V, len(items))
	for i := range items {
		views[i] = view(&items[i])
	}
	respondList(c, views, total, p)
}

func respondList[T any](c *gin.Context, items []T, total int64, p store.Page) {
	if items == nil {
		items = []T{}
	}
	c.JSON(http.StatusOK, list[T]{Items: items, Total: total, Limit: p.Limit, Offset: p.Offset})
}

// created answers 201 with a Location header.
func created(c *gin.Context, location string, body any) {
	c.Header("Location", location)
	c.JSON(http.StatusCreated, body)
}
