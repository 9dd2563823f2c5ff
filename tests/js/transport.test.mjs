import { test } from "node:test";
import assert from "node:assert/strict";
import { Transport, backoffDelay, BACKOFF_INITIAL_MS, BACKOFF_MAX_MS } from "../../templates/static/jobs/transport.js";

test("backoff: the ceiling doubles from 0.5 s to 10 s; the delay is half of it to all of it", () => {
  const ceilings = [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000];
  ceilings.forEach((ceiling, i) => {
    assert.equal(backoffDelay(i + 1, () => 0), ceiling / 2, "attempt " + (i + 1));
    assert.equal(backoffDelay(i + 1, () => 0.999999), ceiling, "attempt " + (i + 1));
  });
  assert.equal(BACKOFF_INITIAL_MS, 500);
  assert.equal(BACKOFF_MAX_MS, 10000);
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3);
    assert.ok(d >= 1000 && d <= 2000 && Number.isInteger(d), String(d));
  }
});

/** A WebSocket stand-in: records what is sent; the test opens, answers and closes it. */
class FakeSocket {
  static made = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.handlers = {};
    FakeSocket.made.push(this);
  }
  addEventListener(type, fn) { this.handlers[type] = fn; }
  send(text) { this.sent.push(JSON.parse(text)); }
  open() { this.readyState = 1; this.handlers.open({}); }
  message(data) { this.handlers.message({ data }); }
  close(code = 1006) { this.readyState = 3; this.handlers.close({ code }); }
}

function harness({ online = true } = {}) {
  FakeSocket.made = [];
  const log = { status: [], frames: [], opens: 0, closes: [], timers: [] };
  const t = new Transport({
    url: "ws://example/ws/jobs/",
    WebSocket: FakeSocket,
    setTimeout: (fn, ms) => { log.timers.push({ fn, ms }); return log.timers.length; },
    clearTimeout: () => {},
    isOnline: () => online,
    random: () => 0,
    onStatus: (state, attempt) => log.status.push(state + ":" + attempt),
    onOpen: () => { log.opens += 1; },
    onFrame: (frame) => log.frames.push(frame),
    onClose: (code) => log.closes.push(code),
  });
  return { t, log, socket: () => FakeSocket.made[FakeSocket.made.length - 1] };
}

test("request ids: every frame gets a fresh one; nothing is sent while not open", () => {
  const { t, socket } = harness();
  t.connect();
  assert.equal(t.send({ type: "job.list" }), null);
  socket().open();
  assert.equal(t.send({ type: "job.list", limit: 20 }), "r1");
  assert.equal(t.send({ type: "job.subscribe", job_id: "x" }), "r2");
  assert.deepEqual(socket().sent, [
    { type: "job.list", limit: 20, request_id: "r1" },
    { type: "job.subscribe", job_id: "x", request_id: "r2" },
  ]);
});

test("queued frames wait for the connection, go out on every open until settled", () => {
  const { t, log, socket } = harness();
  t.connect();
  const { rid, sent } = t.queue({ type: "job.start", kind: "simulated", params: {} });
  assert.equal(sent, false);
  socket().open();
  assert.deepEqual(socket().sent, [{ type: "job.start", kind: "simulated", params: {}, request_id: rid }]);
  socket().close();
  log.timers.pop().fn(); // the reconnect
  socket().open();
  assert.equal(socket().sent.length, 1, "sent again, same request id");
  assert.equal(socket().sent[0].request_id, rid);
  t.settle(rid);
  socket().close();
  log.timers.pop().fn();
  socket().open();
  assert.deepEqual(socket().sent, []);
});

test("reconnects with backoff after each close; an open resets the attempts", () => {
  const { t, log, socket } = harness();
  t.connect();
  socket().close();
  socket().close(); // a closed socket's second close event is ignored: it is no longer the socket
  assert.deepEqual(log.status, ["reconnecting:1"]);
  assert.equal(log.timers[0].ms, 250);
  log.timers[0].fn();
  socket().close();
  assert.equal(log.timers[1].ms, 500);
  log.timers[1].fn();
  socket().open();
  assert.deepEqual(log.status, ["reconnecting:1", "reconnecting:2", "connected:0"]);
  assert.equal(log.opens, 1);
  socket().close(4429);
  assert.deepEqual(log.closes, [1006, 1006, 4429]);
  assert.equal(log.timers[2].ms, 250);
});

test("frames: JSON objects reach onFrame; anything else is ignored", () => {
  const { t, log, socket } = harness();
  t.connect();
  socket().open();
  socket().message("not json");
  socket().message("42");
  socket().message(JSON.stringify({ type: "job.unsubscribed", job_id: "x" }));
  assert.deepEqual(log.frames, [{ type: "job.unsubscribed", job_id: "x" }]);
});

test("offline: no reconnect timer until online(), which reconnects at once", () => {
  let online = true;
  const h = harness();
  h.t.options.isOnline = () => online;
  h.t.connect();
  h.socket().open();
  online = false;
  h.t.offline(); // closes the socket
  assert.deepEqual(h.log.status.slice(-1), ["offline:0"]);
  assert.equal(h.log.timers.length, 0);
  online = true;
  h.t.online();
  assert.deepEqual(h.log.status.slice(-1), ["reconnecting:1"]);
  assert.equal(FakeSocket.made.length, 2);
  h.t.online(); // a socket is opening: nothing more
  assert.equal(FakeSocket.made.length, 2);
});
