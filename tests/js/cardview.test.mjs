import { test } from "node:test";
import assert from "node:assert/strict";
import { createFormat } from "../../templates/static/jobs/format.js";
import {
  jobName, errorText, progressView, timesView, retryText, announcements, cancelView, detailValues,
} from "../../templates/static/jobs/cardview.js";
import { profileSummary } from "../../templates/static/jobs/result.js";
import { loadFrames, jobsOf } from "./frames.mjs";

const fmt = createFormat("en");
const frames = loadFrames();
const sim = jobsOf(frames, "01");
const [failing, failed] = jobsOf(frames, "02");
const [csv] = jobsOf(frames, "03");
const [retrying, cancelling, cancelled] = jobsOf(frames, "04");

test("a card's name: the kind's title and the short id", () => {
  assert.equal(jobName(sim[0]), "Simulated job · 1c235a6c");
  assert.equal(errorText(failed.error), "simulated failure at 48%");
  assert.equal(errorText({ message: "boom" }), "boom");
  assert.equal(errorText({ code: 1 }), '{"code":1}');
});

test("progress: a pending job with no total shows a moving stripe and 'working…'", () => {
  const view = progressView(sim[0], null, fmt);
  assert.equal(view.barValue, null);
  assert.equal(view.percentText, "working…");
  assert.equal(view.counts, "0 (total unknown)");
});

test("progress: bar, percent, counts and message of a running job", () => {
  const view = progressView(sim[2], null, fmt);
  assert.deepEqual(view, { percent: 40, barValue: "40", percentText: "40%", counts: "40 / 100",
    countsTitle: "", message: "step 4 of 10" });
});

test("progress: the bar never goes backwards (a late, lower percent keeps the floor)", () => {
  const view = progressView(sim[2], 70, fmt);
  assert.equal(view.percent, 70);
  assert.equal(view.barValue, "70");
  assert.equal(view.percentText, "70%");
});

test("progress: succeeded is 100%; failed keeps its percent and drops the message", () => {
  assert.equal(progressView(sim[4], 70, fmt).barValue, "100");
  const view = progressView(failed, null, fmt);
  assert.equal(view.percentText, "48%");
  assert.equal(view.message, "");
});

test("progress: CSV profiles count bytes, with the exact figures in the title", () => {
  const view = progressView(csv, null, fmt);
  assert.equal(view.counts, "68 bytes of 68 bytes");
  assert.equal(view.countsTitle, "68 of 68 bytes");
  const start = { ...csv, state: "pending", progress: { ...csv.progress, current: 0, total: 210365, percent: 0 } };
  assert.equal(progressView(start, null, fmt).counts, "0 bytes of 210 KB");
  assert.equal(progressView(start, null, fmt).countsTitle, "0 of 210,365 bytes");
});

test("progress: a final job whose total stayed unknown looks final", () => {
  const view = progressView(cancelled, null, fmt);
  assert.equal(view.barValue, "0"); // a still, empty bar
  assert.equal(view.percentText, "");
  assert.equal(view.counts, ""); // nothing was done, and no "total unknown"
});

test("retry: the notice counts down, replaces the message, and ends with the job", () => {
  assert.equal(retryText(retrying.retrying, 0, fmt), "HTTP 503: temporarily unavailable — retry 2 of 5 in 0.5 s");
  assert.equal(retryText(retrying.retrying, 600, fmt), "HTTP 503: temporarily unavailable — retry 2 of 5 now");
  assert.equal(progressView(retrying, null, fmt).message, "");
  const times = timesView(retrying, { serverNowMs: Date.parse(retrying.started_at) + 7000, sinceMs: 200 }, fmt);
  assert.equal(times.retry, "HTTP 503: temporarily unavailable — retry 2 of 5 in 0.3 s");
  assert.equal(times.elapsed, "0:07");
  const gone = { ...retrying, state: "cancelled", finished_at: retrying.started_at };
  assert.equal(timesView(gone, { serverNowMs: 0, sinceMs: 0 }, fmt).retry, "");
});

test("times: elapsed, rate and ETA from the server's figures", () => {
  const running = sim[3]; // rate 50 %/s, eta 0.6 s
  const view = timesView(running, { serverNowMs: Date.parse(running.started_at) + 1500, sinceMs: 0 }, fmt);
  assert.deepEqual(view, { elapsed: "0:01", rateShown: true, rate: "50 %/s", etaShown: true, eta: "<1 s", retry: "" });
  const done = timesView(sim[4], { serverNowMs: 0, sinceMs: 0 }, fmt);
  assert.equal(done.elapsed, "0:02"); // started to finished
  assert.equal(done.etaShown, false);
  assert.equal(done.eta, null);
  assert.equal(timesView(sim[0], { serverNowMs: 0, sinceMs: 0 }, fmt).elapsed, "not started");
});

test("announcements: state changes and new retries, never progress ticks", () => {
  assert.deepEqual(announcements(sim[2], sim[3], fmt), []);
  assert.deepEqual(announcements(sim[3], sim[4], fmt), ["Simulated job · 1c235a6c succeeded."]);
  assert.deepEqual(announcements(failing, failed, fmt),
    ["Simulated job · 1c235a6c failed: simulated failure at 48%"]);
  assert.deepEqual(announcements({ ...retrying, state: "pending", retrying: null }, retrying, fmt), [
    "Remote job · 1c235a6c is running.",
    "Remote job · 1c235a6c: HTTP 503: temporarily unavailable — retry 2 of 5 in 0.5 s",
  ]);
  assert.deepEqual(announcements(cancelling, cancelled, fmt), ["Remote job · 1c235a6c was cancelled."]);
});

test("cancel button: shown until the job is final, disabled while cancelling", () => {
  assert.deepEqual(cancelView(sim[2], false),
    { shown: true, disabled: false, text: "Cancel", label: "Cancel Simulated job · 1c235a6c" });
  assert.equal(cancelView(sim[2], true).text, "Cancelling…");
  assert.equal(cancelView(cancelling, false).disabled, true);
  assert.equal(cancelView(cancelled, false).shown, false);
});

test("details and the profile's caption", () => {
  const values = detailValues(cancelled, (ms) => new Date(ms).toISOString());
  assert.equal(values.kind, "remote");
  assert.equal(values.created_at, "2026-12-01T10:04:00.123Z");
  assert.equal(values.params, '{"service":"demo","payload":{"duration_s":3,"unavailable_s":1,"fail":false}}');
  assert.equal(detailValues(sim[0], String).started_at, "—");
  assert.equal(profileSummary(csv.result, fmt), "2 rows · 1 bad row · delimiter “,” · encoding utf-8 · 68 bytes");
});
