package handlers

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"devicehooks/actions"
	"devicehooks/internal/logevery"
	"devicehooks/store"
)

// statusOf maps every error code to its HTTP status: the one place where this is decided.
var statusOf = map[actions.Code]int{
	actions.CodeBadRequest:    http.StatusBadRequest,
	actions.CodeUnauthorized:  http.StatusUnauthorized,
	actions.CodeForbidden:     http.StatusForbidden,
	actions.CodeNotFound:      http.StatusNotFound,
	actions.CodeMethod:        http.StatusMethodNotAllowed,
	actions.CodeUnknownEvent:  http.StatusNotFound,
	actions.CodeConflict:      http.StatusConflict,
	actions.CodeTooLarge:      http.StatusRequestEntityTooLarge,
	actions.CodeInvalidParams: http.StatusUnprocessableEntity,
	actions.CodeRateLimited:   http.StatusTooManyRequests,
	actions.CodeUnavailable:   http.StatusServiceUnavailable,
	actions.CodeInternal:      http.StatusInternalServerError,
}

// errorBody is the shape of every failure (CONTRACT §1 and §4).
type errorBody struct {
	Message string      `json:"message"`
	Error   errorDetail `json:"error"`
}

type errorDetail struct {
	Code   actions.Code `json:"code"`
	Detail string       `json:"detail"`
	Field  string       `json:"field,omitempty"`
}

// asError turns any error into a coded one; store sentinels become not_found and
// conflict, anything else is internal (and its text is not shown to the caller).
func asError(err error) *actions.Error {
	var e *actions.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, store.ErrNotFound):
		return &actions.Error{Code: actions.CodeNotFound, Detail: "no such object"}
	case errors.Is(err, store.ErrUnavailable):
		return &actions.Error{Code: actions.CodeUnavailable, Detail: "the database is unavailable; try again"}
	case errors.Is(err, store.ErrNoTarget):
		return actions.Invalid("target.id", "no such device or group: it was deleted meanwhile")
	case errors.Is(err, store.ErrConflict):
		return &actions.Error{Code: actions.CodeConflict, Detail: "conflicts with an existing object"}
	}
	return &actions.Error{Code: actions.CodeInternal, Detail: "internal error; see the server log"}
}

// errorResponse returns the status and body for err, logging server-side failures.
func errorResponse(c *gin.Context, log *slog.Logger, err error) (int, errorBody) {
	status, e := statusFor(err)
	logFailure(c, log, status, err)
	body := errorBody{Message: "Error", Error: errorDetail{Code: e.Code, Detail: e.Detail, Field: e.Field}}
	c.Set(ctxAnswerError, body.Error) // for the access log's line
	return status, body
}

// ctxAnswerError holds the errorDetail a request was answered with.
const ctxAnswerError = "devicehooks.answerError"

// statusFor returns err as a coded error and the HTTP status of its code.
func statusFor(err error) (int, *actions.Error) {
	e := asError(err)
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	return status, e
}

// logFailure logs a server-side failure once, where it is answered: at Error
// when something broke (an internal error, or a coded one wrapping its cause),
// at Debug when the service refused by design (shedding load, a limit), which
// the metrics and the request log count, so that a burst of refusals under
// load does not flood the log.
//
// A failure that repeats (every call while the database is down) is logged
// once a second, with how many like it were left out.
func logFailure(c *gin.Context, log *slog.Logger, status int, err error) {
	if status < http.StatusInternalServerError {
		return
	}
	level := slog.LevelDebug
	var coded *actions.Error
	if !errors.As(err, &coded) || coded.Code == actions.CodeInternal || err != error(coded) {
		level = slog.LevelError
	}
	if !log.Enabled(c.Request.Context(), level) {
		return
	}
	attrs := []any{"method", c.Request.Method, "path", c.Request.URL.Path, "status", status, "err", err}
	if lines, _ := c.Value(ctxFailureLines).(*logevery.Limiter); lines != nil {
		ok, skipped := lines.Allow(strconv.Itoa(status)+" "+err.Error(), time.Now())
		if !ok {
			return
		}
		if skipped > 0 {
			attrs = append(attrs, "more_like_it", skipped)
		}
	}
	log.Log(c.Request.Context(), level, "request failed", attrs...)
}

// ctxFailureLines holds the router's limiter of repeated failure lines.
const ctxFailureLines = "devicehooks.failureLines"

// respondError writes err as JSON and stops the request.
func respondError(c *gin.Context, log *slog.Logger, err error) {
	status, body := errorResponse(c, log, err)
	c.AbortWithStatusJSON(status, body)
}

func badRequest(format string, args ...any) error {
	return actions.Errorf(actions.CodeBadRequest, format, args...)
}
