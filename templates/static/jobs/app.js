/*
 * Live job pages (the dashboard at "/" and one job at "/jobs/<id>/"), loaded as
 * <script type="module">: this entry reads the page's config (#jobs-config) and snapshots
 * (#jobs-data) and wires the modules beside it:
 *   transport.js  the WebSocket (backoff, request ids, queued job.start frames)
 *   store.js      the jobs and their highest seq; follower.js  the protocol, for every page
 *   cardview.js / format.js  what a card says (pure); render.js / result.js  the cards
 *   forms.js      the dashboard's forms and notices
 * The server renders every card from its snapshot, so a reload shows the current state at
 * once; the script replaces each with a live clone of the same card template and follows it.
 */
import { createFormat } from "./format.js";
import { announcements, jobName } from "./cardview.js";
import { JobStore } from "./store.js";
import { Transport } from "./transport.js";
import { Follower } from "./follower.js";
import { CardRenderer, focusCard, setText } from "./render.js";
import { setupForms } from "./forms.js";

const TICK_MS = 1000;
const ANNOUNCE_DELAY_MS = 100;
/** Where a finished CSV profile starts folded: the phone layout of app.css (max-width: 30rem). */
const FOLD_PROFILES_QUERY = "(max-width: 30rem)";
const CONN_TEXT = {
  connecting: () => "Connecting…",
  connected: () => "Connected: updates are live.",
  reconnecting: (n) => "Connection lost. Reconnecting (attempt " + n + ")…",
  offline: () => "Offline. Will reconnect when the network is back.",
};

function readJson(id, fallback) {
  const node = document.getElementById(id);
  try {
    const parsed = JSON.parse(node ? node.textContent : "null");
    return parsed === null || parsed === undefined ? fallback : parsed;
  } catch (err) {
    return fallback;
  }
}

const config = readJson("jobs-config", {});
const fmt = createFormat(document.documentElement.lang || "en");
const clockOffsetMs = Date.parse(config.serverNow) - Date.now() || 0;
const el = {
  conn: document.getElementById("conn-status"),
  jobs: document.getElementById("jobs"),
  empty: document.getElementById("jobs-empty"),
  announcer: document.getElementById("announcer"),
  dialog: document.getElementById("cancel-dialog"),
  dialogTitle: document.getElementById("cancel-dialog-title"),
  template: document.getElementById("job-card-template"),
};

/**
 * Speak short sentences through the visually hidden live region. Sentences queued
 * together are spoken together, so a burst of changes never hides one of them.
 */
let announceQueue = [];
let announceTimer = null;
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

function setConn(state, attempt) {
  if (!el.conn) return;
  el.conn.dataset.state = state;
  setText(el.conn, CONN_TEXT[state](attempt));
}

function newIdempotencyKey() {
  if (typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const store = new JobStore();
const transport = new Transport({
  url: (window.location.protocol === "https:" ? "wss" : "ws") + "://" + window.location.host + config.wsPath,
  WebSocket: window.WebSocket,
  setTimeout: (fn, ms) => window.setTimeout(fn, ms),
  clearTimeout: (handle) => window.clearTimeout(handle),
  isOnline: () => navigator.onLine !== false,
  onStatus: setConn,
  onOpen: () => follower.opened(),
  onFrame: (frame) => follower.receive(frame),
  onClose: (code) => follower.closed(code),
});

// Cancel asks first: a modal <dialog>.
let dialogEntry = null;
function confirmCancel(entry) {
  if (el.dialog.open) return;
  dialogEntry = entry;
  setText(el.dialogTitle, "Cancel " + jobName(entry.job) + "?");
  el.dialog.returnValue = "";
  el.dialog.showModal();
}
el.dialog.addEventListener("close", () => {
  const entry = dialogEntry;
  dialogEntry = null;
  if (!entry) return;
  if (el.dialog.returnValue === "confirm") follower.cancel(entry);
  const button = entry.card.nodes.cancel;
  if (button && button.isConnected && !button.disabled) button.focus();
  else focusCard(entry);
});

const cards = new CardRenderer({
  template: el.template,
  fmt,
  jobUrl: (id) => (config.mode === "detail" ? null : config.jobUrl.replace(config.jobUrlPlaceholder, encodeURIComponent(id))),
  serverNowMs: () => Date.now() + clockOffsetMs,
  now: () => Date.now(),
  dateText: (ms) => new Date(ms).toLocaleString(),
  foldProfiles: () => window.matchMedia(FOLD_PROFILES_QUERY).matches,
  onCancel: confirmCancel,
});

/** A new card: in place of the server's card of the job, or above the older cards. */
function addCard(entry) {
  const card = cards.create(entry);
  const children = Array.from(el.jobs.children);
  const rendered = children.find((node) => node.dataset.jobId === entry.job.id);
  if (rendered) {
    rendered.replaceWith(card);
  } else {
    const older = children.find((node) => {
      const other = store.get(node.dataset.jobId);
      return other && other.createdMs < entry.createdMs;
    });
    el.jobs.insertBefore(card, older || null);
  }
  cards.render(entry);
  if (el.empty) el.empty.hidden = true;
}

let forms = null;
const follower = new Follower({
  transport,
  store,
  listLimit: config.mode === "dashboard" && config.page === 1 ? config.pageSize : null,
  setTimeout: (fn, ms) => window.setTimeout(fn, ms),
  newKey: newIdempotencyKey,
  view: {
    added: addCard,
    update: (entry) => cards.render(entry),
    changed: (entry, before) => announcements(before, entry.job, fmt).forEach(announce),
    startAnswered: (source, error) => forms.startAnswered(source, error),
    notice: (message, fields) => forms.notice(message, fields),
  },
});
forms = setupForms({ doc: document, follower, config, fmt });

follower.adopt(readJson("jobs-data", []));
if (el.empty) el.empty.hidden = store.size > 0;
window.setInterval(() => cards.tick(store.values()), TICK_MS);
window.addEventListener("online", () => transport.online());
window.addEventListener("offline", () => transport.offline());

/** A small hook for tests and debugging: drop the socket as a network failure would. */
window.jobsApp = Object.freeze({ dropSocket: () => transport.drop() });

setConn("connecting", 0);
transport.connect();
