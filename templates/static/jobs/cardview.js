/*
 * What a card shows of a job object (DESIGN.md "WebSocket protocol"), as text: pure, no DOM.
 * render.js puts these texts into the server's card template; the server's own first render
 * (tasks_app/views.py _job_card) follows the same rules: a final card has a still bar, no
 * "total unknown", and a failed one its error instead of the last message.
 */
import { isNumber, formatClock, formatDuration, parseTime } from "./format.js";
import { isFinal, CANCELLABLE_STATES } from "./store.js";

const SHORT_ID_LENGTH = 8;

/**
 * "Count primes · 1c235a6c": the kind's title (from the server) and the short id.
 * @param {{id: string, title: string}} job
 * @returns {string}
 */
export function jobName(job) {
  return job.title + " · " + String(job.id).slice(0, SHORT_ID_LENGTH);
}

/**
 * A job's error for people: the string, or an object's message, or its JSON.
 * @param {unknown} error
 * @returns {string}
 */
export function errorText(error) {
  if (typeof error === "string") return error;
  if (error && typeof error.message === "string") return error.message;
  try {
    return JSON.stringify(error);
  } catch (err) {
    return String(error);
  }
}

/** The job's retry notice object, or null when it is final or not retrying. */
function activeRetry(job) {
  return job.retrying && typeof job.retrying === "object" && !isFinal(job.state) ? job.retrying : null;
}

/**
 * Bar, percent, counts and message of a job. The bar never goes backwards: `floor` is the
 * highest percent shown so far (null for none) and the answer's `percent` the new one.
 * @param {object} job a job object
 * @param {number|null} floor
 * @param {ReturnType<import("./format.js").createFormat>} fmt
 * @returns {{percent: number|null, barValue: string|null, percentText: string,
 *   counts: string, countsTitle: string, message: string}} barValue null: no value (a moving stripe)
 */
export function progressView(job, floor, fmt) {
  const final = isFinal(job.state);
  const progress = job.progress || {};
  let percent = isNumber(progress.percent) ? Math.max(0, Math.min(100, progress.percent)) : null;
  // Keep a known value if the total becomes unknown.
  if (floor !== null && (percent === null || percent < floor)) percent = floor;
  if (job.state === "succeeded") percent = 100;

  let barValue = null;
  let percentText = "working…";
  if (percent !== null || final) {
    // A final card looks final: a still bar, empty when the total stayed unknown.
    barValue = String(percent === null ? 0 : Math.round(percent * 100) / 100);
    percentText = percent === null ? "" : Math.floor(percent) + "%";
  }

  const { current, total } = progress;
  const bytes = job.kind === "csv_profile";
  const show = (v) => (bytes ? fmt.bytes(v) : fmt.number(v));
  let counts = "";
  let countsTitle = "";
  if (isNumber(current) && isNumber(total)) {
    counts = show(current) + (bytes ? " of " : " / ") + show(total);
    if (bytes) countsTitle = fmt.integer(current) + " of " + fmt.exactBytes(total);
  } else if (isNumber(current) && !final) {
    counts = show(current) + " (total unknown)";
    if (bytes) countsTitle = fmt.exactBytes(current);
  } else if (isNumber(current) && current > 0) {
    counts = show(current);
    if (bytes) countsTitle = fmt.exactBytes(current);
  }
  // A failed job's error, or a retry notice, says what the last message would.
  const message = job.state === "failed" || activeRetry(job) ? "" : progress.message || "";
  return { percent, barValue, percentText, counts, countsTitle, message };
}

/**
 * "service unavailable — retry 2 of 5 in 1.0 s", counting down from when it arrived.
 * @param {{reason?: string, attempt: number, max_attempts: number, next_attempt_in_s?: number}} retrying
 * @param {number} sinceMs milliseconds since the frame carrying it arrived
 * @param {ReturnType<import("./format.js").createFormat>} fmt
 * @returns {string}
 */
export function retryText(retrying, sinceMs, fmt) {
  const reason = retrying.reason ? String(retrying.reason) : "retrying";
  let text = reason + " — retry " + fmt.number(retrying.attempt) + " of " + fmt.number(retrying.max_attempts);
  if (isNumber(retrying.next_attempt_in_s)) {
    const left = retrying.next_attempt_in_s - sinceMs / 1000;
    text += left > 0 ? " in " + left.toFixed(1) + " s" : " now";
  }
  return text;
}

/**
 * The parts that move with the clock: elapsed time, rate, ETA and the retry countdown.
 * @param {object} job a job object
 * @param {{serverNowMs: number, sinceMs: number}} clock now on the server's clock, and
 *   milliseconds since the job's last frame arrived
 * @param {ReturnType<import("./format.js").createFormat>} fmt
 * @returns {{elapsed: string, rateShown: boolean, rate: string, etaShown: boolean,
 *   eta: string|null, retry: string}} eta null: leave it (a final job shows none); retry "": none
 */
export function timesView(job, clock, fmt) {
  const progress = job.progress || {};
  const final = isFinal(job.state);
  const startedMs = parseTime(job.started_at);
  const endMs = final ? parseTime(job.finished_at) || clock.serverNowMs : clock.serverNowMs;
  const elapsed = startedMs ? formatClock((endMs - startedMs) / 1000) : final ? "—" : "not started";
  // rate and eta_seconds are computed by the server (selectors.job_rate).
  const rate = isNumber(progress.rate) ? fmt.rate(job.kind, progress.rate) : "—";
  let eta = null;
  if (!final) {
    const left = isNumber(progress.eta_seconds) && job.state === "running"
      ? Math.max(0, progress.eta_seconds - clock.sinceMs / 1000) : null;
    eta = left === null ? "—" : formatDuration(left);
  }
  const retrying = activeRetry(job);
  return {
    elapsed,
    rateShown: "rate" in progress,
    rate,
    etaShown: !final && "eta_seconds" in progress,
    eta,
    retry: retrying ? retryText(retrying, clock.sinceMs, fmt) : "",
  };
}

/** "2/5" for a job being retried, "" otherwise: a new key is a new retry to announce. */
function retryKey(job) {
  const r = job.retrying;
  return r && typeof r === "object" ? String(r.attempt) + "/" + String(r.max_attempts) : "";
}

/**
 * What screen readers hear when a job changes: its new state, or a new retry; never every
 * progress tick.
 * @param {object} before the job object shown so far
 * @param {object} job the job object now
 * @param {ReturnType<import("./format.js").createFormat>} fmt
 * @returns {string[]} sentences, possibly none
 */
export function announcements(before, job, fmt) {
  const name = jobName(job);
  const said = [];
  if (before.state !== job.state) {
    const text = {
      running: name + " is running.",
      cancelling: name + " is being cancelled.",
      succeeded: name + " succeeded.",
      failed: name + " failed" + (job.error ? ": " + errorText(job.error) : "."),
      cancelled: name + " was cancelled.",
    }[job.state];
    if (text) said.push(text);
  }
  const key = retryKey(job);
  if (key && key !== retryKey(before) && !isFinal(job.state)) {
    said.push(name + ": " + retryText(job.retrying, 0, fmt));
  }
  return said;
}

/**
 * The card's cancel button: shown while the job can still be cancelled or is being cancelled.
 * @param {object} job a job object
 * @param {boolean} requested a cancel was sent and not answered yet
 * @returns {{shown: boolean, disabled: boolean, text: string, label: string}}
 */
export function cancelView(job, requested) {
  const state = String(job.state || "pending");
  const cancelling = state === "cancelling" || requested;
  return {
    shown: CANCELLABLE_STATES.has(state) || state === "cancelling",
    disabled: cancelling,
    text: cancelling ? "Cancelling…" : "Cancel",
    label: (cancelling ? "Cancelling " : "Cancel ") + jobName(job),
  };
}

/**
 * The job page's details: kind, id, times (through `dateText`) and the parameters as JSON.
 * @param {object} job a job object
 * @param {(ms: number) => string} dateText a time for people
 * @returns {Record<string, string>} by field name of the job object
 */
export function detailValues(job, dateText) {
  const values = { kind: String(job.kind), id: String(job.id) };
  for (const key of ["created_at", "started_at", "finished_at"]) {
    const ms = parseTime(job[key]);
    values[key] = ms ? dateText(ms) : "—";
  }
  try {
    values.params = JSON.stringify(job.params === undefined ? null : job.params);
  } catch (err) {
    values.params = String(job.params);
  }
  return values;
}
