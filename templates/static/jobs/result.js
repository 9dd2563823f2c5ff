/*
 * What a succeeded card shows of its result, inside the card template's `.job-result`:
 * a CSV profile (a table per column, folded on a phone), a short summary of a flat object,
 * JSON otherwise, or "Done.". Rows and columns come from the data, so these are built with
 * the DOM API (textContent and attributes, never innerHTML); the card itself is the server's.
 */
import { isNumber, describeDelimiter, humanKey, BYTES_PER_UNIT } from "./format.js";
import { jobName } from "./cardview.js";

/**
 * Build an element; attribute values that are null/undefined/false are skipped.
 * @param {Document} doc
 * @param {string} tag
 * @param {object|null} attrs "text" sets textContent, "className" the class
 * @param {...(Node|string|null)} children
 * @returns {HTMLElement}
 */
export function h(doc, tag, attrs, ...children) {
  const node = doc.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "className") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? doc.createTextNode(child) : child);
  }
  return node;
}

function isPlain(value) {
  return value === null || ["string", "number", "boolean"].includes(typeof value);
}

function first(obj, keys) {
  for (const key of keys) {
    if (obj[key] !== undefined && obj[key] !== null) return obj[key];
  }
  return null;
}

/**
 * The caption of a profile: "3,376 rows · 0 bad rows · delimiter “,” · encoding utf-8 · 210 KB (210,365 bytes)".
 * @param {object} result a csv_profile result
 * @param {ReturnType<import("./format.js").createFormat>} fmt
 * @returns {string}
 */
export function profileSummary(result, fmt) {
  const rows = first(result, ["rows", "row_count", "rows_total"]);
  const bad = first(result, ["bad_rows", "bad_row_count", "bad_rows_count"]);
  const bytes = first(result, ["bytes", "size", "bytes_read", "size_bytes"]);
  return [
    isNumber(rows) ? fmt.plural(rows, "row") : "rows unknown",
    isNumber(bad) ? fmt.plural(bad, "bad row") : "bad rows unknown",
    "delimiter " + describeDelimiter(result.delimiter),
    "encoding " + (result.encoding ? String(result.encoding) : "unknown"),
    isNumber(bytes) ? fmt.bytes(bytes) + (bytes >= BYTES_PER_UNIT ? " (" + fmt.exactBytes(bytes) + ")" : "")
      : "size unknown",
  ].join(" · ");
}

/**
 * Fill a card's `.job-result` box with the job's result.
 * @param {HTMLElement} box the empty `.job-result` of the card
 * @param {object} job a succeeded job object
 * @param {{fmt: ReturnType<import("./format.js").createFormat>, folded: boolean}} options
 *   folded: a profile starts folded behind its summary (the phone layout)
 */
export function fillResult(box, job, options) {
  const doc = box.ownerDocument;
  const { fmt } = options;
  const result = job.result;
  if (job.kind === "csv_profile" && result && typeof result === "object" && Array.isArray(result.columns)) {
    box.append(buildProfile(doc, job, result, options));
  } else if (result && typeof result === "object" && !Array.isArray(result) && Object.values(result).every(isPlain)) {
    box.append(h(doc, "dl", { className: "job-result-summary" }, ...Object.entries(result).map(([k, v]) =>
      h(doc, "div", null, h(doc, "dt", { text: humanKey(k) }), h(doc, "dd", { text: fmt.number(v) })))));
  } else if (result !== null && result !== undefined) {
    let text;
    try {
      text = JSON.stringify(result, null, 2);
    } catch (err) {
      text = String(result);
    }
    box.append(h(doc, "pre", { className: "job-result-json", tabindex: "0", "aria-label": "Result", text }));
  } else {
    box.append(h(doc, "p", { className: "job-result-empty", text: "Done." }));
  }
}

const HEADERS = ["Column", "Type", "Non-null", "Nulls", "Distinct", "Min", "Max", "Mean"];
const NUMERIC = [false, false, true, true, true, true, true, true];

/**
 * The profile, folded behind a summary ("Profile: 7 columns, 3,376 rows") on a phone,
 * where a table of many columns is pages long; open on wider screens.
 */
function buildProfile(doc, job, result, { fmt, folded }) {
  const rows = first(result, ["rows", "row_count", "rows_total"]);
  const fold = h(doc, "details", { className: "profile", open: !folded },
    h(doc, "summary", { className: "profile-summary",
      text: "Profile: " + fmt.plural(result.columns.length, "column") +
        (isNumber(rows) ? ", " + fmt.plural(rows, "row") : "") }));

  // Explicit roles keep table semantics when the phone layout restyles rows as blocks.
  const table = h(doc, "table", { className: "profile-table", role: "table" },
    h(doc, "caption", { text: profileSummary(result, fmt) }),
    h(doc, "thead", { role: "rowgroup" }, h(doc, "tr", { role: "row" }, ...HEADERS.map((text, i) =>
      h(doc, "th", { scope: "col", role: "columnheader", className: NUMERIC[i] ? "num" : null, text })))));
  const body = h(doc, "tbody", { role: "rowgroup" });
  for (const col of result.columns) {
    const c = col && typeof col === "object" ? col : {};
    const cells = [c.name, c.type, c.non_null, c.nulls, c.distinct, c.min, c.max, c.mean];
    body.append(h(doc, "tr", { role: "row" }, ...cells.map((value, i) => {
      const text = i < 2 ? (value === null || value === undefined ? "—" : String(value))
        : i < 5 ? fmt.number(value) : fmt.dataValue(value);
      return h(doc, "td", { role: "cell", className: NUMERIC[i] ? "num" : null, "data-label": HEADERS[i], text });
    })));
  }
  table.append(body);
  fold.append(h(doc, "div", {
    className: "table-wrap", tabindex: "0", role: "region", "aria-label": "Profile of " + jobName(job),
  }, table));

  const samples = Array.isArray(result.bad_row_samples) ? result.bad_row_samples : [];
  if (samples.length > 0) {
    const list = h(doc, "ul", { className: "bad-rows" });
    for (const sample of samples) {
      const s = sample && typeof sample === "object" ? sample : {};
      list.append(h(doc, "li", null,
        h(doc, "span", { className: "bad-row-line", text: "Line " + fmt.number(s.line) }),
        ": ",
        h(doc, "span", { className: "bad-row-reason", text: s.reason || "" })));
    }
    fold.append(h(doc, "p", { className: "bad-rows-heading", text: "Bad row samples" }), list);
  }
  return fold;
}
