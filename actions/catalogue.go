package actions

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"devicehooks/store"
)

// The functions an action can make a device do (CONTRACT §2).
const (
	LoadURL           = "load_url"
	SetEmergency      = "set_emergency"
	RefreshDatasource = "refresh_datasource"
	PauseLoop         = "pause_loop"
	ResumeLoop        = "resume_loop"
	SensorEvent       = "sensor_event"
	RefreshContent    = "refresh_content"
	Restart           = "restart"
)

// Function describes one entry of the catalogue: its label for people, its
// parameters, and how it validates them.
type Function struct {
	Name   string
	Label  string
	Params []Param
	// validate checks the known params and returns them normalised, leaving
	// out any other key (ValidateParams refuses those, and reports them
	// beside validate's own errors, so all are told at once).
	validate func(p map[string]any) (map[string]any, error)
}

// Param is one parameter of a function, as the UI shows it.
type Param struct {
	Name     string // as the API names it
	Label    string // for people, on the action form
	Type     string // "url", "bool", "string", "int"
	Required bool
	Help     string
}

// Catalogue lists the functions in the order the UI offers them.
var Catalogue = []Function{
	{Name: LoadURL, Label: "Load URL", Params: []Param{
		{Name: "url", Label: "URL", Type: "url", Required: true, Help: "http(s) address the player opens"},
		{Name: "duration_s", Label: "Duration (seconds)", Type: "int", Help: "seconds to show it before returning to the loop"},
	}, validate: validateLoadURL},
	{Name: SetEmergency, Label: "Enable/Disable Emergency", Params: []Param{
		{Name: "enabled", Label: "Emergency mode", Type: "bool", Required: true, Help: "turn emergency mode on or off"},
		{Name: "message", Label: "Message", Type: "string", Help: "text shown in emergency mode"},
		{Name: "url", Label: "URL", Type: "url", Help: "page shown in emergency mode"},
	}, validate: validateEmergency},
	{Name: RefreshDatasource, Label: "Refresh Datasource", Params: []Param{
		{Name: "datasource_id", Label: "Datasource id", Type: "string", Help: "which datasource; empty for all"},
	}, validate: validateDatasource},
	{Name: PauseLoop, Label: "Pause Loop", validate: noParams},
	{Name: ResumeLoop, Label: "Resume Loop", validate: noParams},
	{Name: SensorEvent, Label: "Send Sensor Event Data", validate: noParams},
	{Name: RefreshContent, Label: "Refresh Content", validate: noParams},
	{Name: Restart, Label: "Restart device", validate: noParams},
}

// LookupFunction returns the catalogue entry for a function name.
func LookupFunction(name string) (*Function, bool) {
	for i := range Catalogue {
		if Catalogue[i].Name == name {
			return &Catalogue[i], true
		}
	}
	return nil, false
}

// ValidateParams checks an action's fixed parameters for function fn and returns
// them normalised. Unknown parameters are refused, so a typo is not silently
// lost. Every problem at once (errors.Join), as SensorParams: a form marks
// them all, the API names the first.
func ValidateParams(fn string, params map[string]any) (map[string]any, error) {
	f, ok := LookupFunction(fn)
	switch {
	case !ok && fn == "":
		return nil, Invalid("function", "function is required; one of %s", functionNames())
	case !ok:
		return nil, Invalid("function", "unknown function %q; one of %s", fn, functionNames())
	}
	if params == nil {
		params = map[string]any{}
	}
	known := map[string]bool{}
	for _, p := range f.Params {
		known[p.Name] = true
	}
	var unknown []string
	for k := range params {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	errs := make([]error, 0, len(unknown)+1)
	for _, k := range unknown {
		errs = append(errs, Invalid("params."+k, "%s takes no parameter %q", fn, k))
	}
	out, err := f.validate(params)
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, err
	}
	return out, nil
}

func functionNames() string {
	names := make([]string, len(Catalogue))
	for i, f := range Catalogue {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

func noParams(map[string]any) (map[string]any, error) { return map[string]any{}, nil }

func validateLoadURL(p map[string]any) (map[string]any, error) {
	u, urlErr := httpURL(p, "url", true)
	out := map[string]any{"url": u}
	var durErr error
	if v, ok := p["duration_s"]; ok && v != nil {
		n, ok := wholeNumber(v)
		if !ok || n < 1 || n > 86400*7 {
			durErr = Invalid("params.duration_s", "must be a whole number of seconds from 1 to 604800")
		}
		out["duration_s"] = n
	}
	if err := errors.Join(urlErr, durErr); err != nil {
		return nil, err
	}
	return out, nil
}

func validateEmergency(p map[string]any) (map[string]any, error) {
	var errs []error
	out := map[string]any{}
	switch v, ok := p["enabled"]; {
	case !ok || v == nil:
		errs = append(errs, Invalid("params.enabled", "is required: true to enable emergency mode, false to disable it"))
	default:
		enabled, ok := v.(bool)
		if !ok {
			errs = append(errs, Invalid("params.enabled", "must be true or false"))
		}
		out["enabled"] = enabled
	}
	if m, ok := p["message"]; ok && m != nil {
		s, ok := m.(string)
		if !ok {
			errs = append(errs, Invalid("params.message", "must be a string of at most 2000 characters"))
		} else if err := CheckText("params.message", s, 2000); err != nil {
			errs = append(errs, err)
		} else if s != "" {
			out["message"] = s
		}
	}
	u, err := httpURL(p, "url", false)
	if err != nil {
		errs = append(errs, err)
	}
	if u != "" {
		out["url"] = u
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func validateDatasource(p map[string]any) (map[string]any, error) {
	out := map[string]any{}
	if v, ok := p["datasource_id"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return nil, Invalid("params.datasource_id", "must be a string of at most 200 characters")
		}
		if err := CheckText("params.datasource_id", s, 200); err != nil {
			return nil, err
		}
		if s != "" {
			out["datasource_id"] = s
		}
	}
	return out, nil
}

// httpURL reads an absolute http(s) URL parameter.
func httpURL(p map[string]any, name string, required bool) (string, error) {
	field := "params." + name
	v, ok := p[name]
	if !ok || v == nil || v == "" {
		if required {
			return "", Invalid(field, "is required")
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", Invalid(field, "must be a string")
	}
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > 2000 {
		return "", Invalid(field, "must be at most 2000 characters")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", Invalid(field, "must be an absolute http or https URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", Invalid(field, "scheme %q is not allowed; use http or https", u.Scheme)
	}
	return u.String(), nil
}

// wholeNumber accepts a JSON number without a fraction.
func wholeNumber(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		if n != float64(int64(n)) {
			return 0, false
		}
		return int64(n), true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case int:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

// checkNumber refuses a sensor value that players cannot read at all: one past
// a double's range, on which Go's decoder fails the whole command (JavaScript
// reads Infinity). An integer past 2^53 is passed on as written, as before:
// players that read numbers as doubles round it (docs/players.md).
func checkNumber(v any) error {
	f, _ := v.(float64)
	if n, ok := v.(json.Number); ok {
		var err error
		if f, err = n.Float64(); err != nil {
			return Invalid("sensor_data.value", "is a number too large for players to read; send it as a string")
		}
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return Invalid("sensor_data.value", "is a number too large for players to read; send it as a string")
	}
	return nil
}

// SensorParams validates the request's sensor data for a sensor_event action and
// returns the command's params. id and event are required strings (a number,
// as sensor systems often number their sensors, is taken as its text: as
// written with the webhook's json.Number, else in the shortest decimal form);
// value may be a string, number or boolean.
func SensorParams(sd map[string]any) (map[string]any, error) {
	if sd == nil {
		return nil, Invalid("sensor_data", "is required for a sensor_event action: {\"id\", \"event\", \"value\"}")
	}
	var extra []string
	for k := range sd {
		if k != "id" && k != "event" && k != "value" {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	// A misnamed field ("sensor_id") is named where the field it was meant
	// to be is missing, which is the answer's first error.
	misnamed := ""
	if len(extra) > 0 {
		misnamed = " (" + fieldList(extra) + " " + isAre(extra) + " not a field of sensor data, which has id, event and value)"
	}
	// Every problem at once (errors.Join): a form marks them all, the
	// webhook names the first.
	out, errs := map[string]any{}, []error(nil)
	for _, k := range []string{"id", "event"} {
		s, ok := sd[k].(string)
		switch n := sd[k].(type) {
		case float64:
			s, ok = strconv.FormatFloat(n, 'f', -1, 64), true
		case json.Number:
			s, ok = n.String(), true
		}
		if !ok || strings.TrimSpace(s) == "" {
			errs = append(errs, Invalid("sensor_data."+k, "is required and must be a non-empty string or a number%s", misnamed))
			continue
		}
		if err := CheckText("sensor_data."+k, s, 200); err != nil {
			errs = append(errs, err)
			continue
		}
		out[k] = s
	}
	switch v := sd["value"].(type) {
	case nil:
		out["value"] = ""
	case string:
		if err := CheckText("sensor_data.value", v, 2000); err != nil {
			errs = append(errs, err)
		}
		out["value"] = v
	case bool:
		out["value"] = v
	case float64, json.Number:
		if err := checkNumber(v); err != nil {
			errs = append(errs, err)
		}
		out["value"] = v
	default:
		errs = append(errs, Invalid("sensor_data.value", "must be a string, number or boolean"))
	}
	if len(extra) > 0 { // one error naming them all: the webhook names its first error only
		nor := ""
		if len(extra) > 1 {
			nor = " (nor " + isAre(extra[1:]) + " " + fieldList(extra[1:]) + ")"
		}
		errs = append(errs, Invalid("sensor_data."+extra[0], "is not a field of sensor data%s, which has id, event and value", nor))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// fieldList names fields, at most six: a body of 64 KiB can name thousands.
func fieldList(fields []string) string {
	if len(fields) > 6 {
		return strings.Join(fields[:5], ", ") + " and " + strconv.Itoa(len(fields)-5) + " more"
	}
	return strings.Join(fields, ", ")
}

func isAre(fields []string) string {
	if len(fields) == 1 {
		return "is"
	}
	return "are"
}

// DesiredChange returns the lasting effect of a function with its (encoded,
// validated) params on the desired state, or nil if it has none.
func DesiredChange(fn string, params json.RawMessage) (*store.DesiredChange, error) {
	switch fn {
	case SetEmergency:
		var p struct {
			Enabled      bool
			Message, URL string
		}
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, fmt.Errorf("actions: decode params: %w", err)
		}
		e := &store.Emergency{Enabled: p.Enabled}
		if e.Enabled { // an emergency that is off has nothing to show (players.md)
			e.Message, e.URL = p.Message, p.URL
		}
		return &store.DesiredChange{Emergency: e, Supersedes: []string{SetEmergency}}, nil
	case PauseLoop, ResumeLoop:
		paused := fn == PauseLoop
		return &store.DesiredChange{LoopPaused: &paused, Supersedes: []string{PauseLoop, ResumeLoop}}, nil
	}
	return nil, nil
}

// DecodeParams reads an action's stored params.
func DecodeParams(s string) (map[string]any, error) {
	p := map[string]any{}
	if s == "" {
		return p, nil
	}
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return nil, fmt.Errorf("actions: decode params: %w", err)
	}
	return p, nil
}
