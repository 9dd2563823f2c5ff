/*
 * The one follower of jobs in JavaScript, used by every page (the dashboard and a job's page):
 * it speaks "WebSocket protocol, version 1" of DESIGN.md over a Transport and keeps a JobStore.
 * On every (re)connect it subscribes to every job of the page that is not final (the snapshots
 * catch it up after a gap) and, on the dashboard's first page, lists recent jobs to pick up
 * ones started elsewhere. No DOM: what the page shows goes through the `view` hooks.
 */
import { parseTime } from "./format.js";
import { isFinal, isJob } from "./store.js";

export const CLOSE_TOO_BIG = 4400;
export const CLOSE_FLOOD = 4429;
/** A subscribe refused as rate_limited is tried again after this (ms). */
export const RESUBSCRIBE_DELAY_MS = 1000;
const JOB_FRAME_TYPES = new Set([
  "job.accepted", "job.snapshot", "job.progress",
  "job.succeeded", "job.failed", "job.cancelled",
]);

/**
 * What the follower tells the page.
 * @typedef {object} FollowerView
 * @property {(entry: object) => void} added a job new to the page
 * @property {(entry: object) => void} update show the entry as it is now
 * @property {(entry: object, before: object) => void} changed the job changed from `before` (to announce)
 * @property {(source: string, error: {message: string, fields: object|null}|null) => void} startAnswered
 *   a job.start from form `source` was accepted (error null) or refused
 * @property {(message: string, fields?: object|null) => void} notice a message for the whole page
 */

export class Follower {
  /**
   * @param {object} options
   * @param {import("./transport.js").Transport} options.transport
   * @param {import("./store.js").JobStore} options.store
   * @param {FollowerView} options.view
   * @param {number|null} options.listLimit list this many recent jobs on every open (the
   *   dashboard's first page), or null not to list
   * @param {(fn: Function, ms: number) => any} options.setTimeout
   * @param {() => string} options.newKey a fresh idempotency key
   */
  constructor(options) {
    Object.assign(this, options);
    /** request_id → {what: "list"|"subscribe"|"start"|"cancel", source?, jobId?} */
    this.requests = new Map();
    /** Job ids this socket already follows (subscribed or started on it). */
    this.following = new Set();
    /** Jobs created after this (ms) are new to the page when a job.list brings them. */
    this.newestAtLoad = 0;
  }

  /**
   * Take the jobs the page was rendered with (#jobs-data).
   * @param {object[]} jobs job objects
   */
  adopt(jobs) {
    for (const job of Array.isArray(jobs) ? jobs : []) {
      if (!isJob(job) || this.store.has(job.id)) continue;
      const entry = this.store.add(job);
      this.newestAtLoad = Math.max(this.newestAtLoad, entry.createdMs);
      this.view.added(entry);
    }
  }

  /** The socket opened: answers to the old socket's requests will never come; follow again. */
  opened() {
    this.following = new Set();
    for (const [rid, purpose] of this.requests) {
      if (purpose.what !== "start") this.requests.delete(rid);
    }
    if (this.listLimit) this.request({ type: "job.list", limit: this.listLimit }, { what: "list" });
    for (const id of this.store.activeIds()) this.subscribe(id);
  }

  /**
   * The socket closed: cards of jobs that are not final may be old until their snapshots come.
   * @param {number} code the close code
   */
  closed(code) {
    this.following = new Set();
    for (const entry of this.store.markStale()) this.view.update(entry);
    if (code === CLOSE_TOO_BIG || code === CLOSE_FLOOD) {
      this.view.notice("The server closed the connection (" +
        (code === CLOSE_FLOOD ? "too many messages" : "message too large") + ").");
    }
    for (const entry of this.store.values()) {
      if (entry.cancelRequested) {
        entry.cancelRequested = false;
        this.view.update(entry);
      }
    }
  }

  request(frame, purpose) {
    const rid = this.transport.send(frame);
    if (rid !== null) this.requests.set(rid, purpose);
    return rid;
  }

  /**
   * Follow a job that is not final yet: its snapshot comes back, then its live frames.
   * Nothing happens for a final or unknown job, one already followed, or while disconnected.
   * @param {string} id
   */
  subscribe(id) {
    const entry = this.store.get(id);
    if (!entry || isFinal(entry.job.state) || this.following.has(id)) return;
    if (this.request({ type: "job.subscribe", job_id: id }, { what: "subscribe", jobId: id }) !== null) {
      this.following.add(id);
    }
  }

  /**
   * Start a job (job.start with a fresh idempotency key); sent again on every open until answered.
   * @param {string} kind
   * @param {object} params
   * @param {string} source the form it came from ("simulated", "csv", "remote")
   * @returns {boolean} sent now (false: it waits for the connection)
   */
  start(kind, params, source) {
    const frame = { type: "job.start", kind, params, idempotency_key: this.newKey() };
    const { rid, sent } = this.transport.queue(frame);
    this.requests.set(rid, { what: "start", source });
    return sent;
  }

  /**
   * Ask to cancel a job; the entry's alert says why not when it cannot be sent.
   * @param {object} entry a store entry
   */
  cancel(entry) {
    const id = entry.job.id;
    if (isFinal(entry.job.state)) {
      entry.alert = "Nothing to cancel: the job already " + entry.job.state + ".";
    } else if (this.request({ type: "job.cancel", job_id: id }, { what: "cancel", jobId: id }) === null) {
      entry.alert = "Not connected: try again when the connection is back.";
    } else {
      entry.cancelRequested = true;
      entry.alert = null;
    }
    this.view.update(entry);
  }

  /**
   * One frame from the server (already parsed). Unknown types and job.unsubscribed need nothing.
   * @param {object} frame
   */
  receive(frame) {
    const rid = typeof frame.request_id === "string" ? frame.request_id : null;
    const purpose = rid ? this.requests.get(rid) : undefined;
    if (rid) this.requests.delete(rid);
    if (JOB_FRAME_TYPES.has(frame.type)) this.onJob(frame, rid, purpose);
    else if (frame.type === "job.list") this.onList(frame);
    else if (frame.type === "error") this.onError(frame, rid, purpose);
  }

  /** Take a job object; unknown jobs only when `allowNew`. */
  take(job, allowNew) {
    const { outcome, entry, before, caughtUp } = this.store.accept(job, { allowNew });
    if (outcome === "added") {
      this.view.added(entry);
    } else if (outcome === "updated") {
      this.view.update(entry);
      this.view.changed(entry, before);
    } else if (caughtUp) {
      this.view.update(entry);
    }
  }

  onJob(frame, rid, purpose) {
    const job = frame.job;
    if (!isJob(job)) return;
    const started = frame.type === "job.accepted" && purpose !== undefined && purpose.what === "start";
    if (started) {
      this.transport.settle(rid);
      this.following.add(job.id);
      this.view.startAnswered(purpose.source, null);
    }
    const cancelAnswer = purpose !== undefined && purpose.what === "cancel" ? this.store.get(job.id) : undefined;
    if (cancelAnswer) cancelAnswer.cancelRequested = false;
    this.take(job, started);
    if (cancelAnswer) this.view.update(cancelAnswer);
  }

  /** The dashboard's first page: take in jobs started elsewhere (other tabs, scripts). */
  onList(frame) {
    const list = Array.isArray(frame.jobs) ? frame.jobs : [];
    // Oldest first, so each new card goes in above the older ones.
    for (const job of list.slice().reverse()) {
      if (!isJob(job)) continue;
      this.take(job, !isFinal(job.state) || parseTime(job.created_at) > this.newestAtLoad);
      this.subscribe(job.id);
    }
  }

  onError(frame, rid, purpose) {
    const message = typeof frame.message === "string" && frame.message
      ? frame.message : "Something went wrong (" + (frame.code || "error") + ").";
    const fields = frame.fields && typeof frame.fields === "object" ? frame.fields : null;
    const what = purpose ? purpose.what : null;
    if (what === "start") {
      this.transport.settle(rid);
      this.view.startAnswered(purpose.source, { message, fields });
      return;
    }
    if (what === "subscribe") {
      this.following.delete(purpose.jobId);
      if (frame.code === "rate_limited") {
        // Many jobs on a page can exceed the burst after quick reconnects: try again soon.
        this.setTimeout(() => this.subscribe(purpose.jobId), RESUBSCRIBE_DELAY_MS);
        return;
      }
    }
    const entry = what === "cancel" || what === "subscribe" ? this.store.get(purpose.jobId) : undefined;
    if (entry) {
      if (what === "cancel") entry.cancelRequested = false;
      entry.alert = message;
      this.view.update(entry);
      return;
    }
    this.view.notice(message, fields);
  }
}
