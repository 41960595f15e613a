package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
)

// bindJSON decodes a management API request body into dst. Malformed JSON is
// a 400; a field the endpoint does not know (a typo such as "enable" would
// otherwise be dropped without a word) or of the wrong type is a 422 naming
// it by its path ("target.type"). Fields of the resource's view that dst does
// not take (id, created_at, ...) are ignored, so that what a GET answered can
// be sent back with a change.
func bindJSON(c *gin.Context, dst, view any) error {
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	return decodeJSON(body, dst, view)
}

// readJSONBody reads a management API request body: at most 1 MiB, in UTF-8
// (as JSON must be: encoding/json would turn each bad byte into U+FFFD and
// save a name other than the one sent), without the byte-order mark some
// tools write before it (PowerShell 5's Out-File -Encoding utf8).
func readJSONBody(c *gin.Context) ([]byte, error) {
	body, err := readLimited(c, 1<<20)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(body) {
		return nil, badRequest("the body is not valid UTF-8, which JSON must be")
	}
	if loneSurrogate(body) {
		return nil, badRequest(`the body escapes half of a UTF-16 surrogate pair alone (such as \ud800), which is no character`)
	}
	return bytes.TrimPrefix(body, utf8BOM), nil
}

// loneSurrogate tells whether a JSON text has an escape of half a UTF-16
// surrogate pair without the other half ("\ud800x"), which encoding/json
// decodes as U+FFFD: a name other than the one sent would be saved.
func loneSurrogate(b []byte) bool {
	escaped := func(i int) (rune, bool) { // the \uXXXX at i
		if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		r, ok := escaped(i)
		if !ok { // another escape (\\, \n): its next byte is no escape's start
			i++
			continue
		}
		i += 5
		if !utf16.IsSurrogate(r) {
			continue
		}
		low, ok := escaped(i + 1)
		if r >= 0xdc00 || !ok || low < 0xdc00 || low > 0xdfff {
			return true
		}
		i += 6
	}
	return false
}

// readLimited reads a request body of at most limit bytes (413 beyond it).
// A compressed body is refused by name: read as it is, it would be "not
// valid UTF-8" or "invalid character".
func readLimited(c *gin.Context, limit int64) ([]byte, error) {
	if enc := c.GetHeader("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil, badRequest("the body is sent with Content-Encoding %q, which is not taken: send it uncompressed", enc)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, tooLarge(limit)
	}
	if err != nil {
		return nil, badRequest("could not read the request body: %v", err)
	}
	return body, nil
}

// decodeJSON is bindJSON's decoding of a body read with readJSONBody.
func decodeJSON(body []byte, dst, view any) error {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) == nil && obj != nil {
		viewOnly := fieldTypes(reflect.TypeOf(view))
		takes := fieldTypes(reflect.TypeOf(dst))
		for name := range obj {
			if _, ok := takes[strings.ToLower(name)]; !ok && viewOnly[strings.ToLower(name)] != nil {
				delete(obj, name)
			}
		}
		if err := checkFields(obj, takes, ""); err != nil {
			return err
		}
		body, _ = json.Marshal(obj)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	err := dec.Decode(dst)
	if err == nil {
		if _, end := dec.Token(); end != io.EOF {
			err = errors.New("more than one JSON value")
		}
	}
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return badRequest("the body must be %s, not %s", jsonKind(typeErr.Type), typeErr.Value)
	case errors.As(err, &typeErr) && jsonKind(typeErr.Type) == "a number" && strings.HasPrefix(typeErr.Value, "number "):
		// The only number that is not one: past what a float64 holds, 1e400.
		return actions.Invalid(jsonPath(typeErr.Field), "holds a number out of range: %s", strings.TrimPrefix(typeErr.Value, "number "))
	case errors.As(err, &typeErr):
		field := jsonPath(typeErr.Field)
		if ft := fieldType(reflect.TypeOf(dst), field); ft != nil && ft.Kind() == reflect.Slice && ft.Elem() == typeErr.Type {
			return actions.Invalid(field, "must be an array of which each item is %s, not %s", jsonKind(typeErr.Type), typeErr.Value)
		}
		return actions.Invalid(field, "must be %s, not %s", jsonKind(typeErr.Type), typeErr.Value)
	}
	return badRequest("the body is not valid JSON: %v", err)
}

// checkFields refuses a field of obj that the struct whose fields are fields
// does not have, and a time that is not RFC 3339, looking into nested
// objects; prefix is obj's path.
func checkFields(obj map[string]json.RawMessage, fields map[string]reflect.Type, prefix string) error {
	for _, name := range slices.Sorted(maps.Keys(obj)) { // the same field named first every time
		raw := obj[name]
		t, ok := fields[strings.ToLower(name)] // encoding/json matches names case-insensitively
		if !ok {
			return actions.Invalid(prefix+name, "is not a field of this endpoint")
		}
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch {
		case t == reflect.TypeOf(time.Time{}):
			var s *string
			if json.Unmarshal(raw, &s) != nil || s != nil && !validTime(*s) {
				return actions.Invalid(prefix+name, "must be a time in RFC 3339, such as 2026-12-31T23:00:00Z")
			}
		case t.Kind() == reflect.Struct:
			var inner map[string]json.RawMessage
			if json.Unmarshal(raw, &inner) == nil && inner != nil {
				if err := checkFields(inner, fieldTypes(t), prefix+name+"."); err != nil {
					return err
				}
				obj[name], _ = json.Marshal(inner)
			}
		case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
			obj[name] = wholeNumber(raw)
		}
	}
	return nil
}

// wholeNumber writes a whole number that a JSON encoder wrote as a float
// (60.0, 6e1) as an integer, which encoding/json refuses for an int field;
// anything else is returned as it is (and refused, if it must be, by the
// decoder).
func wholeNumber(raw json.RawMessage) json.RawMessage {
	if !bytes.ContainsAny(raw, ".eE") {
		return raw
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return raw
	}
	return json.RawMessage(strconv.FormatInt(int64(f), 10))
}

func validTime(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}

// fieldTypes maps the lower-case JSON names of a struct's fields (embedded
// structs' included, as encoding/json promotes them) to their types.
func fieldTypes(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return out
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "":
			for n, ft := range fieldTypes(f.Type) {
				out[n] = ft
			}
		case !f.IsExported():
		case name == "":
			out[strings.ToLower(f.Name)] = f.Type
		default:
			out[strings.ToLower(name)] = f.Type
		}
	}
	return out
}

// fieldType returns the type of the field at a JSON path in t, or nil.
func fieldType(t reflect.Type, path string) reflect.Type {
	for _, name := range strings.Split(path, ".") {
		t = fieldTypes(t)[strings.ToLower(name)]
		if t == nil {
			return nil
		}
	}
	return t
}

// jsonPath turns the path encoding/json reports into the JSON one: it names
// an embedded struct by its Go name ("Limits.methods"), and every JSON name of
// the API is lower case.
func jsonPath(field string) string {
	parts := strings.Split(field, ".")
	out := parts[:0]
	for _, p := range parts {
		if p != "" && (p[0] < 'A' || p[0] > 'Z') {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
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
