package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
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
		if m := c.Request.Method; m != http.MethodGet && m != http.MethodHead && c.Writer.Status() < 400 {
			log.Info("api: change", "method", m, "route", c.FullPath(), "id", c.Param("id"),
				"status", c.Writer.Status(), "by", name)
		}
	}
}

// bindJSON decodes a JSON request body into dst. Malformed JSON is a 400; a
// field of the wrong type, or one the endpoint does not know (a typo such as
// "enable" would otherwise be dropped without a word), is a 422 naming it.
// Fields of the resource's view that dst does not take (id, created_at, ...)
// are ignored, so that what a GET answered can be sent back with a change.
func bindJSON(c *gin.Context, dst, view any) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 1<<20))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return tooLarge(1 << 20)
	}
	if err != nil {
		return badRequest("could not read the request body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(withoutViewOnly(body, dst, view)))
	dec.DisallowUnknownFields()
	err = dec.Decode(dst)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return badRequest("the body must be %s, not %s", jsonKind(typeErr.Type), typeErr.Value)
	case errors.As(err, &typeErr):
		return actions.Invalid(typeErr.Field, "must be %s, not %s", jsonKind(typeErr.Type), typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return actions.Invalid(field, "is not a field of this endpoint")
	}
	return badRequest("the body is not valid JSON: %v", err)
}

// withoutViewOnly returns body without the top-level fields that view has and
// dst does not; body itself if there are none (or it is not an object).
func withoutViewOnly(body []byte, dst, view any) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return body
	}
	takes := jsonFields(reflect.TypeOf(dst), nil)
	dropped := false
	for name := range jsonFields(reflect.TypeOf(view), nil) {
		if _, ok := obj[name]; ok && !takes[name] {
			delete(obj, name)
			dropped = true
		}
	}
	if !dropped {
		return body
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return body
	}
	return out
}

// jsonFields adds the JSON names of a struct's top-level fields (embedded
// structs' included, as encoding/json promotes them) to names.
func jsonFields(t reflect.Type, names map[string]bool) map[string]bool {
	if names == nil {
		names = map[string]bool{}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return names
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "":
			jsonFields(f.Type, names)
		case !f.IsExported():
		case name == "":
			names[f.Name] = true
		default:
			names[name] = true
		}
	}
	return names
}

// jsonKind names the JSON type that decodes into t, for an error message.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// page reads ?limit= and ?offset=.
func pageOf(c *gin.Context) (store.Page, error) {
	var p store.Page
	for name, dst := range map[string]*int{"limit": &p.Limit, "offset": &p.Offset} {
		v := c.Query(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, badRequest("%s must be a whole number", name)
		}
		*dst = n
	}
	switch {
	case p.Limit == 0:
		p.Limit = 50
	case p.Limit > 500:
		p.Limit = 500
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
