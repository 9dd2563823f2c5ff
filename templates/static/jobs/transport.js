/*
 * The page's one WebSocket: JSON frames in and out, request ids, reconnects with jittered
 * exponential backoff, and a queue of frames that must reach the server whatever the
 * connection does (job.start: resent on every open until settled). It knows nothing of jobs.
 * The socket, timers and the network state are injected, so node --test can drive it.
 */

export const BACKOFF_INITIAL_MS = 500;
export const BACKOFF_MAX_MS = 10000;
const SOCKET_OPEN = 1;

/**
 * The wait before reconnect attempt `attempt` (1, 2, ...): the ceiling doubles from 0.5 s up to
 * 10 s, and the wait is between half of it and all of it (jitter, so pages that lost the
 * server together do not come back together).
 * @param {number} attempt 1 for the first reconnect
 * @param {() => number} [random] a number in [0, 1), Math.random by default
 * @returns {number} milliseconds, an integer
 */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export class Transport {
  /**
   * @param {object} options
   * @param {string} options.url the socket's URL (ws: or wss:)
   * @param {Function} options.WebSocket the WebSocket constructor
   * @param {(fn: Function, ms: number) => any} options.setTimeout
   * @param {(handle: any) => void} options.clearTimeout
   * @param {() => boolean} options.isOnline false when the browser knows it is offline
   * @param {(state: "connected"|"reconnecting"|"offline", attempt: number) => void} options.onStatus
   * @param {() => void} options.onOpen called on every open, before the queue is sent again
   * @param {(frame: object) => void} options.onFrame every frame that is a JSON object
   * @param {(code: number) => void} options.onClose called when an open or opening socket closes
   * @param {() => number} [options.random]
   */
  constructor(options) {
    this.options = options;
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.counter = 0;
    /** request_id → frame: sent on every open until settle(request_id). */
    this.queued = new Map();
  }

  /** Open the socket now (a failure to even construct it schedules a reconnect). */
  connect() {
    const o = this.options;
    o.clearTimeout(this.timer);
    this.timer = null;
    let ws;
    try {
      ws = new o.WebSocket(o.url);
    } catch (err) {
      this.scheduleReconnect();
      return;
    }
    this.socket = ws;
    ws.addEventListener("open", () => {
      if (this.socket !== ws) return;
      this.attempt = 0;
      o.onStatus("connected", this.attempt);
      o.onOpen();
      for (const [rid, frame] of this.queued) this.write(rid, frame);
    });
    ws.addEventListener("message", (event) => {
      if (this.socket !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (frame && typeof frame === "object") o.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.socket !== ws) return;
      this.socket = null;
      o.onClose(event.code);
      this.scheduleReconnect();
    });
  }

  /** Wait (backoffDelay), then connect; offline, wait for online() instead. */
  scheduleReconnect() {
    const o = this.options;
    o.clearTimeout(this.timer);
    this.timer = null;
    if (!o.isOnline()) {
      o.onStatus("offline", this.attempt);
      return;
    }
    this.attempt += 1;
    const delay = backoffDelay(this.attempt, o.random);
    o.onStatus("reconnecting", this.attempt);
    this.timer = o.setTimeout(() => this.connect(), delay);
  }

  /** The network is back: reconnect at once unless a socket is open or opening. */
  online() {
    if (this.socket !== null) return;
    this.attempt = Math.max(this.attempt, 1);
    this.options.onStatus("reconnecting", this.attempt);
    this.connect();
  }

  /** The network is gone: close the socket (its close handler waits for online()). */
  offline() {
    if (this.socket !== null) {
      this.socket.close();
    } else {
      this.options.clearTimeout(this.timer);
      this.timer = null;
      this.options.onStatus("offline", this.attempt);
    }
  }

  /** Close the socket as a network failure would (tests, debugging); it reconnects. */
  drop() {
    if (this.socket !== null) this.socket.close();
  }

  /** @returns {boolean} the socket is open */
  isOpen() {
    return this.socket !== null && this.socket.readyState === SOCKET_OPEN;
  }

  /** @returns {string} a request id unused on this page ("r1", "r2", ...) */
  nextRequestId() {
    this.counter += 1;
    return "r" + this.counter;
  }

  /**
   * Send a frame with a fresh request_id, now or never.
   * @param {object} frame
   * @returns {string|null} its request_id, or null when the socket is not open
   */
  send(frame) {
    if (!this.isOpen()) return null;
    const rid = this.nextRequestId();
    this.write(rid, frame);
    return rid;
  }

  /**
   * Send a frame now if open, and again on every open until settle() (same request_id).
   * @param {object} frame
   * @returns {{rid: string, sent: boolean}} sent: it went out now
   */
  queue(frame) {
    const rid = this.nextRequestId();
    this.queued.set(rid, frame);
    const sent = this.isOpen();
    if (sent) this.write(rid, frame);
    return { rid, sent };
  }

  /** The answer to a queued frame came: stop sending it. */
  settle(rid) {
    this.queued.delete(rid);
  }

  write(rid, frame) {
    this.socket.send(JSON.stringify(Object.assign({}, frame, { request_id: rid })));
  }
}
