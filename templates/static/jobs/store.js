/*
 * The jobs a page shows, as the protocol's job objects (DESIGN.md "WebSocket protocol").
 * Pure: no DOM, no socket; the clock is injected.
 * Each job keeps the highest `seq` seen and drops any frame with a lower one (or the same one),
 * so snapshots and live frames may arrive in any order without the display going backwards;
 * a final state never changes back to a state that is not final.
 */

import { parseTime } from "./format.js";

export const FINAL_STATES = new Set(["succeeded", "failed", "cancelled"]);
export const CANCELLABLE_STATES = new Set(["pending", "running"]);

/**
 * @param {string} state
 * @returns {boolean} the state is final (succeeded, failed, cancelled): it never changes again
 */
export function isFinal(state) {
  return FINAL_STATES.has(state);
}

/**
 * @param {unknown} job
 * @returns {boolean} it looks like a job object (an object with a string id)
 */
export function isJob(job) {
  return Boolean(job) && typeof job === "object" && typeof job.id === "string";
}

/**
 * One job of the page. The page may add fields of its own (its card).
 * @typedef {object} Entry
 * @property {object} job the latest job object taken
 * @property {number} seq its seq (-Infinity when it had none)
 * @property {number} createdMs created_at in ms since the epoch (0 if none)
 * @property {number} receivedMs when the latest job object was taken (the injected clock)
 * @property {boolean} stale not connected since: what it shows may be old
 * @property {boolean} cancelRequested a job.cancel was sent and not answered
 * @property {string|null} alert a message about this job for the person
 */

export class JobStore {
  /** @param {{now?: () => number}} [options] now: the clock, Date.now by default */
  constructor(options = {}) {
    this.now = options.now || Date.now;
    /** @type {Map<string, Entry>} */
    this.entries = new Map();
  }

  /** @returns {Entry|undefined} */
  get(id) {
    return this.entries.get(id);
  }

  has(id) {
    return this.entries.has(id);
  }

  get size() {
    return this.entries.size;
  }

  /** @returns {IterableIterator<Entry>} in the order they were added */
  values() {
    return this.entries.values();
  }

  /**
   * Add a job the store does not know yet.
   * @param {object} job a job object
   * @returns {Entry} the new entry
   */
  add(job) {
    const seq = Number(job.seq);
    const entry = {
      job,
      seq: Number.isFinite(seq) ? seq : -Infinity,
      createdMs: parseTime(job.created_at),
      receivedMs: this.now(),
      stale: false,
      cancelRequested: false,
      alert: null,
    };
    this.entries.set(job.id, entry);
    return entry;
  }

  /**
   * Take a job object from a frame.
   * - unknown job: added when `allowNew` ("added"), else "ignored";
   * - known job: a frame of the open socket, so the entry is no longer stale (`caughtUp` true
   *   if it was); then "updated" when its seq is higher and it does not take a final state
   *   back, else "dropped".
   * A state change clears the entry's alert.
   * @param {object} job a job object
   * @param {{allowNew?: boolean}} [options]
   * @returns {{outcome: "added"|"updated"|"dropped"|"ignored"|"invalid", entry?: Entry,
   *   before?: object, caughtUp: boolean}} before: the job object it replaced ("updated")
   */
  accept(job, options = {}) {
    if (!isJob(job)) return { outcome: "invalid", caughtUp: false };
    const existing = this.entries.get(job.id);
    if (!existing) {
      if (!options.allowNew) return { outcome: "ignored", caughtUp: false };
      return { outcome: "added", entry: this.add(job), caughtUp: false };
    }
    const caughtUp = existing.stale;
    existing.stale = false;
    const seq = Number(job.seq);
    if (!(seq > existing.seq) || (isFinal(existing.job.state) && !isFinal(job.state))) {
      return { outcome: "dropped", entry: existing, caughtUp };
    }
    const before = existing.job;
    existing.job = job;
    existing.seq = seq;
    existing.receivedMs = this.now();
    if (before.state !== job.state) existing.alert = null;
    return { outcome: "updated", entry: existing, before, caughtUp };
  }

  /**
   * The connection is gone: every job that is not final may now show old state.
   * @returns {Entry[]} the entries that became stale
   */
  markStale() {
    const marked = [];
    for (const entry of this.entries.values()) {
      if (!isFinal(entry.job.state) && !entry.stale) {
        entry.stale = true;
        marked.push(entry);
      }
    }
    return marked;
  }

  /** @returns {string[]} ids of the jobs that are not final: the ones to follow */
  activeIds() {
    return Array.from(this.entries.values()).filter((e) => !isFinal(e.job.state)).map((e) => e.job.id);
  }
}

