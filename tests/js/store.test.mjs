import { test } from "node:test";
import assert from "node:assert/strict";
import { JobStore, isFinal } from "../../templates/static/jobs/store.js";
import { loadFrames, jobsOf } from "./frames.mjs";

const JOB_FIELDS = ["id", "kind", "title", "summary", "state", "params", "progress", "retrying",
  "result", "error", "seq", "created_at", "started_at", "finished_at"];

test("every job object of the fixture has the fields of selectors.job_snapshot", () => {
  for (const frame of loadFrames()) {
    for (const job of frame.job ? [frame.job] : frame.jobs) {
      assert.deepEqual(Object.keys(job).sort(), [...JOB_FIELDS].sort(), frame.type);
      assert.deepEqual(Object.keys(job.progress).sort(),
        ["current", "eta_seconds", "message", "percent", "rate", "total"]);
    }
  }
});

test("frames in order: each one is taken, the entry follows the highest seq", () => {
  const store = new JobStore({ now: () => 1000 });
  const [accepted, ...rest] = jobsOf(loadFrames(), "01");
  assert.equal(store.accept(accepted, { allowNew: true }).outcome, "added");
  for (const job of rest) {
    const answer = store.accept(job);
    assert.equal(answer.outcome, "updated");
    assert.equal(answer.entry.seq, job.seq);
  }
  assert.equal(store.get(accepted.id).job.state, "succeeded");
});

test("a frame with a lower or the same seq is dropped", () => {
  const store = new JobStore();
  const jobs = jobsOf(loadFrames(), "01");
  store.accept(jobs[3], { allowNew: true });
  for (const older of [jobs[0], jobs[1], jobs[2], jobs[3]]) {
    const answer = store.accept(older);
    assert.equal(answer.outcome, "dropped", "seq " + older.seq);
    assert.equal(store.get(older.id).seq, jobs[3].seq);
    assert.equal(store.get(older.id).job.progress.current, 70);
  }
});

test("a snapshot older than the live frames already seen changes nothing", () => {
  const store = new JobStore();
  const frames = loadFrames();
  const [live, failed] = jobsOf(frames, "02").slice(-2).map((j) => structuredClone(j));
  const snapshot = structuredClone(live);
  live.seq = 8;
  live.progress.current = 32;
  store.accept(live, { allowNew: true });
  assert.equal(store.accept(snapshot).outcome, "dropped"); // seq 6 < 8
  assert.equal(store.get(live.id).job.progress.current, 32);
  assert.equal(store.accept(failed).outcome, "updated"); // seq 12
  assert.equal(store.get(live.id).job.state, "failed");
});

test("a snapshot newer than the live frames is taken", () => {
  const store = new JobStore();
  const [progress, cancelling, cancelled] = jobsOf(loadFrames(), "04");
  store.accept(progress, { allowNew: true });
  assert.equal(store.accept(cancelling).outcome, "updated");
  assert.equal(store.accept(cancelled).outcome, "updated");
  assert.equal(store.get(progress.id).job.state, "cancelled");
});

test("a final state never changes back, even with a higher seq", () => {
  const store = new JobStore();
  const jobs = jobsOf(loadFrames(), "01");
  const done = jobs[jobs.length - 1];
  store.accept(done, { allowNew: true });
  const late = { ...structuredClone(jobs[2]), seq: done.seq + 1 };
  assert.equal(store.accept(late).outcome, "dropped");
  assert.equal(store.get(done.id).job.state, "succeeded");
  assert.ok(isFinal("succeeded") && isFinal("failed") && isFinal("cancelled"));
  assert.ok(!isFinal("running") && !isFinal("cancelling") && !isFinal("pending"));
});

test("unknown jobs are added only when allowed; frames without a job id are invalid", () => {
  const store = new JobStore();
  const job = jobsOf(loadFrames(), "03")[0];
  assert.equal(store.accept(job).outcome, "ignored");
  assert.equal(store.size, 0);
  assert.equal(store.accept({ seq: 1 }).outcome, "invalid");
  assert.equal(store.accept(null).outcome, "invalid");
  assert.equal(store.accept(job, { allowNew: true }).outcome, "added");
  assert.equal(store.get(job.id).createdMs, Date.parse(job.created_at));
});

test("stale: jobs that are not final are marked on a drop; any later frame catches them up", () => {
  const store = new JobStore();
  const frames = loadFrames();
  const running = jobsOf(frames, "02")[0];
  const done = jobsOf(frames, "03")[0];
  store.accept(running, { allowNew: true });
  store.accept(done, { allowNew: true });
  assert.deepEqual(store.markStale().map((e) => e.job.id), [running.id]);
  assert.deepEqual(store.markStale(), []); // already marked
  const again = store.accept(running); // the same snapshot (same seq): dropped, but caught up
  assert.equal(again.outcome, "dropped");
  assert.equal(again.caughtUp, true);
  assert.equal(store.get(running.id).stale, false);
  assert.deepEqual(store.activeIds(), [running.id]);
});

test("a state change clears the entry's alert; receivedMs follows the clock", () => {
  let now = 5;
  const store = new JobStore({ now: () => now });
  const [progress, cancelling] = jobsOf(loadFrames(), "04");
  const { entry } = store.accept(progress, { allowNew: true });
  assert.equal(entry.receivedMs, 5);
  entry.alert = "Not connected: try again when the connection is back.";
  now = 9;
  const answer = store.accept(cancelling);
  assert.equal(answer.before.state, "running");
  assert.equal(entry.alert, null);
  assert.equal(entry.receivedMs, 9);
});
