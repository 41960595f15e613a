// devicehooks admin UI: the little JavaScript the pages use. Every core flow
// works without it; it adds copy buttons, shows only the fields that apply, and
// refreshes live status. No framework, no inline script (the CSP forbids it).
(function () {
  "use strict";

  // The parts of a page that its live refresh puts in again (data-part, the
  // dashboard's), as the server sent them: before this script changes them
  // (their times, their tables), to compare each round's with.
  var served = {};
  document.querySelectorAll("[data-part]").forEach(function (p) { served[p.id] = p.innerHTML; });

  // ---- Focus on load: after a failed submit the server marks the first invalid
  // field autofocus; otherwise the page's message (an error for the whole form,
  // or the flash of the previous action), or the part of the page a form's
  // answer points to (its action's #fragment: a generated link), takes focus,
  // so it is read out and scrolled into view. ----

  var first = document.querySelector("[autofocus]");
  if (first) {
    if (document.activeElement !== first) { first.focus(); }
  } else {
    var message = document.getElementById("form-error") || document.getElementById("flash") ||
      (window.location.hash.length > 1 && document.getElementById(window.location.hash.slice(1)));
    if (message) { message.focus(); }
  }

  // ---- Back and forth: a page the browser shows again is as the server
  // sends it now. From the back/forward cache it would be as it was (a list
  // without the change just made): it is loaded afresh, by GET (data-reload: a
  // page shown in answer to a form reloads as the form's page). Loaded again,
  // its forms would be filled in by the browser as they were left (a sent
  // form, ready to create a second copy): they are reset.
  // And a form is sent once: submitting it again while the first is on its
  // way does nothing. ----

  // A page shown in answer to a form (a form sent back with its errors, a
  // secret shown once, a test's confirmation) has its history entry made its
  // form's page, loaded by GET: Back to it, or Reload, shows that page as the
  // server sends it now, instead of Chrome's "Confirm Form Resubmission"
  // (the answer to a POST is not kept) or the form sent a second time.
  if (document.body.dataset.posted === "true" && window.history.replaceState) {
    var formPage = document.body.dataset.reload || "";
    if (/^\/(?![\/\\])/.test(formPage)) { window.history.replaceState(window.history.state, "", formPage + window.location.hash); }
  }

  window.addEventListener("pageshow", function (ev) {
    if (ev.persisted) {
      var to = document.body.dataset.reload || "";
      window.location.replace(/^\/(?![\/\\])/.test(to) ? to : window.location.href); // a path of this site only
      return;
    }
    var nav = performance.getEntriesByType && performance.getEntriesByType("navigation")[0];
    if (!nav || nav.type !== "back_forward") { return; }
    document.querySelectorAll("form").forEach(function (form) {
      form.reset();
      form.querySelectorAll("select").forEach(function (sel) { sel.dispatchEvent(new Event("change")); });
    });
  });
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (ev.defaultPrevented) { return; }
    if (form.dataset.submitting === "true") { ev.preventDefault(); return; }
    form.dataset.submitting = "true";
    form.setAttribute("aria-busy", "true");
    setTimeout(function () { // a sending stopped (Esc) must not lock the form
      delete form.dataset.submitting;
      form.removeAttribute("aria-busy");
    }, 10000);
  });

  // say shows text in a copy button's status, and clears it after ms; error
  // marks a failure (shown in red, not in the green of "Copied").
  function say(btn, status, text, ms, error) {
    if (!status) { return; }
    status.textContent = text;
    status.classList.toggle("error", !!error);
    clearTimeout(btn.clearStatus);
    btn.clearStatus = setTimeout(function () { status.textContent = ""; }, ms);
  }

  // statusOf is the copy status next to a button (the element after it, or one
  // in the same parent).
  function statusOf(btn) {
    var next = btn.nextElementSibling;
    if (next && next.classList.contains("copy-status")) { return next; }
    return btn.parentElement.querySelector(".copy-status");
  }

  // ---- Copy buttons: <button data-copy="ID"> copies the text of #ID. ----

  function fallbackCopy(text) {
    var ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.className = "offscreen";
    document.body.appendChild(ta);
    ta.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    ta.remove();
    if (!ok) { throw new Error("copy refused"); }
    return "execCommand";
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(
        function () { return "clipboard"; },
        function () { return fallbackCopy(text); });
    }
    return new Promise(function (resolve) { resolve(fallbackCopy(text)); });
  }

  function selectText(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("button[data-copy]");
    if (!btn) { return; }
    var src = document.getElementById(btn.dataset.copy);
    if (!src) { return; }
    var text = (src.value !== undefined && src.tagName !== "CODE" && src.tagName !== "PRE") ? src.value : src.textContent;
    var status = statusOf(btn);
    copyText(text).then(function (how) {
      // The copied text and how it was copied are exposed for people using
      // assistive technology (the status) and for tests (data attributes).
      btn.dataset.copied = text;
      btn.dataset.copiedWith = how;
      say(btn, status, "Copied", 2000);
    }).catch(function () {
      // The text is selected instead, for the person to copy: on a phone or
      // a tablet there is no Ctrl+C to press.
      selectText(src);
      var touch = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
      say(btn, status, touch ? "Selected: touch and hold it, then tap Copy" : "Press Ctrl+C (⌘C) to copy", 6000, true);
    });
  });

  // ---- Copy an API key: <button data-copy-key="URL"> posts to URL with the
  // session's form token in a header, gets {"key": ...} and copies it. The key
  // never enters the page or a URL; "Copied" shows for 2 s. While it works the
  // button is aria-disabled (not disabled, which would drop keyboard focus).
  // Safari copies only during the click itself, not once the key has come: so
  // where the browser can, the clipboard is handed the key still on its way (a
  // ClipboardItem of a promise) in the click; otherwise, or if that is refused,
  // the key is copied when it comes. ----

  function csrfToken() {
    var el = document.querySelector('input[name="csrf_token"]');
    return el ? el.value : "";
  }

  function copyPending(key) {
    if (!window.ClipboardItem || !navigator.clipboard || !navigator.clipboard.write || !window.isSecureContext) {
      return Promise.reject(new Error("no ClipboardItem"));
    }
    try {
      var blob = key.then(function (k) { return new Blob([k], { type: "text/plain" }); });
      return navigator.clipboard.write([new ClipboardItem({ "text/plain": blob })]).then(function () { return "clipboard-item"; });
    } catch (e) { // a ClipboardItem that takes no promise
      return Promise.reject(e);
    }
  }

  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("button[data-copy-key]");
    if (!btn || btn.getAttribute("aria-disabled") === "true") { return; }
    var status = statusOf(btn);
    btn.setAttribute("aria-disabled", "true");
    var key = fetch(btn.dataset.copyKey, {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrfToken() }
    })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search)); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (data) {
        if (!data || typeof data.key !== "string") { throw new Error("no key"); }
        return data.key;
      });
    copyPending(key)
      .catch(function () { return key.then(copyText); })
      .then(function (how) {
        btn.dataset.copiedWith = how; // for tests; the key itself is not kept
        say(btn, status, "Copied", 2000);
      })
      .catch(function () { say(btn, status, "Could not copy: use Reveal", 6000, true); })
      .then(function () { btn.removeAttribute("aria-disabled"); });
  });

  // ---- Tables: a table wider than its box scrolls sideways in it, and the
  // box is then a Tab stop (a named region), so that the keyboard can scroll
  // it. A table that fits needs no stop: the box is one only while it is too
  // narrow, checked on load and when the window changes size. Without this
  // script every box is one (as the pages are sent). ----

  var fitTables = function () {
    document.querySelectorAll(".table-wrap").forEach(function (w) { // a live refresh may bring new ones
      if (w.dataset.label === undefined) { w.dataset.label = w.getAttribute("aria-label") || ""; }
      // On a phone the first column stays in view (app.css): a link or button
      // further right that takes focus is scrolled out from under it.
      var first = w.querySelector("tr > :first-child");
      var sticky = first && getComputedStyle(first).position === "sticky";
      w.style.scrollPaddingLeft = sticky ? first.getBoundingClientRect().width + "px" : "";
      if (w.scrollWidth > w.clientWidth + 1) {
        w.setAttribute("tabindex", "0");
        w.setAttribute("role", "region");
        w.setAttribute("aria-label", w.dataset.label);
      } else if (w !== document.activeElement) { // focus is not pulled from under the keyboard
        w.removeAttribute("tabindex");
        w.removeAttribute("role");
        w.removeAttribute("aria-label");
      }
    });
  };
  var fitting = false;
  window.addEventListener("resize", function () {
    if (fitting) { return; }
    fitting = true;
    requestAnimationFrame(function () { fitting = false; fitTables(); });
  });
  fitTables();

  // ---- Action form: show the parameters of the chosen function and the
  // picker of the chosen target type; the link generator: a signed link's
  // lifetime only for a signed link. Hidden fieldsets are disabled, so their
  // fields are not sent. ----

  function bindSwitch(selectID, attr) {
    var sel = document.getElementById(selectID);
    if (!sel) { return; }
    var update = function () {
      document.querySelectorAll("[" + attr + "]").forEach(function (el) {
        var on = el.getAttribute(attr) === sel.value;
        el.hidden = !on;
        if (el.tagName === "FIELDSET") { el.disabled = !on; }
      });
    };
    sel.addEventListener("change", update);
    update();
  }
  bindSwitch("function", "data-for-function");
  bindSwitch("target_type", "data-for-target");
  bindSwitch("link-kind", "data-for-kind");

  // ---- Checkbox lists: a long one (data-filter-label) gets a filter box that
  // hides the boxes whose text does not contain what is typed. Hidden boxes
  // keep their state and are still sent; without this script the whole list
  // shows. ----

  var filterAt = 15; // fewer boxes than this need no filter
  document.querySelectorAll(".checklist[data-filter-label]").forEach(function (list) {
    var items = list.querySelectorAll("label");
    if (items.length < filterAt) { return; }
    var id = list.id + "-filter";
    var field = document.createElement("div");
    field.className = "field checklist-filter";
    var label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = list.dataset.filterLabel;
    var input = document.createElement("input");
    input.type = "search";
    input.id = id;
    input.autocomplete = "off";
    input.spellcheck = false;
    input.setAttribute("aria-controls", list.id);
    input.setAttribute("aria-describedby", id + "-count");
    var count = document.createElement("p");
    count.className = "help";
    count.id = id + "-count";
    count.setAttribute("role", "status");
    field.append(label, input, count);
    list.parentNode.insertBefore(field, list);
    var update = function () {
      var q = input.value.trim().toLowerCase(), shown = 0;
      items.forEach(function (item) {
        var on = q === "" || item.textContent.toLowerCase().indexOf(q) >= 0;
        item.hidden = !on;
        if (on) { shown++; }
      });
      count.textContent = q === "" ? items.length + " devices" : shown + " of " + items.length + " shown";
    };
    input.addEventListener("input", update);
    // Enter must not submit the form (the browser submits on its keypress).
    var noSubmit = function (ev) { if (ev.key === "Enter") { ev.preventDefault(); } };
    input.addEventListener("keydown", noSubmit);
    input.addEventListener("keypress", noSubmit);
    update();
  });

  // ---- Ids typed in a list (a textarea with data-suggest="URL", the group
  // form's "Add devices by id"): as an id is typed, the devices whose id or
  // name contains it are asked of URL (?q=, at most 20) and offered as
  // buttons under the field; one picked replaces the id being typed. Down
  // at the end of the text goes to them, Escape back. Without this script
  // the ids are typed whole. ----

  var separator = /[\s,]/;
  document.querySelectorAll("textarea[data-suggest]").forEach(function (field) {
    var list = document.createElement("ul");
    list.className = "suggestions";
    list.id = field.id + "-suggestions";
    list.setAttribute("aria-label", "Suggested devices");
    list.hidden = true;
    var status = document.createElement("p");
    status.className = "help sr-only";
    status.id = field.id + "-suggest-status";
    status.setAttribute("role", "status");
    field.after(list, status);
    field.setAttribute("aria-controls", list.id);
    var timer, asked = "";

    // typing: the id around the caret, and where it starts and ends.
    var typing = function () {
      var v = field.value, start = field.selectionStart, end = field.selectionEnd;
      while (start > 0 && !separator.test(v[start - 1])) { start--; }
      while (end < v.length && !separator.test(v[end])) { end++; }
      return { start: start, end: end, text: v.slice(start, end) };
    };
    var close = function () {
      list.hidden = true;
      list.replaceChildren();
      asked = "";
    };
    var pick = function (id) {
      var t = typing(), v = field.value, after = v.slice(t.end).replace(/^[\s,]*/, "");
      var joined = v.slice(0, t.start) + id + ", ";
      field.value = joined + after;
      field.setSelectionRange(joined.length, joined.length);
      field.dispatchEvent(new Event("input", { bubbles: true }));
      close();
      status.textContent = id + " added.";
      field.focus();
    };
    var show = function (text, devices) {
      var typed = field.value.split(/[\s,]+/);
      list.replaceChildren();
      devices.forEach(function (d) {
        if (d.id !== text && typed.indexOf(d.id) >= 0) { return; } // already in the list
        var btn = document.createElement("button");
        btn.type = "button";
        btn.className = "suggestion small";
        btn.dataset.id = d.id;
        btn.textContent = d.name;
        if (d.name !== d.id) {
          var id = document.createElement("span");
          id.className = "muted";
          id.textContent = " " + d.id;
          btn.append(id);
        }
        btn.addEventListener("click", function () { pick(d.id); });
        var item = document.createElement("li");
        item.append(btn);
        list.append(item);
      });
      list.hidden = list.children.length === 0;
      status.textContent = list.hidden ? "No device to add matches " + text + "." :
        list.children.length + (list.children.length === 1 ? " device matches" : " devices match") + " " + text + ": press Down to choose.";
    };
    var ask = function () {
      var text = typing().text;
      if (text === asked) { return; }
      asked = text;
      if (text === "") { close(); return; }
      var u = new URL(field.dataset.suggest, window.location.href);
      u.searchParams.set("q", text);
      fetch(u, { headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          // Signed out, the answer is the sign-in page: the form stays as
          // typed (its save says the session ended), without suggestions.
          if (!r.ok || r.redirected) { throw new Error("HTTP " + r.status); }
          return r.json();
        })
        .then(function (data) {
          if (asked === text && typing().text === text) { show(text, data.devices || []); }
        })
        .catch(close);
    };
    field.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(ask, 150);
    });
    field.addEventListener("keydown", function (ev) {
      if (list.hidden) { return; }
      if (ev.key === "Escape") { ev.preventDefault(); close(); }
      if (ev.key === "ArrowDown" && field.selectionStart === field.value.length) {
        ev.preventDefault();
        list.querySelector("button").focus();
      }
    });
    list.addEventListener("keydown", function (ev) {
      var items = Array.prototype.slice.call(list.querySelectorAll("button"));
      var at = items.indexOf(document.activeElement);
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        var next = at + (ev.key === "ArrowDown" ? 1 : -1);
        if (next < 0) { field.focus(); } else if (next < items.length) { items[next].focus(); }
      } else if (ev.key === "Escape") {
        ev.preventDefault();
        close();
        field.focus();
      }
    });
  });

  // ---- A form that saves only the changes on its page (data-warn-unsaved:
  // the group form's page of members): leaving for another page with a
  // change not saved asks first. Its own submit does not; nor does the
  // members' search, a form of its own. A form shown again after a save
  // that failed (data-warn-unsaved="posted") holds changes not saved from
  // the start. ----

  document.querySelectorAll("form[data-warn-unsaved]").forEach(function (form) {
    var posted = form.dataset.warnUnsaved === "posted";
    var changed = posted;
    var mark = function (ev) { if (ev.target.form === form) { changed = true; } };
    form.addEventListener("input", mark);
    form.addEventListener("change", mark);
    form.addEventListener("submit", function () { changed = false; });
    // Shown again from the back-forward cache, it counts as shown afresh.
    // Not its first showing, which comes at its load event, maybe after a
    // quick change or save (a slow stylesheet, a loaded machine): a save's
    // navigation then asked "Leave site?" and went nowhere.
    window.addEventListener("pageshow", function (ev) { if (ev.persisted) { changed = posted; } });
    window.addEventListener("beforeunload", function (ev) {
      if (changed) { ev.preventDefault(); ev.returnValue = ""; }
    });
  });

  // ---- Times in the browser's time zone: the server writes each instant in
  // UTC (what a page without this script shows) in a <time datetime
  // data-local>, and it is shown here in the zone the browser is in, to the
  // same precision (web.Stamp): "full" to the second, "minute", "clock" (the
  // time of day to the millisecond, with the date unless it is today), and
  // "title" (a relative time, "5 min ago", whose tooltip and hidden text give
  // the time to the second). ----

  var zoneFormat;
  function zoneOf(d) {
    zoneFormat = zoneFormat || new Intl.DateTimeFormat("en-US", { timeZoneName: "short" });
    var part = zoneFormat.formatToParts(d).find(function (p) { return p.type === "timeZoneName"; });
    if (!part) { throw new Error("no time zone name"); }
    return part.value;
  }
  function pad(n, width) { return String(n).padStart(width || 2, "0"); }
  function localText(d, show) {
    var day = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
    var minute = pad(d.getHours()) + ":" + pad(d.getMinutes());
    var zone = " " + zoneOf(d);
    if (show === "minute") { return day + " " + minute + zone; }
    var second = minute + ":" + pad(d.getSeconds());
    if (show === "clock" && d.toDateString() === new Date().toDateString()) {
      return second + "." + pad(d.getMilliseconds(), 3) + zone;
    }
    return day + " " + second + zone;
  }
  // localize shows el's instant in the browser's zone; where it cannot (a
  // browser without Intl's parts), the UTC text stays.
  function localize(el) {
    var d = new Date(el.getAttribute("datetime")), text;
    try {
      if (isNaN(d.getTime())) { return; }
      text = localText(d, el.dataset.local === "title" ? "full" : el.dataset.local);
    } catch (e) {
      return;
    }
    if (el.dataset.local !== "title") {
      el.textContent = text;
      return;
    }
    var utc = el.title;
    el.title = text;
    var hidden = el.querySelector(".sr-only");
    if (hidden) { hidden.textContent = " (" + text + ")"; }
    // A link around it is named with the time too ("Dispatch of Welcome, 5
    // min ago (…)").
    var named = el.closest("[aria-label]");
    if (named && utc) { named.setAttribute("aria-label", named.getAttribute("aria-label").replace(utc, text)); }
  }
  document.querySelectorAll("time[data-local]").forEach(localize);

  // A relative time ("5 min ago") moves on while the page stays open, in
  // web.Ago's steps. Its age is taken from the server's clock as it wrote
  // the page (data-rendered) plus how long the page has been open, so that
  // a browser whose clock is off still shows what the server would. A link
  // named with it ("Dispatch of Welcome, 5 min ago (…)") is renamed too.
  function ago(ms) {
    var s = Math.floor(ms / 1000);
    if (ms < 0) { return "in the future"; }
    if (s < 10) { return "just now"; }
    if (s < 60) { return s + " s ago"; }
    if (s < 3600) { return Math.floor(s / 60) + " min ago"; }
    if (s < 48 * 3600) { return Math.floor(s / 3600) + " h ago"; }
    return Math.floor(s / 86400) + " days ago";
  }
  var ages = /just now|in the future|\d+ (?:s|min|h|days) ago/g; // every text ago gives
  var rendered = Date.parse(document.body.dataset.rendered || ""), opened = Date.now();
  function moveOn() {
    var now = rendered + (Date.now() - opened);
    document.querySelectorAll('time[data-local="title"]').forEach(function (el) {
      var shown = el.firstChild, at = Date.parse(el.getAttribute("datetime"));
      if (!shown || shown.nodeType !== Node.TEXT_NODE || isNaN(at)) { return; }
      var text = ago(now - at), old = shown.nodeValue;
      if (text === old) { return; }
      shown.nodeValue = text;
      var named = el.closest("[aria-label]");
      if (named) { named.setAttribute("aria-label", named.getAttribute("aria-label").replace(", " + old + " (", ", " + text + " (")); }
    });
  }
  if (!isNaN(rendered)) {
    setInterval(moveOn, 10000);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { moveOn(); } });
  }

  // A time of day is shown without its date when it is today: at each local
  // midnight the clocks are shown again, so that a page left open overnight
  // gives yesterday's times their date (and today's expiries lose theirs).
  // A timer that fires early finds the same midnight, and waits again.
  (function atMidnight() {
    var now = new Date();
    var next = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
    setTimeout(function () {
      document.querySelectorAll('time[data-local="clock"]').forEach(localize);
      atMidnight();
    }, next - now);
  })();

  // ---- Live status: an element with data-live="URL" polls that endpoint
  // while data-live-done is not "true": JSON whose renderer updates rows in
  // place, or, for a renderer marked html (the dashboard), the page itself,
  // whose changed parts it puts in. ----

  function setText(root, selector, text) {
    var el = root.querySelector(selector);
    if (el && el.textContent !== text) { el.textContent = text; }
  }

  function setBadge(el, base, state) {
    if (!el) { return; }
    el.className = base + state;
    el.textContent = state;
  }

  // setStamp makes a cell show text, then an instant (a web.Stamp, {text,
  // at}) as the "stamp" template does; a cell that shows them already is
  // left alone.
  function setStamp(cell, text, stamp) {
    if (!cell) { return; }
    var at = stamp && stamp.at ? stamp.at : "";
    if (!at) { text += stamp ? stamp.text : ""; }
    var time = cell.querySelector("time");
    var shown = time ? [time.previousSibling ? time.previousSibling.nodeValue : "", time.getAttribute("datetime")] : [cell.textContent, ""];
    if (shown[0] === text && shown[1] === at) { return; }
    cell.textContent = text;
    if (!at) { return; }
    time = document.createElement("time");
    time.setAttribute("datetime", at);
    time.dataset.local = "clock";
    time.textContent = stamp.text;
    localize(time);
    cell.appendChild(time);
  }

  // updateCommands brings the rows of commands (tr[data-command]) up to date.
  function updateCommands(root, commands) {
    (commands || []).forEach(function (cmd) {
      var row = root.querySelector('tr[data-command="' + CSS.escape(cmd.id) + '"]');
      if (!row) { return; }
      row.dataset.state = cmd.state;
      setBadge(row.querySelector(".state"), "badge state state-", cmd.state);
      setStamp(row.querySelector(".published"), "", cmd.published);
      setStamp(row.querySelector(".acked"), "", cmd.acked);
      if (cmd.expires && cmd.expires.at) {
        setStamp(row.querySelector(".detail"), (cmd.detail ? cmd.detail + " · " : "") + "expires ", cmd.expires);
      } else {
        setStamp(row.querySelector(".detail"), cmd.detail, null);
      }
    });
  }

  var renderers = {
    dispatch: function (root, data) {
      setBadge(root.querySelector("#dispatch-status"), "badge state-", data.status);
      setText(root, "#dispatch-summary", data.summary);
      // The state links count along; a state's link shows once a command is in it.
      var filters = root.querySelector("#state-filters");
      if (filters && data.counts) {
        var states = 0;
        filters.querySelectorAll("a[data-state]:not([data-state=''])").forEach(function (a) {
          var n = data.counts[a.dataset.state] || 0;
          setText(a, ".n", String(n));
          a.parentElement.hidden = n === 0 && a.getAttribute("aria-current") !== "true";
          if (n > 0) { states++; }
        });
        filters.hidden = states < 2 && !filters.querySelector("a[data-state]:not([data-state=''])[aria-current]");
      }
      updateCommands(root, data.commands);
      return data.status !== "pending";
    },
    // A device's page: its commands on the page, until none is on its way.
    device: function (root, data) {
      updateCommands(root, data.commands);
      return !data.pending;
    },
    // The table is not a live region (every refresh would be read out): the
    // changes are said in one hidden note, "lobby-1 went offline".
    devices: function (root, data) {
      var changes = [];
      (data.devices || []).forEach(function (d) {
        var row = root.querySelector('tr[data-device="' + CSS.escape(d.id) + '"]');
        if (!row) { return; }
        var badge = row.querySelector(".presence");
        var state = d.online ? "online" : "offline";
        if (badge && badge.textContent !== state) {
          badge.className = "badge presence " + state;
          badge.textContent = state;
          var name = row.querySelector("strong");
          changes.push((name ? name.textContent : d.id) + " went " + state);
        }
        setText(row, ".last-seen", d.last_seen);
      });
      setText(root, "#online-count", String(data.online));
      if (changes.length) { setText(root, "#live-note", changes.join(", ") + "."); }
      return false;
    },
    // The dashboard: the page itself, loaded again. Each part (data-part)
    // that changed since the server last sent it is put in, its times shown
    // in the browser's zone and its tables fitted; not one that has the
    // keyboard's focus, which would lose it (it waits for a later round).
    // A part left as it was keeps a screen reader's place in it.
    dashboard: function (root, html) {
      var doc = new DOMParser().parseFromString(html, "text/html"), changed = false;
      var failed = count(document), down = document.getElementById("broker-down") !== null;
      doc.querySelectorAll("[data-part]").forEach(function (part) {
        var shown = document.getElementById(part.id), now = part.innerHTML;
        if (!shown || sameButAges(served[part.id], now) || shown.contains(document.activeElement)) { return; }
        shown.innerHTML = now;
        served[part.id] = now;
        shown.querySelectorAll("time[data-local]").forEach(localize);
        changed = true;
      });
      if (changed) { fitTables(); }
      // What changed is said in the one hidden note, as on the devices page:
      // more triggers needing attention, the broker back (its loss is an
      // alert of its own).
      var notes = [];
      var stat = document.getElementById("stat-failed");
      if (count(document) > failed) { notes.push(stat.textContent + " " + stat.nextElementSibling.textContent); }
      if (down && !document.getElementById("broker-down")) { notes.push("The MQTT broker is reachable again"); }
      if (notes.length) { setText(root, "#live-note", notes.join(". ") + "."); }
      return false;
    }
  };
  // count is the dashboard's number of triggers needing attention.
  function count(doc) {
    var n = doc.getElementById("stat-failed");
    return n ? parseInt(n.textContent, 10) || 0 : 0;
  }
  // Two renderings of a part that differ only in their relative times ("5
  // min ago", which the page moves on by itself) are the same.
  function sameButAges(a, b) { return a !== undefined && a.replace(ages, "") === b.replace(ages, ""); }
  renderers.dashboard.html = true;

  // A "Pause updates" toggle (#pause-updates, hidden without this script)
  // stops and restarts the refresh.
  var live = document.querySelector("[data-live]");
  var paused = function () { return live.dataset.livePaused === "true"; };
  if (live && live.dataset.liveDone !== "true") {
    var pause = document.getElementById("pause-updates");
    if (pause) {
      pause.hidden = false;
      pause.addEventListener("click", function () {
        var on = !paused();
        live.dataset.livePaused = String(on);
        pause.setAttribute("aria-pressed", String(on));
      });
    }
    var every = parseInt(live.dataset.liveEvery, 10) || 1500;
    var render = renderers[live.dataset.liveKind];
    var skip = function () {
      if (paused()) { // counted for tests: a refresh that a pause held back
        live.dataset.liveSkipped = String((parseInt(live.dataset.liveSkipped, 10) || 0) + 1);
      }
      setTimeout(tick, every);
    };
    var tick = function () {
      if (document.hidden || paused()) { skip(); return; }
      var html = render && render.html;
      fetch(live.dataset.live, { headers: { "Accept": html ? "text/html" : "application/json" }, credentials: "same-origin", cache: "no-store", redirect: "manual" })
        .then(function (r) {
          if (r.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search)); throw new Error("signed out"); }
          // A page redirects to sign-in when the session has ended: loaded
          // again, this one does, and the sign-in page says why.
          if (r.type === "opaqueredirect") { window.location.replace(document.body.dataset.reload || location.href); throw new Error("signed out"); }
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return html ? r.text() : r.json();
        })
        .then(function (data) {
          if (paused()) { skip(); return; } // paused while fetching
          var done = render ? render(live, data) : true;
          live.dataset.liveUpdated = String(Date.now());
          if (done) { // nothing is on its way any more: the page says so no longer
            live.dataset.liveDone = "true";
            var note = document.getElementById("updates-note");
            if (note) { note.remove(); }
            return;
          }
          setTimeout(tick, every);
        })
        .catch(function (e) {
          if (String(e.message) !== "signed out") { setTimeout(tick, every * 2); }
        });
    };
    setTimeout(tick, every);
  }
})();
