import { test } from "node:test";
import assert from "node:assert/strict";
import { Follower, RESUBSCRIBE_DELAY_MS } from "../../templates/static/jobs/follower.js";
import { JobStore } from "../../templates/static/jobs/store.js";
import { loadFrames, jobsOf } from "./frames.mjs";

/** A transport stand-in: open or not, records what is sent and queued. */
function fakeTransport() {
  let n = 0;
  return {
    open: true, sent: [], queued: new Map(),
    send(frame) {
      if (!this.open) return null;
      n += 1;
      this.sent.push({ ...frame, request_id: "r" + n });
      return "r" + n;
    },
    queue(frame) { n += 1; this.queued.set("r" + n, frame); return { rid: "r" + n, sent: this.open }; },
    settle(rid) { this.queued.delete(rid); },
  };
}

function harness({ listLimit = 20 } = {}) {
  const transport = fakeTransport();
  const seen = { added: [], updates: [], changes: [], starts: [], notices: [], timers: [] };
  const follower = new Follower({
    transport,
    store: new JobStore(),
    listLimit,
    setTimeout: (fn, ms) => seen.timers.push({ fn, ms }),
    newKey: () => "key-1",
    view: {
      added: (e) => seen.added.push(e.job.id),
      update: (e) => seen.updates.push(e.job.id),
      changed: (e, before) => seen.changes.push(before.state + "→" + e.job.state),
      startAnswered: (source, error) => seen.starts.push([source, error && error.message]),
      notice: (message) => seen.notices.push(message),
    },
  });
  return { follower, transport, seen };
}

const frames = loadFrames();
const running = jobsOf(frames, "02")[0];
const done = jobsOf(frames, "03")[0];

test("on open: list recent jobs (dashboard page 1), subscribe to every job that is not final", () => {
  const { follower, transport } = harness();
  follower.adopt([running, done]);
  follower.opened();
  assert.deepEqual(transport.sent.map((f) => [f.type, f.job_id || f.limit]),
    [["job.list", 20], ["job.subscribe", running.id]]);
  follower.opened(); // a reconnect: again
  assert.equal(transport.sent.length, 4);
});

test("a job page (no list) subscribes only; a job is subscribed once per socket", () => {
  const { follower, transport } = harness({ listLimit: null });
  follower.adopt([running]);
  follower.opened();
  follower.subscribe(running.id);
  assert.deepEqual(transport.sent.map((f) => f.type), ["job.subscribe"]);
});

test("after a drop: cards go stale, the snapshot on reconnect catches them up", () => {
  const { follower, transport, seen } = harness({ listLimit: null });
  follower.adopt([running, done]);
  follower.opened();
  follower.closed(1006);
  assert.equal(follower.store.get(running.id).stale, true);
  assert.equal(follower.store.get(done.id).stale, false);
  follower.opened();
  const rid = transport.sent[transport.sent.length - 1].request_id;
  follower.receive({ type: "job.snapshot", job: running, request_id: rid });
  assert.equal(follower.store.get(running.id).stale, false);
  assert.deepEqual(seen.updates, [running.id, running.id]); // marked, then caught up
});

test("live frames and a late snapshot: the display never goes backwards", () => {
  const { follower, seen } = harness({ listLimit: null });
  const [snapshot, fail] = jobsOf(frames, "02");
  follower.adopt([snapshot]);
  follower.receive({ type: "job.failed", job: fail });
  follower.receive({ type: "job.snapshot", job: snapshot, request_id: "old" });
  assert.equal(follower.store.get(fail.id).job.state, "failed");
  assert.deepEqual(seen.changes, ["running→failed"]);
});

test("job.start: queued with an idempotency key; accepted adds the card and clears the form", () => {
  const { follower, transport, seen } = harness();
  transport.open = false;
  assert.equal(follower.start("simulated", { step: 10 }, "simulated"), false);
  const [[rid, frame]] = transport.queued;
  assert.deepEqual(frame, { type: "job.start", kind: "simulated", params: { step: 10 }, idempotency_key: "key-1" });
  transport.open = true;
  follower.opened(); // a start's request survives a reconnect
  const accepted = jobsOf(frames, "01")[0];
  follower.receive({ type: "job.accepted", job: accepted, request_id: rid });
  assert.equal(transport.queued.size, 0);
  assert.deepEqual(seen.added, [accepted.id]);
  assert.deepEqual(seen.starts, [["simulated", null]]);
  assert.ok(follower.following.has(accepted.id));
});

test("job.start refused: the form shows the error, nothing is added", () => {
  const { follower, transport, seen } = harness();
  follower.start("simulated", { step: 0 }, "simulated");
  const [rid] = transport.queued.keys();
  follower.receive({ type: "error", code: "invalid_params", message: "invalid parameters",
    fields: { step: ["must be at least 1"] }, request_id: rid });
  assert.deepEqual(seen.starts, [["simulated", "invalid parameters"]]);
  assert.equal(transport.queued.size, 0);
  assert.equal(follower.store.size, 0);
});

test("job.list: jobs not final or newer than the page are added; older final ones are not", () => {
  const { follower, seen } = harness();
  const list = frames.find((f) => f.type === "job.list");
  follower.adopt([jobsOf(frames, "02")[0]]); // created 10:02: the newest on the page
  follower.receive(list);
  // 01 (10:01) is final and older: not added; 03 and 04 are newer.
  assert.deepEqual(seen.added.slice(1), [list.jobs[1].id, list.jobs[0].id]);
});

test("cancel: sent while connected; refused when final or disconnected, with an alert", () => {
  const { follower, transport, seen } = harness({ listLimit: null });
  follower.adopt([running, done]);
  const entry = follower.store.get(running.id);
  follower.cancel(entry);
  assert.equal(entry.cancelRequested, true);
  const rid = transport.sent[0].request_id;
  follower.receive({ type: "error", code: "not_cancellable", message: "too late", request_id: rid });
  assert.equal(entry.cancelRequested, false);
  assert.equal(entry.alert, "too late");
  follower.cancel(follower.store.get(done.id));
  assert.equal(follower.store.get(done.id).alert, "Nothing to cancel: the job already succeeded.");
  transport.open = false;
  follower.cancel(entry);
  assert.equal(entry.alert, "Not connected: try again when the connection is back.");
  assert.ok(seen.updates.length >= 3);
});

test("a rate-limited subscribe is tried again later; other errors go to the page", () => {
  const { follower, transport, seen } = harness({ listLimit: null });
  follower.adopt([running]);
  follower.opened();
  follower.receive({ type: "error", code: "rate_limited", message: "slow down", request_id: transport.sent[0].request_id });
  assert.equal(seen.timers[0].ms, RESUBSCRIBE_DELAY_MS);
  seen.timers[0].fn();
  assert.equal(transport.sent.length, 2);
  follower.receive({ type: "error", code: "invalid_json", message: "not JSON" });
  follower.closed(4429);
  assert.deepEqual(seen.notices, ["not JSON", "The server closed the connection (too many messages)."]);
});
