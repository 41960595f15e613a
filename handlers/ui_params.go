package handlers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"devicehooks/actions"
)

// summaryLength bounds a parameters summary in a list, in characters.
const summaryLength = 100

// paramsSummary says in a few words what an action's fixed parameters, or a
// command's parameters, make a device do: "on: Evacuate via north stairs",
// "https://example.com/welcome", "datasource 42", "sensor door-3 · event
// opened · value 1", cut to summaryLength for a list. It is "" for a function
// without parameters.
func paramsSummary(function string, p map[string]any) string {
	return shorten(paramsText(function, p), summaryLength)
}

// paramsText is paramsSummary whole: a page about one action shows its URL
// in full.
func paramsText(function string, p map[string]any) string {
	text := func(k string) string {
		if v, ok := p[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	var s string
	switch function {
	case actions.LoadURL:
		s = text("url")
		if d := text("duration_s"); d != "" {
			s += " for " + d + " s"
		}
	case actions.SetEmergency:
		if on, _ := p["enabled"].(bool); !on {
			return "off"
		}
		s = "on"
		var parts []string
		for _, k := range []string{"message", "url"} {
			if v := text(k); v != "" {
				parts = append(parts, v)
			}
		}
		if len(parts) > 0 {
			s += ": " + strings.Join(parts, " · ")
		}
	case actions.RefreshDatasource:
		s = "all datasources"
		if id := text("datasource_id"); id != "" {
			s = "datasource " + id
		}
	case actions.SensorEvent:
		if len(p) == 0 {
			return "sensor data from each call"
		}
		var parts []string
		for _, kv := range [][2]string{{"id", "sensor"}, {"event", "event"}, {"value", "value"}} {
			if v := text(kv[0]); v != "" {
				parts = append(parts, kv[1]+" "+v)
			}
		}
		s = strings.Join(parts, " · ")
	default: // a function without a case of its own: its parameters as they are
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(p)) {
			if v := text(k); v != "" {
				parts = append(parts, k+" "+v)
			}
		}
		s = strings.Join(parts, " · ")
	}
	return s
}

// actionSummary is paramsSummary for a stored action's parameters.
func actionSummary(function, params string) string {
	return shorten(actionText(function, params), summaryLength)
}

// actionText is paramsText for a stored action's parameters.
func actionText(function, params string) string {
	p, err := actions.DecodeParams(params)
	if err != nil {
		return ""
	}
	return paramsText(function, p)
}

// commandParams reads the parameters a command carried from its payload; ""
// and nil if it has none or the payload does not decode.
func commandParams(payload string) (map[string]any, string) {
	var msg actions.CommandMessage
	if json.Unmarshal([]byte(payload), &msg) != nil || len(msg.Params) == 0 {
		return nil, ""
	}
	raw, err := marshalUnescaped(msg.Params)
	if err != nil {
		return nil, ""
	}
	return msg.Params, string(raw)
}

// marshalUnescaped is json.Marshal without its HTML escapes: JSON shown as
// text on a page (the template escapes it) or copied from one reads as
// typed, "&" and "<b>", not "\u0026" and "\u003cb\u003e".
func marshalUnescaped(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// shorten cuts s to n characters, marking the cut with "…".
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimSpace(string(r[:n-1])) + "…"
}
