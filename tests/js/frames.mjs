// The sample frames of fixtures/job_frames.json (server-shaped: tasks_app.selectors.job_snapshot).
import { readFileSync } from "node:fs";

/** @returns {object[]} a fresh copy of every frame, in the file's order */
export function loadFrames() {
  return JSON.parse(readFileSync(new URL("./fixtures/job_frames.json", import.meta.url), "utf8"));
}

/** @returns {object[]} the job objects of one job's frames, by id suffix ("…01") */
export function jobsOf(frames, suffix) {
  return frames.filter((f) => f.job && f.job.id.endsWith(suffix)).map((f) => f.job);
}
