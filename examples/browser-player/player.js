// devicehooks browser player (docs/players.md): MQTT over WebSocket with the
// vendored mqtt.js (vendor/mqtt.min.js, global `mqtt`), no build step.
// It behaves like examples/goplayer: last will, subscribe before saying online,
// dedupe by command id, reject expired commands, apply newer desired states.
(function () {
  "use strict";

  const MAX_REMEMBERED = 1000; // command ids kept for dedupe
  const MAX_LOG = 50;
  const $ = (id) => document.getElementById(id);

  // What the player shows; window.player exposes it for debugging and tests.
  const state = {
    url: "",              // what is shown ("": idle)
    base: "",             // the last page loaded without a duration ("": idle)
    until: 0,             // when the timed page shown gives way to base (ms since the epoch), 0: none
    emergency: { enabled: false, message: "", url: "" },
    paused: false,
    version: 0,           // applied desired-state version
    acked: new Map(),     // command id -> first ack {status, detail}; insertion ordered
    acks: 0,              // acks published
  };
  let revertTimer = null;

  function log(text) {
    const li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString() + "  " + text;
    $("log").prepend(li);
    while ($("log").children.length > MAX_LOG) $("log").lastElementChild.remove();
  }

  function setConn(label, kind) {
    $("conn").textContent = label;
    $("conn").dataset.state = kind || label;
  }

  // Only http(s) may be shown: a "javascript:" URL in an iframe would run here.
  function httpURL(u) {
    try {
      const p = new URL(u);
      return p.protocol === "http:" || p.protocol === "https:" ? p.href : "";
    } catch (e) {
      return "";
    }
  }

  function show(url) {
    state.url = url;
    if (url) $("content").src = url; else $("content").removeAttribute("src");
    $("idle").hidden = !!url;
  }

  function render() {
    const e = state.emergency;
    $("emergency").hidden = !e.enabled;
    $("emergency-message").textContent = e.message || "";
    const frame = $("emergency-frame");
    const u = e.enabled ? httpURL(e.url || "") : "";
    frame.hidden = !u;
    if (frame.getAttribute("src") !== (u || null)) {
      if (u) frame.src = u; else frame.removeAttribute("src");
    }
    $("paused").hidden = !state.paused;
  }

  // apply carries out one command; it returns an error text, or "" on success.
  function apply(cmd) {
    const p = cmd.params || {};
    switch (cmd.function) {
      case "load_url": {
        const u = httpURL(p.url || "");
        if (!u) return "invalid params: url must be an http or https URL";
        // A timed page gives way to the last page loaded without a duration (or
        // idle), whatever else was loaded meanwhile; a newer load replaces it.
        clearTimeout(revertTimer);
        state.until = 0;
        show(u);
        if (p.duration_s > 0) {
          state.until = Date.now() + p.duration_s * 1000;
          revertTimer = setTimeout(() => { state.until = 0; show(state.base); }, p.duration_s * 1000);
        } else {
          state.base = u;
        }
        break;
      }
      case "set_emergency":
        if (typeof p.enabled !== "boolean") return "invalid params: enabled must be true or false";
        state.emergency = { enabled: p.enabled, message: p.message || "", url: p.url || "" };
        break;
      case "pause_loop": state.paused = true; break;
      case "resume_loop": state.paused = false; break;
      case "refresh_content":
        if (state.url) $("content").src = state.url;
        break;
      case "refresh_datasource":
      case "sensor_event":
        // Hand it to the content, which knows what its datasources and sensors mean.
        $("content").contentWindow?.postMessage({ devicehooks: cmd.function, params: p }, "*");
        break;
      case "restart":
        break; // onCommand reloads the page once the broker has the ack
      default:
        return "unknown function " + JSON.stringify(cmd.function);
    }
    render();
    return "";
  }

  function start(cfg) {
    $("setup").hidden = true;
    const base = cfg.prefix + "/devices/" + cfg.device + "/";
    const topic = { commands: base + "commands", acks: base + "acks", status: base + "status", desired: base + "desired" };
    const status = (s) => JSON.stringify({ state: s, at: new Date().toISOString() });

    let backoff = 0, retry = null, refused = false; // reconnecting: see the "close" handler
    setConn("connecting");
    const client = mqtt.connect(cfg.broker, {
      protocolVersion: 4,
      clientId: "browser-" + cfg.device, // one player per device: a second one takes over
      username: cfg.device,
      password: cfg.token,
      clean: true,
      resubscribe: false, // we subscribe ourselves on every connect, before saying online
      keepalive: 30,
      connectTimeout: 10000,
      reconnectPeriod: 0, // we reconnect ourselves, below: mqtt.js would at a fixed period
      will: { topic: topic.status, payload: '{"state":"offline"}', qos: 1, retain: true },
    });

    client.on("connect", async () => {
      backoff = 0;
      try {
        // Subscribe first, then say online: the server sends commands once we are online.
        await client.subscribeAsync({ [topic.commands]: { qos: 1 }, [topic.desired]: { qos: 1 } });
        await client.publishAsync(topic.status, status("online"), { qos: 1, retain: true });
        setConn("online");
        log("online as " + cfg.device);
      } catch (err) {
        setConn("subscribe refused", "error");
        log("subscribe failed (check the device id and topic prefix): " + err.message);
      }
    });

    // After a lost connection (or a failed attempt): a random pause, backing off
    // to about 30 s, so that a fleet does not stampede a restarted broker. A
    // refused login (a wrong or rotated token) is not retried: reload the page
    // with the new token.
    client.on("close", () => {
      if (refused || retry) return;
      setConn("offline");
      const pause = backoff + Math.random() * 1000;
      backoff = Math.min(2 * backoff + 1000, 30000);
      retry = setTimeout(() => {
        retry = null;
        if (refused) return;
        setConn("reconnecting");
        client.reconnect();
      }, pause);
    });
    client.on("error", (err) => {
      // A CONNACK that refuses the login ("Connection refused: Not authorized":
      // 4 or 5 on MQTT 3.1.1, 0x86 or 0x87 on MQTT 5) is final; any other
      // refusal ("server unavailable") is retried.
      if ([4, 5, 0x86, 0x87].includes(err.code) && !client.connected) refused = true;
      setConn("error", "error");
      log("error: " + err.message);
    });

    client.on("message", (t, payload) => {
      let msg;
      try {
        msg = JSON.parse(payload.toString());
      } catch (e) {
        log("ignored a message that is not JSON on " + t);
        return;
      }
      if (t === topic.desired) onDesired(msg);
      else if (t === topic.commands) onCommand(msg);
    });

    function onDesired(d) {
      if (!d || !(d.version > state.version)) return; // a replay, or older than what is shown
      state.version = d.version;
      const e = d.emergency || {};
      state.emergency = { enabled: !!e.enabled, message: e.message || "", url: e.url || "" };
      state.paused = !!d.loop_paused;
      render();
      log("desired v" + d.version + ": emergency " + (e.enabled ? "on" : "off") + (d.loop_paused ? ", loop paused" : ""));
    }

    function onCommand(cmd) {
      if (!cmd || typeof cmd.id !== "string" || !cmd.id) return;
      let a = state.acked.get(cmd.id);
      const repeat = !!a;
      if (repeat) {
        log("repeated command " + cmd.id + ": acked again, not applied again");
      } else if (cmd.expires_at && Date.parse(cmd.expires_at) <= Date.now()) {
        a = { status: "rejected", detail: "expired" }; // not remembered: a repeat is as expired
        log("expired command " + cmd.id + " (" + cmd.function + "): rejected");
      } else {
        const err = apply(cmd);
        a = err ? { status: "failed", detail: err } : { status: "succeeded" };
        state.acked.set(cmd.id, a);
        if (state.acked.size > MAX_REMEMBERED) state.acked.delete(state.acked.keys().next().value);
        log(cmd.function + " " + (cmd.params && cmd.params.url ? cmd.params.url + " " : "") + "→ " + a.status + (err ? ": " + err : ""));
      }
      const ack = { id: cmd.id, status: a.status, at: new Date().toISOString() };
      if (a.detail) ack.detail = a.detail;
      client.publish(topic.acks, JSON.stringify(ack), { qos: 1 }, (err) => {
        if (err) return;
        state.acks++;
        if (cmd.function === "restart" && a.status === "succeeded" && !repeat) location.reload();
      });
    }

    // No "offline" on closing the page: a publish from pagehide never gets out
    // before the socket closes. The broker publishes the last will instead.
    window.player.client = client;
  }

  window.player = { state };
  window.addEventListener("hashchange", () => location.reload()); // new settings: start again
  const p = new URLSearchParams(location.hash.slice(1));
  const cfg = { broker: p.get("broker"), device: p.get("device"), token: p.get("token"), prefix: p.get("prefix") || "devicehooks" };
  if (cfg.broker && cfg.device && cfg.token) {
    start(cfg);
  } else {
    const form = $("setup");
    if (cfg.broker) form.elements.broker.value = cfg.broker;
    if (cfg.device) form.elements.device.value = cfg.device;
    form.hidden = false;
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const f = form.elements;
      start({ broker: f.broker.value.trim(), device: f.device.value.trim(), token: f.token.value.trim(), prefix: f.prefix.value.trim() || "devicehooks" });
    });
  }
})();
