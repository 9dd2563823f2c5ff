/*
 * Live job pages (the dashboard at "/" and one job at "/jobs/<id>/"): they speak
 * "WebSocket protocol, version 1" of DESIGN.md.
 *
 * The server renders every job on the page from its snapshot (#jobs-data), so a reload
 * shows the current state at once; this script rebuilds those cards and follows them.
 * One socket per page. On every (re)connect the page subscribes to every job on it that
 * is not final (the snapshots catch it up after a gap), and the dashboard's first page
 * also lists recent jobs to pick up ones started elsewhere. Each job keeps the highest
 * `seq` seen; older frames are dropped, so snapshots and live events may arrive in any
 * order without the display going backwards.
 * All data reaches the DOM through textContent / attributes, never innerHTML.
 */
(function () {
  "use strict";

  const FINAL_STATES = new Set(["succeeded", "failed", "cancelled"]);
  const CANCELLABLE_STATES = new Set(["pending", "running"]);
  const JOB_FRAME_TYPES = new Set([
    "job.accepted", "job.snapshot", "job.progress",
    "job.succeeded", "job.failed", "job.cancelled",
  ]);
  const BACKOFF_INITIAL_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const RESUBSCRIBE_DELAY_MS = 1000;
  const TICK_MS = 1000;
  const ANNOUNCE_DELAY_MS = 100;
  const CLOSE_TOO_BIG = 4400;
  const CLOSE_FLOOD = 4429;
  const SOCKET_OPEN = 1;
  const SHORT_ID_LENGTH = 8;
  /** Where a finished CSV profile starts folded: the phone layout of app.css (max-width: 30rem). */
  const FOLD_PROFILES_QUERY = "(max-width: 30rem)";
  /** Numbers as the server writes them in messages ("336,776"): in the page's language. */
  const LOCALE = document.documentElement.lang || "en";
  const INTEGER = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
  const DECIMAL = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 4 });
  const ONE_DECIMAL = new Intl.NumberFormat(LOCALE, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const TWO_DECIMALS = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 2 });
  /** Data values of a profile (a year, an id) keep their digits ungrouped. */
  const DATA_VALUE = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 4, useGrouping: false });
  /** Decimal byte units, as tasks_app.kinds.csv_profile.human_bytes writes sizes. */
  const BYTE_UNITS = ["KB", "MB", "GB", "TB"];
  const BYTES_PER_UNIT = 1000;
  const SIM_FIELDS = { step: "sim-step", interval_ms: "sim-interval", fail_at: "sim-fail-at" };
  const REMOTE_FIELDS = { duration_s: "remote-duration", unavailable_s: "remote-unavailable", fail: "remote-fail" };
  const REMOTE_SERVICE = "demo";

  const config = readConfig();
  const initialJobs = readJson("jobs-data", []);
  const clockOffsetMs = config.serverNow ? Date.parse(config.serverNow) - Date.now() || 0 : 0;
  const el = {
    conn: document.getElementById("conn-status"),
    notice: document.getElementById("notice"),
    jobs: document.getElementById("jobs"),
    empty: document.getElementById("jobs-empty"),
    announcer: document.getElementById("announcer"),
    simForm: document.getElementById("simulated-form"),
    csvForm: document.getElementById("csv-form"),
    csvFile: document.getElementById("csv-file"),
    csvStart: document.getElementById("csv-start"),
    csvError: document.getElementById("csv-error"),
    remoteForm: document.getElementById("remote-form"),
    dialog: document.getElementById("cancel-dialog"),
    dialogText: document.getElementById("cancel-dialog-text"),
  };

  /** job id → {job, seq, createdMs, percent, receivedMs, cancelRequested, resultShown, alert, stale, nodes} */
  const jobs = new Map();
  /** request_id → {what: "list"|"subscribe"|"start"|"cancel", source?, jobId?} */
  const requests = new Map();
  /** request_id → job.start frame not yet answered; resent (same idempotency key) after a reconnect. */
  const pendingStarts = new Map();
  /** job ids this socket already follows (subscribed or started on it). */
  let following = new Set();
  /** Jobs created after this (server time, ms) are new to the first dashboard page. */
  let newestAtLoad = 0;

  let socket = null;
  let attempt = 0;
  let reconnectTimer = null;
  let requestCounter = 0;
  let dialogEntry = null;
  let announceQueue = [];
  let announceTimer = null;

  // ---------------------------------------------------------------- helpers

  function readJson(id, fallback) {
    const node = document.getElementById(id);
    try {
      const parsed = JSON.parse(node ? node.textContent : "null");
      return parsed === null || parsed === undefined ? fallback : parsed;
    } catch (err) {
      return fallback;
    }
  }

  function readConfig() {
    const parsed = readJson("jobs-config", {});
    return {
      wsPath: parsed.wsPath || "/ws/jobs/",
      uploadUrl: parsed.uploadUrl || "/uploads/",
      jobUrl: parsed.jobUrl || "",
      jobUrlPlaceholder: parsed.jobUrlPlaceholder || "",
      csrfToken: parsed.csrfToken || "",
      uploadMaxBytes: Number(parsed.uploadMaxBytes) || 0,
      serverNow: parsed.serverNow || "",
      mode: parsed.mode === "detail" ? "detail" : "dashboard",
      page: Number(parsed.page) || 1,
      pageSize: Number(parsed.pageSize) || 20,
      jobId: parsed.jobId || null,
    };
  }

  /** Build an element; attrs values that are null/undefined/false are skipped. */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === null || value === undefined || value === false) continue;
        if (key === "text") node.textContent = String(value);
        else if (key === "className") node.className = value;
        else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setText(node, text) {
    const value = text === null || text === undefined ? "" : String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function nextRequestId() {
    requestCounter += 1;
    return "r" + requestCounter;
  }

  function newIdempotencyKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function shortId(id) {
    return String(id).slice(0, SHORT_ID_LENGTH);
  }

  /** "Count primes · 1c235a6c": the kind's title (from the server) and the short id. */
  function jobName(job) {
    return job.title + " · " + shortId(job.id);
  }

  function jobUrl(id) {
    if (!config.jobUrl || !config.jobUrlPlaceholder) return null;
    return config.jobUrl.replace(config.jobUrlPlaceholder, encodeURIComponent(id));
  }

  function isNumber(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  /** Counts with thousands separators ("336,776"); at most 4 decimals, trailing zeros dropped. */
  function formatNumber(value) {
    if (value === null || value === undefined || value === "") return "—";
    if (isNumber(value)) return (Number.isInteger(value) ? INTEGER : DECIMAL).format(value);
    return String(value);
  }

  /** A value found in the data (a profile's min, max, mean): digits as they are, no grouping. */
  function formatDataValue(value) {
    if (isNumber(value)) return DATA_VALUE.format(value);
    return value === null || value === undefined || value === "" ? "—" : String(value);
  }

  /** Three significant figures at most, for rates ("310,572", "15.2", "0.37"). */
  function formatRateNumber(value) {
    if (value >= 100) return INTEGER.format(Math.round(value));
    if (value >= 10) return DECIMAL.format(Math.round(value * 10) / 10);
    return TWO_DECIMALS.format(value);
  }

  /** "512 bytes", "210 KB", "31.1 MB": decimal units, one decimal below 100 of a unit. */
  function formatBytes(n) {
    if (!isNumber(n)) return "?";
    if (n < BYTES_PER_UNIT) return INTEGER.format(n) + " bytes";
    let value = n;
    let unit = -1;
    while (value >= BYTES_PER_UNIT && unit < BYTE_UNITS.length - 1) {
      value /= BYTES_PER_UNIT;
      unit += 1;
    }
    return (value < 100 ? ONE_DECIMAL : INTEGER).format(value) + " " + BYTE_UNITS[unit];
  }

  /** The exact count, for a title attribute beside a rounded size: "31,053,850 bytes". */
  function exactBytes(n) {
    return isNumber(n) ? INTEGER.format(n) + " bytes" : "";
  }

  /** Units per second: bytes for CSV profiles, percent points for simulated jobs. */
  function formatRate(kind, rate) {
    if (kind === "csv_profile") return formatBytes(rate) + "/s";
    if (kind === "simulated") return formatRateNumber(rate) + " %/s";
    return formatRateNumber(rate) + " units/s";
  }

  /** A span of seconds for people: "<1 s", "42 s", "3 min 05 s", "1 h 02 min". */
  function formatDuration(seconds) {
    if (!isNumber(seconds) || seconds < 0) return "—";
    if (seconds < 1) return "<1 s";
    const s = Math.round(seconds);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
    return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
  }

  /** Elapsed time as a clock: "0:07", "12:30", "1:02:03". */
  function formatClock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const hours = Math.floor(s / 3600);
    const minutes = Math.floor((s % 3600) / 60);
    const secs = String(s % 60).padStart(2, "0");
    return hours > 0 ? hours + ":" + String(minutes).padStart(2, "0") + ":" + secs : minutes + ":" + secs;
  }

  function plural(n, word) {
    return formatNumber(n) + " " + word + (n === 1 ? "" : "s");
  }

  function describeDelimiter(d) {
    if (d === undefined || d === null || d === "") return "unknown";
    if (d === "\t") return "tab";
    if (d === " ") return "space";
    return "“" + d + "”";
  }

  function parseTime(value) {
    const ms = value ? Date.parse(value) : NaN;
    return Number.isFinite(ms) ? ms : 0;
  }

  /** Now on the server's clock (the page carries the server's time when it was rendered). */
  function serverNowMs() {
    return Date.now() + clockOffsetMs;
  }

  function humanKey(key) {
    const text = String(key).replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  /**
   * Speak short sentences through the visually hidden live region. Sentences queued
   * together are spoken together, so a burst of changes never hides one of them.
   */
  function announce(text) {
    if (!el.announcer || !text) return;
    announceQueue.push(text);
    if (announceTimer !== null) return;
    announceTimer = window.setTimeout(() => {
      announceTimer = null;
      el.announcer.textContent = announceQueue.join(" ");
      announceQueue = [];
    }, ANNOUNCE_DELAY_MS);
  }

  // ------------------------------------------------------- connection status

  const CONN_TEXT = {
    connecting: () => "Connecting…",
    connected: () => "Connected: updates are live.",
    reconnecting: (n) => "Connection lost. Reconnecting (attempt " + n + ")…",
    offline: () => "Offline. Will reconnect when the network is back.",
  };

  function setConn(state) {
    if (!el.conn) return;
    el.conn.dataset.state = state;
    setText(el.conn, CONN_TEXT[state](attempt));
  }

  // ------------------------------------------------------------------ socket

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    return scheme + "://" + window.location.host + config.wsPath;
  }

  function isOpen() {
    return socket !== null && socket.readyState === SOCKET_OPEN;
  }

  function connect() {
    window.clearTimeout(reconnectTimer);
    reconnectTimer = null;
    let ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (err) {
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.addEventListener("open", () => {
      if (socket !== ws) return;
      attempt = 0;
      setConn("connected");
      onOpen();
    });
    ws.addEventListener("message", (event) => {
      if (socket === ws) onFrame(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (socket !== ws) return;
      socket = null;
      onClose(event);
    });
  }

  /** Backoff: 0.5 s doubling to 10 s, with jitter (half to all of the ceiling). */
  function scheduleReconnect() {
    window.clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (navigator.onLine === false) {
      setConn("offline");
      return; // the "online" event reconnects
    }
    attempt += 1;
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** (attempt - 1));
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    setConn("reconnecting");
    reconnectTimer = window.setTimeout(connect, delay);
  }

  function onOpen() {
    following = new Set();
    for (const [rid, entry] of requests) {
      // Answers to requests of the old socket will never come.
      if (entry.what !== "start") requests.delete(rid);
    }
    if (config.mode === "dashboard" && config.page === 1) {
      send({ type: "job.list", limit: config.pageSize }, { what: "list" });
    }
    for (const entry of jobs.values()) subscribe(entry.job.id);
    for (const [rid, frame] of pendingStarts) {
      socket.send(JSON.stringify(Object.assign({}, frame, { request_id: rid })));
    }
  }

  function onClose(event) {
    following = new Set();
    // Until its snapshot comes back, what a card shows of a job that is not final may be old.
    for (const entry of jobs.values()) {
      if (!FINAL_STATES.has(entry.job.state) && !entry.stale) {
        entry.stale = true;
        renderJob(entry);
      }
    }
    if (event.code === CLOSE_TOO_BIG || event.code === CLOSE_FLOOD) {
      showNotice("The server closed the connection (" +
        (event.code === CLOSE_FLOOD ? "too many messages" : "message too large") + ").");
    }
    for (const entry of jobs.values()) {
      if (entry.cancelRequested) {
        entry.cancelRequested = false;
        renderJob(entry);
      }
    }
    scheduleReconnect();
  }

  /** Send a frame with a fresh request_id; returns the id, or null when the socket is down. */
  function send(frame, purpose) {
    if (!isOpen()) return null;
    const rid = nextRequestId();
    requests.set(rid, purpose);
    socket.send(JSON.stringify(Object.assign({}, frame, { request_id: rid })));
    return rid;
  }

  /** Follow a job that is not final yet: its snapshot comes back, then its live frames. */
  function subscribe(id) {
    const entry = jobs.get(id);
    if (!entry || FINAL_STATES.has(entry.job.state) || following.has(id)) return;
    if (send({ type: "job.subscribe", job_id: id }, { what: "subscribe", jobId: id }) !== null) {
      following.add(id);
    }
  }

  window.addEventListener("online", () => {
    if (socket === null) {
      attempt = Math.max(attempt, 1);
      setConn("reconnecting");
      connect();
    }
  });
  window.addEventListener("offline", () => {
    if (socket !== null) {
      socket.close(); // the close handler shows "offline" and waits for "online"
    } else {
      window.clearTimeout(reconnectTimer);
      reconnectTimer = null;
      setConn("offline");
    }
  });

  // ------------------------------------------------------------------ frames

  function onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch (err) {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    const rid = typeof frame.request_id === "string" ? frame.request_id : null;
    const purpose = rid ? requests.get(rid) : undefined;
    if (rid) requests.delete(rid);

    if (JOB_FRAME_TYPES.has(frame.type)) {
      onJobFrame(frame, rid, purpose);
    } else if (frame.type === "job.list") {
      onJobList(frame);
    } else if (frame.type === "error") {
      onError(frame, rid, purpose);
    }
    // job.unsubscribed and unknown types need nothing.
  }

  function onJobFrame(frame, rid, purpose) {
    const job = frame.job;
    if (!job || typeof job.id !== "string") return;
    const started = frame.type === "job.accepted" && purpose && purpose.what === "start";
    if (started) {
      pendingStarts.delete(rid);
      following.add(job.id);
      clearSourceError(purpose.source);
    }
    if (purpose && purpose.what === "cancel") {
      const entry = jobs.get(job.id);
      if (entry) entry.cancelRequested = false;
    }
    upsertJob(job, started);
    const entry = jobs.get(job.id);
    if (entry && purpose && purpose.what === "cancel") renderJob(entry);
  }

  /** First dashboard page: take in jobs started elsewhere (other tabs, scripts). */
  function onJobList(frame) {
    const list = Array.isArray(frame.jobs) ? frame.jobs : [];
    // Oldest first, so each new card goes in above the older ones.
    for (const job of list.slice().reverse()) {
      if (!job || typeof job.id !== "string") continue;
      const isNew = !FINAL_STATES.has(job.state) || parseTime(job.created_at) > newestAtLoad;
      upsertJob(job, isNew);
      subscribe(job.id);
    }
  }

  function onError(frame, rid, purpose) {
    const message = typeof frame.message === "string" && frame.message
      ? frame.message : "Something went wrong (" + (frame.code || "error") + ").";
    const fields = frame.fields && typeof frame.fields === "object" ? frame.fields : null;
    if (purpose && purpose.what === "start") {
      pendingStarts.delete(rid);
      if (purpose.source === "csv") {
        showCsvError(message, fields);
      } else {
        markFields(purpose.source === "remote" ? REMOTE_FIELDS : SIM_FIELDS, fields);
        showNotice(message, fields);
      }
      return;
    }
    if (purpose && purpose.what === "subscribe") {
      following.delete(purpose.jobId);
      if (frame.code === "rate_limited") {
        // Many jobs on a page can exceed the burst after quick reconnects: try again soon.
        window.setTimeout(() => subscribe(purpose.jobId), RESUBSCRIBE_DELAY_MS);
        return;
      }
    }
    if (purpose && (purpose.what === "cancel" || purpose.what === "subscribe")) {
      const entry = jobs.get(purpose.jobId);
      if (entry) {
        if (purpose.what === "cancel") entry.cancelRequested = false;
        entry.alert = message;
        renderJob(entry);
        return;
      }
    }
    showNotice(message, fields);
  }

  // ---------------------------------------------------------------- errors

  function fieldLines(fields) {
    const lines = [];
    if (!fields) return lines;
    for (const [name, messages] of Object.entries(fields)) {
      const text = Array.isArray(messages) ? messages.join(" ") : String(messages);
      lines.push(name + ": " + text);
    }
    return lines;
  }

  function fillMessage(node, message, fields) {
    node.replaceChildren();
    if (!message) return;
    const lines = fieldLines(fields);
    if (lines.length === 0) {
      node.textContent = message;
      return;
    }
    node.append(h("span", { className: "msg-main", text: message }));
    for (const line of lines) node.append(h("span", { className: "msg-field", text: line }));
  }

  function showNotice(message, fields) {
    if (el.notice) fillMessage(el.notice, message, fields);
  }

  function clearNotice() {
    if (el.notice) el.notice.replaceChildren();
  }

  function showCsvError(message, fields) {
    if (el.csvError) fillMessage(el.csvError, message, fields);
  }

  function clearSourceError(source) {
    if (source === "csv") {
      showCsvError("");
    } else {
      markFields(source === "remote" ? REMOTE_FIELDS : SIM_FIELDS, null);
      clearNotice();
    }
  }

  /** Mark the inputs named in an invalid_params answer ("payload.duration_s" → duration_s). */
  function markFields(fieldIds, fields) {
    const byName = {};
    if (fields) {
      for (const [key, messages] of Object.entries(fields)) {
        byName[key.split(".").pop()] = messages;
      }
    }
    for (const [name, id] of Object.entries(fieldIds)) {
      const input = document.getElementById(id);
      if (!input) continue;
      const errId = id + "-error";
      let errNode = document.getElementById(errId);
      const messages = byName[name];
      if (messages) {
        const text = Array.isArray(messages) ? messages.join(" ") : String(messages);
        if (!errNode) {
          errNode = h("p", { id: errId, className: "field-error" });
          const anchor = input.type === "checkbox" && input.labels && input.labels[0] ? input.labels[0] : input;
          anchor.insertAdjacentElement("afterend", errNode);
        }
        errNode.textContent = text;
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", errId);
      } else {
        if (errNode) errNode.remove();
        input.removeAttribute("aria-invalid");
        input.removeAttribute("aria-describedby");
      }
    }
  }

  // ------------------------------------------------------------------- jobs

  /**
   * Take a job object into the page unless it is stale.
   * A frame is dropped when its seq is lower than the highest seen, or equal to it
   * for a job the page already knows. Unknown jobs are added only when `allowNew`.
   */
  function upsertJob(job, allowNew) {
    if (!job || typeof job.id !== "string") return;
    const seq = Number(job.seq);
    const existing = jobs.get(job.id);
    if (existing) {
      if (existing.stale) {
        // Any job frame comes from the socket that is open now: the card has caught up.
        existing.stale = false;
        renderJob(existing);
      }
      if (!(seq > existing.seq)) return;
      if (FINAL_STATES.has(existing.job.state) && !FINAL_STATES.has(job.state)) return;
      const before = existing.job;
      existing.job = job;
      existing.seq = seq;
      existing.receivedMs = Date.now();
      if (before.state !== job.state) existing.alert = null;
      renderJob(existing);
      announceChange(existing, before);
      return;
    }
    if (!allowNew) return;
    const entry = addEntry(job);
    insertCard(entry);
    renderJob(entry);
    if (el.empty) el.empty.hidden = true;
  }

  function addEntry(job) {
    const seq = Number(job.seq);
    const entry = {
      job,
      seq: Number.isFinite(seq) ? seq : -Infinity,
      createdMs: parseTime(job.created_at),
      percent: null,
      receivedMs: Date.now(),
      cancelRequested: false,
      resultShown: false,
      alert: null,
      stale: false,
      nodes: null,
    };
    jobs.set(job.id, entry);
    entry.nodes = buildCard(entry);
    return entry;
  }

  function retryKey(job) {
    const r = job.retrying;
    return r && typeof r === "object" ? String(r.attempt) + "/" + String(r.max_attempts) : "";
  }

  /** Tell screen readers what changed: the state, or a new retry; never every progress tick. */
  function announceChange(entry, before) {
    const job = entry.job;
    const name = jobName(job);
    if (before.state !== job.state) {
      const text = {
        running: name + " is running.",
        cancelling: name + " is being cancelled.",
        succeeded: name + " succeeded.",
        failed: name + " failed" + (job.error ? ": " + errorText(job.error) : "."),
        cancelled: name + " was cancelled.",
      }[job.state];
      announce(text);
    }
    const key = retryKey(job);
    if (key && key !== retryKey(before) && !FINAL_STATES.has(job.state)) {
      announce(name + ": " + retryText(job.retrying, 0));
    }
  }

  function insertCard(entry) {
    const card = entry.nodes.card;
    let before = null;
    for (const other of el.jobs.children) {
      const otherEntry = jobs.get(other.dataset.jobId);
      if (otherEntry && otherEntry.createdMs < entry.createdMs) {
        before = other;
        break;
      }
    }
    el.jobs.insertBefore(card, before);
  }

  function buildCard(entry) {
    const job = entry.job;
    const detail = config.mode === "detail";
    const titleId = "job-title-" + job.id;
    const url = detail ? null : jobUrl(job.id);
    const titleText = h("span", { className: "job-title-text" });
    const title = h(detail ? "h1" : "h3", { id: titleId, className: "job-title" },
      url ? h("a", { href: url }, titleText) : titleText);
    const state = h("span", { className: "job-state" });
    const created = h("time", { className: "job-created" });
    const params = h("span", { className: "job-params" });
    const progress = h("progress", { className: "job-progress", max: "100" });
    const percent = h("span", { className: "job-percent" });
    const counts = h("span", { className: "job-counts" });
    const stat = (label, cls) => {
      const value = h("dd", { className: cls });
      const item = h("div", { className: "job-stat" }, h("dt", { text: label }), value);
      return { item, value };
    };
    const elapsed = stat("Elapsed", "job-elapsed");
    const rate = stat("Rate", "job-rate");
    const eta = stat("ETA", "job-eta");
    const message = h("p", { className: "job-message" });
    const retry = h("p", { className: "job-retry" });
    const actions = h("div", { className: "job-actions" });
    const alert = h("p", { className: "job-alert", role: "alert" });
    const stale = h("p", { className: "job-stale", hidden: true,
      text: "Not connected: this may be out of date until the connection is back." });
    const card = h(
      "article",
      { className: "job", "data-job-id": job.id, "aria-labelledby": titleId },
      h("div", { className: "job-head" }, title, state),
      stale,
      h("p", { className: "job-meta" }, created, params),
      progress,
      h("div", { className: "job-figures" }, percent, counts),
      h("dl", { className: "job-stats" }, elapsed.item, rate.item, eta.item),
      message,
      retry,
      actions,
      alert,
    );
    const nodes = { card, titleText, state, created, params, progress, percent, counts,
      elapsed: elapsed.value, rate: rate.value, rateItem: rate.item, eta: eta.value, etaItem: eta.item,
      message, retry, actions, alert, stale, cancel: null, result: null, error: null, details: null };
    if (detail) {
      nodes.details = h("dl", { className: "job-details" });
      card.insertBefore(nodes.details, actions);
    }
    return nodes;
  }

  /** Bring one card in line with entry.job, touching only what changed. */
  function renderJob(entry) {
    const job = entry.job;
    const n = entry.nodes;
    const state = String(job.state || "pending");

    n.card.dataset.state = state;
    n.card.dataset.kind = String(job.kind || "");

    const title = jobName(job);
    setText(n.titleText, title);
    setText(n.state, state);
    n.progress.setAttribute("aria-label", "Progress of " + title);

    if (job.created_at && n.created.getAttribute("datetime") !== job.created_at) {
      n.created.setAttribute("datetime", job.created_at);
      const date = new Date(job.created_at);
      setText(n.created, Number.isNaN(date.getTime()) ? "" : "Created " + date.toLocaleString());
    }
    setText(n.params, job.summary ? " · " + job.summary : "");
    if (entry.stale) n.card.dataset.stale = "true";
    else delete n.card.dataset.stale;
    n.stale.hidden = !entry.stale;

    renderProgress(entry);
    renderTimes(entry);
    renderCancel(entry, state);
    renderOutcome(entry, state);
    if (n.details) renderDetails(entry);
    setText(n.alert, entry.alert || "");
    n.alert.hidden = !entry.alert;
  }

  /**
   * Bar, percent, counts and message. A final card looks final: no moving stripe (an unknown
   * total shows an empty bar), no "total unknown", and no last message of a failed job (its
   * error says what happened) or of a job being retried (the retry notice says it).
   */
  function renderProgress(entry) {
    const n = entry.nodes;
    const job = entry.job;
    const final = FINAL_STATES.has(job.state);
    const progress = job.progress || {};
    let percent = isNumber(progress.percent) ? Math.max(0, Math.min(100, progress.percent)) : null;
    // Never let the bar go backwards (and keep a known value if total becomes unknown).
    if (entry.percent !== null && (percent === null || percent < entry.percent)) {
      percent = entry.percent;
    }
    if (job.state === "succeeded") percent = 100;
    entry.percent = percent;

    if (percent === null && !final) {
      if (n.progress.hasAttribute("value")) n.progress.removeAttribute("value");
      setText(n.percent, "working…");
    } else {
      const value = String(percent === null ? 0 : Math.round(percent * 100) / 100);
      if (n.progress.getAttribute("value") !== value) n.progress.setAttribute("value", value);
      setText(n.percent, percent === null ? "" : Math.floor(percent) + "%");
    }

    const current = progress.current;
    const total = progress.total;
    const bytes = job.kind === "csv_profile";
    const show = (v) => (bytes ? formatBytes(v) : formatNumber(v));
    let counts = "";
    let exact = "";
    if (isNumber(current) && isNumber(total)) {
      counts = show(current) + (bytes ? " of " : " / ") + show(total);
      if (bytes) exact = INTEGER.format(current) + " of " + exactBytes(total);
    } else if (isNumber(current) && !final) {
      counts = show(current) + " (total unknown)";
      if (bytes) exact = exactBytes(current);
    } else if (isNumber(current) && current > 0) {
      counts = show(current);
      if (bytes) exact = exactBytes(current);
    }
    setText(n.counts, counts);
    if (exact) n.counts.setAttribute("title", exact);
    else n.counts.removeAttribute("title");
    const retrying = job.retrying && typeof job.retrying === "object" && !final;
    setText(n.message, job.state === "failed" || retrying ? "" : progress.message || "");
  }

  /** The parts that move with the clock: elapsed time, ETA and retry countdowns, rate. */
  function renderTimes(entry) {
    const n = entry.nodes;
    const job = entry.job;
    const progress = job.progress || {};
    const final = FINAL_STATES.has(job.state);
    const startedMs = parseTime(job.started_at);
    const endMs = final ? parseTime(job.finished_at) || serverNowMs() : serverNowMs();
    if (startedMs) {
      setText(n.elapsed, formatClock((endMs - startedMs) / 1000));
    } else {
      setText(n.elapsed, final ? "—" : "not started");
    }

    // rate and eta_seconds are computed by the server; older servers do not send them.
    n.rateItem.hidden = !("rate" in progress);
    setText(n.rate, isNumber(progress.rate) ? formatRate(job.kind, progress.rate) : "—");
    n.etaItem.hidden = final || !("eta_seconds" in progress);
    if (!final) {
      const sinceMs = Date.now() - entry.receivedMs;
      const eta = isNumber(progress.eta_seconds) && job.state === "running"
        ? Math.max(0, progress.eta_seconds - sinceMs / 1000) : null;
      setText(n.eta, eta === null ? "—" : formatDuration(eta));
    }

    const retrying = job.retrying && typeof job.retrying === "object" && !final ? job.retrying : null;
    setText(n.retry, retrying ? retryText(retrying, Date.now() - entry.receivedMs) : "");
    n.retry.hidden = !retrying;
  }

  /** "service unavailable — retry 2 of 5 in 1.0 s", counting down from when it arrived. */
  function retryText(retrying, sinceMs) {
    const reason = retrying.reason ? String(retrying.reason) : "retrying";
    let text = reason + " — retry " + formatNumber(retrying.attempt) + " of " + formatNumber(retrying.max_attempts);
    if (isNumber(retrying.next_attempt_in_s)) {
      const left = retrying.next_attempt_in_s - sinceMs / 1000;
      text += left > 0 ? " in " + left.toFixed(1) + " s" : " now";
    }
    return text;
  }

  function renderCancel(entry, state) {
    const n = entry.nodes;
    const showButton = CANCELLABLE_STATES.has(state) || state === "cancelling";
    if (!showButton) {
      if (n.cancel) {
        const hadFocus = document.activeElement === n.cancel;
        n.cancel.remove();
        n.cancel = null;
        if (hadFocus) {
          n.card.setAttribute("tabindex", "-1");
          n.card.focus();
        }
      }
      return;
    }
    if (!n.cancel) {
      n.cancel = h("button", { type: "button", className: "job-cancel" });
      n.cancel.addEventListener("click", () => confirmCancel(entry));
      n.actions.append(n.cancel);
    }
    const cancelling = state === "cancelling" || entry.cancelRequested;
    n.cancel.disabled = cancelling;
    setText(n.cancel, cancelling ? "Cancelling…" : "Cancel");
    n.cancel.setAttribute("aria-label", (cancelling ? "Cancelling " : "Cancel ") + jobName(entry.job));
  }

  /** Ask first: a modal <dialog> (window.confirm where <dialog> is missing). */
  function confirmCancel(entry) {
    const question = "Cancel " + jobName(entry.job) + "?";
    if (!el.dialog || typeof el.dialog.showModal !== "function") {
      if (window.confirm(question)) sendCancel(entry);
      return;
    }
    if (el.dialog.open) return;
    dialogEntry = entry;
    const title = document.getElementById("cancel-dialog-title");
    if (title) setText(title, question);
    if (el.dialogText) {
      setText(el.dialogText, "The work stops and the job ends “cancelled”. This cannot be undone.");
    }
    el.dialog.returnValue = "";
    el.dialog.showModal();
  }

  function onDialogClose() {
    const entry = dialogEntry;
    dialogEntry = null;
    if (!entry) return;
    if (el.dialog.returnValue === "confirm") sendCancel(entry);
    const button = entry.nodes.cancel;
    if (button && button.isConnected && !button.disabled) button.focus();
    else if (entry.nodes.card.isConnected) {
      entry.nodes.card.setAttribute("tabindex", "-1");
      entry.nodes.card.focus();
    }
  }

  function sendCancel(entry) {
    const id = entry.job.id;
    if (FINAL_STATES.has(entry.job.state)) {
      entry.alert = "Nothing to cancel: the job already " + entry.job.state + ".";
      renderJob(entry);
      return;
    }
    const rid = send({ type: "job.cancel", job_id: id }, { what: "cancel", jobId: id });
    if (rid === null) {
      entry.alert = "Not connected: try again when the connection is back.";
    } else {
      entry.cancelRequested = true;
      entry.alert = null;
    }
    renderJob(entry);
  }

  function renderOutcome(entry, state) {
    const n = entry.nodes;
    const job = entry.job;
    if (state === "succeeded" && !entry.resultShown) {
      entry.resultShown = true;
      n.result = buildResult(job);
      n.card.insertBefore(n.result, n.details || n.actions);
    }
    if (state === "failed") {
      const text = job.error ? errorText(job.error) : "The job failed.";
      if (!n.error) {
        n.error = h("p", { className: "job-error" });
        n.card.insertBefore(n.error, n.details || n.actions);
      }
      setText(n.error, text);
    }
  }

  function errorText(error) {
    if (typeof error === "string") return error;
    if (error && typeof error.message === "string") return error.message;
    try {
      return JSON.stringify(error);
    } catch (err) {
      return String(error);
    }
  }

  function renderDetails(entry) {
    const job = entry.job;
    const rows = [["Kind", job.kind], ["Id", job.id]];
    for (const [label, key] of [["Created", "created_at"], ["Started", "started_at"], ["Finished", "finished_at"]]) {
      const ms = parseTime(job[key]);
      rows.push([label, ms ? new Date(ms).toLocaleString() : "—"]);
    }
    let params = "";
    try {
      params = JSON.stringify(job.params === undefined ? null : job.params);
    } catch (err) {
      params = String(job.params);
    }
    rows.push(["Parameters", params]);
    const key = JSON.stringify(rows);
    if (entry.nodes.details.dataset.key === key) return;
    entry.nodes.details.dataset.key = key;
    entry.nodes.details.replaceChildren(...rows.map(([label, value]) =>
      h("div", { className: "job-detail" }, h("dt", { text: label }), h("dd", { text: value }))));
  }

  // ---------------------------------------------------------------- results

  function isPlain(value) {
    return value === null || ["string", "number", "boolean"].includes(typeof value);
  }

  function buildResult(job) {
    const box = h("div", { className: "job-result" });
    const result = job.result;
    if (job.kind === "csv_profile" && result && typeof result === "object" &&
        Array.isArray(result.columns)) {
      box.append(buildProfile(job, result));
    } else if (result && typeof result === "object" && !Array.isArray(result) &&
               Object.values(result).every(isPlain)) {
      box.append(h("dl", { className: "job-result-summary" }, ...Object.entries(result).map(([k, v]) =>
        h("div", null, h("dt", { text: humanKey(k) }), h("dd", { text: formatNumber(v) })))));
    } else if (result !== null && result !== undefined) {
      let text;
      try {
        text = JSON.stringify(result, null, 2);
      } catch (err) {
        text = String(result);
      }
      box.append(h("pre", { className: "job-result-json", tabindex: "0", "aria-label": "Result", text }));
    } else {
      box.append(h("p", { className: "job-result-empty", text: "Done." }));
    }
    return box;
  }

  function first(obj, keys) {
    for (const key of keys) {
      if (obj[key] !== undefined && obj[key] !== null) return obj[key];
    }
    return null;
  }

  function profileSummary(result) {
    const rows = first(result, ["rows", "row_count", "rows_total"]);
    const bad = first(result, ["bad_rows", "bad_row_count", "bad_rows_count"]);
    const bytes = first(result, ["bytes", "size", "bytes_read", "size_bytes"]);
    const parts = [];
    parts.push(isNumber(rows) ? plural(rows, "row") : "rows unknown");
    parts.push(isNumber(bad) ? plural(bad, "bad row") : "bad rows unknown");
    parts.push("delimiter " + describeDelimiter(result.delimiter));
    parts.push("encoding " + (result.encoding ? String(result.encoding) : "unknown"));
    parts.push(isNumber(bytes) ? formatBytes(bytes) + (bytes >= BYTES_PER_UNIT ? " (" + exactBytes(bytes) + ")" : "")
      : "size unknown");
    return parts.join(" · ");
  }

  /**
   * The profile, folded behind a summary ("Profile: 7 columns, 3,376 rows") on a phone,
   * where a table of many columns is pages long; open on wider screens.
   */
  function buildProfile(job, result) {
    const rows = first(result, ["rows", "row_count", "rows_total"]);
    const fold = h("details", { className: "profile", open: !window.matchMedia(FOLD_PROFILES_QUERY).matches },
      h("summary", { className: "profile-summary",
        text: "Profile: " + plural(result.columns.length, "column") +
          (isNumber(rows) ? ", " + plural(rows, "row") : "") }));

    const headers = ["Column", "Type", "Non-null", "Nulls", "Distinct", "Min", "Max", "Mean"];
    const numeric = [false, false, true, true, true, true, true, true];
    // Explicit roles keep table semantics when the phone layout restyles rows as blocks.
    const table = h(
      "table",
      { className: "profile-table", role: "table" },
      h("caption", { text: profileSummary(result) }),
      h("thead", { role: "rowgroup" }, h("tr", { role: "row" }, ...headers.map((text, i) =>
        h("th", { scope: "col", role: "columnheader", className: numeric[i] ? "num" : null, text })))),
    );
    const body = h("tbody", { role: "rowgroup" });
    for (const col of result.columns) {
      const c = col && typeof col === "object" ? col : {};
      const cells = [c.name, c.type, c.non_null, c.nulls, c.distinct, c.min, c.max, c.mean];
      body.append(h("tr", { role: "row" }, ...cells.map((value, i) => {
        const text = i < 2 ? (value === null || value === undefined ? "—" : String(value))
          : i < 5 ? formatNumber(value) : formatDataValue(value);
        return h("td", { role: "cell", className: numeric[i] ? "num" : null, "data-label": headers[i], text });
      })));
    }
    table.append(body);
    fold.append(h("div", {
      className: "table-wrap",
      tabindex: "0",
      role: "region",
      "aria-label": "Profile of " + jobName(job),
    }, table));

    const samples = Array.isArray(result.bad_row_samples) ? result.bad_row_samples : [];
    if (samples.length > 0) {
      const list = h("ul", { className: "bad-rows" });
      for (const sample of samples) {
        const s = sample && typeof sample === "object" ? sample : {};
        list.append(h("li", null,
          h("span", { className: "bad-row-line", text: "Line " + formatNumber(s.line) }),
          ": ",
          h("span", { className: "bad-row-reason", text: s.reason || "" })));
      }
      fold.append(h("p", { className: "bad-rows-heading", text: "Bad row samples" }), list);
    }
    return fold;
  }

  // ------------------------------------------------------------------ forms

  /** Queue a job.start; sent now when connected, otherwise on the next open. */
  function startJob(kind, params, source) {
    const rid = nextRequestId();
    const frame = { type: "job.start", kind, params, idempotency_key: newIdempotencyKey() };
    requests.set(rid, { what: "start", source });
    pendingStarts.set(rid, frame);
    if (isOpen()) {
      socket.send(JSON.stringify(Object.assign({}, frame, { request_id: rid })));
      return true;
    }
    return false;
  }

  function readInt(input) {
    const raw = input ? input.value.trim() : "";
    if (raw === "") return undefined;
    const num = Number(raw);
    // Anything else goes to the server as typed, so its invalid_params names the field.
    return Number.isInteger(num) ? num : raw;
  }

  function onSimSubmit(event) {
    event.preventDefault();
    clearNotice();
    markFields(SIM_FIELDS, null);
    const params = {};
    for (const [name, id] of Object.entries(SIM_FIELDS)) {
      const value = readInt(document.getElementById(id));
      if (value !== undefined) params[name] = value;
    }
    if (!startJob("simulated", params, "simulated")) {
      showNotice("Not connected: the job will start when the connection is back.");
    }
  }

  function onRemoteSubmit(event) {
    event.preventDefault();
    clearNotice();
    markFields(REMOTE_FIELDS, null);
    const payload = { fail: Boolean(document.getElementById(REMOTE_FIELDS.fail).checked) };
    for (const name of ["duration_s", "unavailable_s"]) {
      const value = readInt(document.getElementById(REMOTE_FIELDS[name]));
      if (value !== undefined) payload[name] = value;
    }
    if (!startJob("remote", { service: REMOTE_SERVICE, payload }, "remote")) {
      showNotice("Not connected: the job will start when the connection is back.");
    }
  }

  function setCsvBusy(busy) {
    if (!el.csvStart) return;
    el.csvStart.disabled = busy;
    el.csvStart.textContent = busy ? "Uploading…" : "Upload and profile";
  }

  async function onCsvSubmit(event) {
    event.preventDefault();
    showCsvError("");
    const file = el.csvFile && el.csvFile.files && el.csvFile.files[0];
    if (!file) {
      showCsvError("Choose a CSV file first.");
      return;
    }
    if (config.uploadMaxBytes > 0 && file.size > config.uploadMaxBytes) {
      showCsvError("“" + file.name + "” is " + formatBytes(file.size) +
        "; the largest file you can upload is " + formatBytes(config.uploadMaxBytes) + ".");
      return;
    }
    const body = new FormData();
    body.append("file", file, file.name);
    setCsvBusy(true);
    let response;
    try {
      response = await fetch(config.uploadUrl, {
        method: "POST",
        body,
        headers: { "X-CSRFToken": config.csrfToken },
        credentials: "same-origin",
      });
    } catch (err) {
      setCsvBusy(false);
      showCsvError("Upload failed: the server could not be reached.");
      return;
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    setCsvBusy(false);
    if (response.status === 201 && data && data.upload_id !== undefined) {
      if (!startJob("csv_profile", { upload_id: data.upload_id }, "csv")) {
        showCsvError("Uploaded. Not connected: profiling starts when the connection is back.");
      }
      el.csvForm.reset();
      return;
    }
    const status = response.status + (response.statusText ? " " + response.statusText : "");
    const message = data && typeof data.message === "string" && data.message
      ? data.message : "Upload failed: " + status + ".";
    showCsvError(message, data && data.fields);
  }

  // ------------------------------------------------------------------- start

  /** Replace the server-rendered cards with live ones built from the same snapshots. */
  function adoptInitialJobs() {
    for (const job of Array.isArray(initialJobs) ? initialJobs : []) {
      if (!job || typeof job.id !== "string" || jobs.has(job.id)) continue;
      const entry = addEntry(job);
      newestAtLoad = Math.max(newestAtLoad, entry.createdMs);
      const rendered = Array.from(el.jobs.children).find((node) => node.dataset.jobId === job.id);
      if (rendered) rendered.replaceWith(entry.nodes.card);
      else el.jobs.append(entry.nodes.card);
      renderJob(entry);
    }
  }

  function tick() {
    for (const entry of jobs.values()) {
      if (!FINAL_STATES.has(entry.job.state)) renderTimes(entry);
    }
  }

  if (el.jobs) adoptInitialJobs();
  if (el.simForm) el.simForm.addEventListener("submit", onSimSubmit);
  if (el.csvForm) el.csvForm.addEventListener("submit", onCsvSubmit);
  if (el.remoteForm) el.remoteForm.addEventListener("submit", onRemoteSubmit);
  if (el.dialog) el.dialog.addEventListener("close", onDialogClose);
  if (el.empty) el.empty.hidden = jobs.size > 0;
  window.setInterval(tick, TICK_MS);

  /** A small hook for tests and debugging: drop the socket as a network failure would. */
  window.jobsApp = Object.freeze({
    dropSocket() {
      if (socket !== null) socket.close();
    },
  });

  setConn("connecting");
  connect();
})();
