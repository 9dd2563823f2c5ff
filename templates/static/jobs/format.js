/*
 * Numbers, sizes, rates and durations as the cards show them. Pure: no DOM, no clock.
 * Counts follow the server's messages ("336,776"); sizes follow
 * tasks_app.kinds.csv_profile.human_bytes (decimal units).
 */

/** Decimal byte units, as tasks_app.kinds.csv_profile.human_bytes writes sizes. */
const BYTE_UNITS = ["KB", "MB", "GB", "TB"];
export const BYTES_PER_UNIT = 1000;

/**
 * True for a finite number (not NaN, not ±Infinity, not a numeric string).
 * @param {unknown} value
 * @returns {boolean}
 */
export function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

/**
 * The formatting functions for one language.
 * @param {string} locale a BCP 47 tag, e.g. the page's `<html lang>` ("en").
 */
export function createFormat(locale) {
  const INTEGER = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
  const DECIMAL = new Intl.NumberFormat(locale, { maximumFractionDigits: 4 });
  const ONE_DECIMAL = new Intl.NumberFormat(locale, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const TWO_DECIMALS = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 });
  /** Data values of a profile (a year, an id) keep their digits ungrouped. */
  const DATA_VALUE = new Intl.NumberFormat(locale, { maximumFractionDigits: 4, useGrouping: false });

  /** Counts with thousands separators ("336,776"); at most 4 decimals; "—" for nothing. */
  function number(value) {
    if (value === null || value === undefined || value === "") return "—";
    if (isNumber(value)) return (Number.isInteger(value) ? INTEGER : DECIMAL).format(value);
    return String(value);
  }

  /** An integer with separators and nothing else ("210,365"). */
  function integer(value) {
    return INTEGER.format(value);
  }

  /** A value found in the data (a profile's min, max, mean): digits as they are, no grouping. */
  function dataValue(value) {
    if (isNumber(value)) return DATA_VALUE.format(value);
    return value === null || value === undefined || value === "" ? "—" : String(value);
  }

  /** Three significant figures at most, for rates ("310,572", "15.2", "0.37"). */
  function rateNumber(value) {
    if (value >= 100) return INTEGER.format(Math.round(value));
    if (value >= 10) return DECIMAL.format(Math.round(value * 10) / 10);
    return TWO_DECIMALS.format(value);
  }

  /** "512 bytes", "210 KB", "31.1 MB": decimal units, one decimal below 100 of a unit; "?" for no number. */
  function bytes(n) {
    if (!isNumber(n)) return "?";
    if (n < BYTES_PER_UNIT) return INTEGER.format(n) + " bytes";
    let value = n;
    let unit = -1;
    while (value >= BYTES_PER_UNIT && unit < BYTE_UNITS.length - 1) {
      value /= BYTES_PER_UNIT;
      unit += 1;
    }
    return (value < 100 ? ONE_DECIMAL : INTEGER).format(value) + " " + BYTE_UNITS[unit];
  }

  /** The exact count, for a title attribute beside a rounded size: "31,053,850 bytes" ("" for no number). */
  function exactBytes(n) {
    return isNumber(n) ? INTEGER.format(n) + " bytes" : "";
  }

  /** Units per second: bytes for CSV profiles, percent points for simulated jobs, units otherwise. */
  function rate(kind, value) {
    if (kind === "csv_profile") return bytes(value) + "/s";
    if (kind === "simulated") return rateNumber(value) + " %/s";
    return rateNumber(value) + " units/s";
  }

  /** "3 rows", "1 row". */
  function plural(n, word) {
    return number(n) + " " + word + (n === 1 ? "" : "s");
  }

  return { number, integer, dataValue, rateNumber, bytes, exactBytes, rate, plural };
}

/**
 * A span of seconds for people: "<1 s", "42 s", "3 min 05 s", "1 h 02 min"; "—" for none.
 * @param {number} seconds
 * @returns {string}
 */
export function formatDuration(seconds) {
  if (!isNumber(seconds) || seconds < 0) return "—";
  if (seconds < 1) return "<1 s";
  const s = Math.round(seconds);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
  return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
}

/**
 * Elapsed time as a clock: "0:07", "12:30", "1:02:03" (negative counts as 0).
 * @param {number} seconds
 * @returns {string}
 */
export function formatClock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const secs = String(s % 60).padStart(2, "0");
  return hours > 0 ? hours + ":" + String(minutes).padStart(2, "0") + ":" + secs : minutes + ":" + secs;
}

/**
 * A CSV delimiter in words: "tab", "space", "“;”", "unknown".
 * @param {string|null|undefined} d
 * @returns {string}
 */
export function describeDelimiter(d) {
  if (d === undefined || d === null || d === "") return "unknown";
  if (d === "\t") return "tab";
  if (d === " ") return "space";
  return "“" + d + "”";
}

/**
 * A result key for people: "bad_rows" → "Bad rows".
 * @param {string} key
 * @returns {string}
 */
export function humanKey(key) {
  const text = String(key).replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * Milliseconds since the epoch of an ISO-8601 time; 0 for none or an unreadable one.
 * @param {string|null|undefined} value
 * @returns {number}
 */
export function parseTime(value) {
  const ms = value ? Date.parse(value) : NaN;
  return Number.isFinite(ms) ? ms : 0;
}
