/*
 * The dashboard's forms (simulated, CSV upload, remote) and the page's notices: they start
 * jobs through the follower and show the server's refusals next to the fields it names.
 */
import { h } from "./result.js";

const SIM_FIELDS = { step: "sim-step", interval_ms: "sim-interval", fail_at: "sim-fail-at" };
const REMOTE_FIELDS = { duration_s: "remote-duration", unavailable_s: "remote-unavailable", fail: "remote-fail" };
const REMOTE_SERVICE = "demo";
const NOT_CONNECTED = "Not connected: the job will start when the connection is back.";

/**
 * "name: message message" lines of an invalid_params answer's `fields`.
 * @param {Record<string, string[]|string>|null|undefined} fields
 * @returns {string[]}
 */
export function fieldLines(fields) {
  if (!fields) return [];
  return Object.entries(fields).map(([name, messages]) =>
    name + ": " + (Array.isArray(messages) ? messages.join(" ") : String(messages)));
}

/**
 * A form value as the server should see it: an integer when it is one, undefined when empty,
 * otherwise the text as typed (so the server's invalid_params names the field).
 * @param {string} raw
 * @returns {number|string|undefined}
 */
export function parseIntField(raw) {
  const text = raw.trim();
  if (text === "") return undefined;
  const num = Number(text);
  return Number.isInteger(num) ? num : text;
}

/**
 * Wire the forms that are on the page.
 * @param {object} options
 * @param {Document} options.doc
 * @param {import("./follower.js").Follower} options.follower
 * @param {{uploadUrl: string, csrfToken: string, uploadMaxBytes: number}} options.config
 * @param {ReturnType<import("./format.js").createFormat>} options.fmt
 * @returns {{notice: (message: string, fields?: object|null) => void,
 *   startAnswered: (source: string, error: {message: string, fields: object|null}|null) => void}}
 */
export function setupForms({ doc, follower, config, fmt }) {
  const byId = (id) => doc.getElementById(id);
  const notice = byId("notice");
  const csvForm = byId("csv-form");
  const csvFile = byId("csv-file");
  const csvStart = byId("csv-start");
  const csvError = byId("csv-error");

  function fillMessage(node, message, fields) {
    node.replaceChildren();
    if (!message) return;
    const lines = fieldLines(fields);
    if (lines.length === 0) {
      node.textContent = message;
      return;
    }
    node.append(h(doc, "span", { className: "msg-main", text: message }));
    for (const line of lines) node.append(h(doc, "span", { className: "msg-field", text: line }));
  }
  const showNotice = (message, fields) => notice && fillMessage(notice, message, fields);
  const showCsvError = (message, fields) => csvError && fillMessage(csvError, message, fields);

  /** Mark the inputs named in an invalid_params answer ("payload.duration_s" → duration_s). */
  function markFields(fieldIds, fields) {
    const byName = {};
    for (const [key, messages] of Object.entries(fields || {})) byName[key.split(".").pop()] = messages;
    for (const [name, id] of Object.entries(fieldIds)) {
      const input = byId(id);
      if (!input) continue;
      const errId = id + "-error";
      let errNode = byId(errId);
      const messages = byName[name];
      if (messages) {
        if (!errNode) {
          errNode = h(doc, "p", { id: errId, className: "field-error" });
          const anchor = input.type === "checkbox" && input.labels && input.labels[0] ? input.labels[0] : input;
          anchor.insertAdjacentElement("afterend", errNode);
        }
        errNode.textContent = Array.isArray(messages) ? messages.join(" ") : String(messages);
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", errId);
      } else {
        if (errNode) errNode.remove();
        input.removeAttribute("aria-invalid");
        input.removeAttribute("aria-describedby");
      }
    }
  }

  function startAnswered(source, error) {
    if (source === "csv") {
      showCsvError(error ? error.message : "", error && error.fields);
      return;
    }
    markFields(source === "remote" ? REMOTE_FIELDS : SIM_FIELDS, error && error.fields);
    showNotice(error ? error.message : "", error && error.fields);
  }

  const simForm = byId("simulated-form");
  if (simForm) simForm.addEventListener("submit", (event) => {
    event.preventDefault();
    showNotice("");
    markFields(SIM_FIELDS, null);
    const params = {};
    for (const [name, id] of Object.entries(SIM_FIELDS)) {
      const value = byId(id) ? parseIntField(byId(id).value) : undefined;
      if (value !== undefined) params[name] = value;
    }
    if (!follower.start("simulated", params, "simulated")) showNotice(NOT_CONNECTED);
  });

  const remoteForm = byId("remote-form");
  if (remoteForm) remoteForm.addEventListener("submit", (event) => {
    event.preventDefault();
    showNotice("");
    markFields(REMOTE_FIELDS, null);
    const payload = { fail: Boolean(byId(REMOTE_FIELDS.fail).checked) };
    for (const name of ["duration_s", "unavailable_s"]) {
      const input = byId(REMOTE_FIELDS[name]);
      const value = input ? parseIntField(input.value) : undefined;
      if (value !== undefined) payload[name] = value;
    }
    if (!follower.start("remote", { service: REMOTE_SERVICE, payload }, "remote")) showNotice(NOT_CONNECTED);
  });

  function setCsvBusy(busy) {
    if (!csvStart) return;
    csvStart.disabled = busy;
    csvStart.textContent = busy ? "Uploading…" : "Upload and profile";
  }

  if (csvForm) csvForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showCsvError("");
    const file = csvFile && csvFile.files && csvFile.files[0];
    if (!file) {
      showCsvError("Choose a CSV file first.");
      return;
    }
    if (config.uploadMaxBytes > 0 && file.size > config.uploadMaxBytes) {
      showCsvError("“" + file.name + "” is " + fmt.bytes(file.size) +
        "; the largest file you can upload is " + fmt.bytes(config.uploadMaxBytes) + ".");
      return;
    }
    const body = new FormData();
    body.append("file", file, file.name);
    setCsvBusy(true);
    let response;
    try {
      response = await fetch(config.uploadUrl, {
        method: "POST", body, headers: { "X-CSRFToken": config.csrfToken }, credentials: "same-origin",
      });
    } catch (err) {
      setCsvBusy(false);
      showCsvError("Upload failed: the server could not be reached.");
      return;
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    setCsvBusy(false);
    if (response.status === 201 && data && data.upload_id !== undefined) {
      if (!follower.start("csv_profile", { upload_id: data.upload_id }, "csv")) {
        showCsvError("Uploaded. Not connected: profiling starts when the connection is back.");
      }
      csvForm.reset();
      return;
    }
    const status = response.status + (response.statusText ? " " + response.statusText : "");
    const message = data && typeof data.message === "string" && data.message
      ? data.message : "Upload failed: " + status + ".";
    showCsvError(message, data && data.fields);
  });

  return { notice: showNotice, startAnswered };
}
