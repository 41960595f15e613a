// Package web holds devicehooks' embedded templates and static assets. It is a leaf
// package: it imports nothing of ours. Its templates are parsed once, the UI's
// on first use (so an idle server holds none; TestTemplatesParse parses them all).
package web

import (
	"embed"
	"html/template"
	"io"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// WebhookResult is what the small page shown to a browser that opened a webhook
// GET link says.
type WebhookResult struct {
	OK         bool
	DispatchID string
	EventID    string
	Function   string
	Targets    int
	Replayed   bool
	// Waited: the call asked to wait for its acks (?wait=); Settled says
	// whether every command was final by the answer, Outcome how they stood
	// ("2 succeeded · 1 failed"), and Unsucceeded lists the commands that
	// did not succeed (the first few of a fan-out).
	Waited      bool
	Settled     bool
	Outcome     string
	Unsucceeded []WaitedCommand
	More        int // unsucceeded commands past those listed
	// Failed: some commands ended without succeeding (failed, rejected,
	// expired); All: every one did. The heading says so.
	Failed, All bool
	Code        string
	Detail      string // the error's detail, as the JSON answer gives it
	Field       string // the input the detail is about, as the JSON answer names it
	// SignedLink: the refused call was a signed link (sig=, no key in it).
	SignedLink bool
	// Preview: a link-preview agent fetched the link; nothing was fired.
	Preview bool
	// Confirm: the link asks for a click; Fields are posted back by the button.
	Confirm bool
	Fields  map[string]string
}

// WaitedCommand is a command that a waited-for call's page names: its
// device, state and the device's detail.
type WaitedCommand struct{ DeviceID, State, Detail string }

// RenderWebhookResult writes the page for a webhook GET opened in a browser.
func RenderWebhookResult(w io.Writer, r WebhookResult) error {
	return pages.ExecuteTemplate(w, "webhook_result.html", r)
}
