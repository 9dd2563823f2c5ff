import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createFormat, formatDuration, formatClock, describeDelimiter, humanKey, parseTime, isNumber,
} from "../../templates/static/jobs/format.js";

const fmt = createFormat("en");

test("counts have thousands separators and at most 4 decimals; nothing is a dash", () => {
  assert.equal(fmt.number(336776), "336,776");
  assert.equal(fmt.number(3000000), "3,000,000");
  assert.equal(fmt.number(1939.123456), "1,939.1235");
  assert.equal(fmt.number(0), "0");
  for (const none of [null, undefined, ""]) assert.equal(fmt.number(none), "—");
  assert.equal(fmt.number("n/a"), "n/a");
  assert.equal(fmt.plural(1, "row"), "1 row");
  assert.equal(fmt.plural(3376, "row"), "3,376 rows");
});

test("sizes in decimal units, as tasks_app.kinds.csv_profile.human_bytes writes them", () => {
  assert.equal(fmt.bytes(0), "0 bytes");
  assert.equal(fmt.bytes(999), "999 bytes");
  assert.equal(fmt.bytes(1000), "1.0 KB");
  assert.equal(fmt.bytes(4096), "4.1 KB");
  assert.equal(fmt.bytes(210365), "210 KB");
  assert.equal(fmt.bytes(31053850), "31.1 MB");
  assert.equal(fmt.bytes(2.5e15), "2,500 TB");
  assert.equal(fmt.bytes(null), "?");
  assert.equal(fmt.exactBytes(210365), "210,365 bytes");
  assert.equal(fmt.exactBytes(undefined), "");
});

test("rates: bytes for CSV profiles, percent points for simulated jobs, units otherwise", () => {
  assert.equal(fmt.rate("csv_profile", 2_500_000), "2.5 MB/s");
  assert.equal(fmt.rate("simulated", 15.24), "15.2 %/s");
  assert.equal(fmt.rate("primes", 310572.4), "310,572 units/s");
  assert.equal(fmt.rate("primes", 0.374), "0.37 units/s");
});

test("data values keep their digits ungrouped", () => {
  assert.equal(fmt.dataValue(1948), "1948");
  assert.equal(fmt.dataValue(40.63980103), "40.6398");
  assert.equal(fmt.dataValue(null), "—");
  assert.equal(fmt.dataValue("JFK"), "JFK");
});

test("durations and clocks", () => {
  assert.equal(formatDuration(0.4), "<1 s");
  assert.equal(formatDuration(42), "42 s");
  assert.equal(formatDuration(185), "3 min 05 s");
  assert.equal(formatDuration(3720), "1 h 02 min");
  assert.equal(formatDuration(-1), "—");
  assert.equal(formatDuration(NaN), "—");
  assert.equal(formatClock(7.9), "0:07");
  assert.equal(formatClock(750), "12:30");
  assert.equal(formatClock(3723), "1:02:03");
  assert.equal(formatClock(-5), "0:00");
});

test("small words: delimiters, result keys, times, numbers", () => {
  assert.equal(describeDelimiter("\t"), "tab");
  assert.equal(describeDelimiter(" "), "space");
  assert.equal(describeDelimiter(";"), "“;”");
  assert.equal(describeDelimiter(""), "unknown");
  assert.equal(humanKey("simulated_ms"), "Simulated ms");
  assert.equal(parseTime("2026-12-01T10:01:00.123456+00:00"), Date.UTC(2026, 11, 1, 10, 1, 0, 123));
  assert.equal(parseTime(null), 0);
  assert.equal(parseTime("junk"), 0);
  assert.ok(isNumber(0) && !isNumber(NaN) && !isNumber("1") && !isNumber(Infinity));
});
