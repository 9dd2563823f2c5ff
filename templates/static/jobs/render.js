/*
 * Job cards: clones of the server's card (templates/jobs/_job_card.html, rendered once in
 * <template id="job-card-template">), filled with the texts of cardview.js. It builds no card
 * markup: it sets text and attributes, shows and hides the template's parts, and removes the
 * cancel button once a job is final. Data reaches the DOM through textContent and attributes.
 */
import { isFinal } from "./store.js";
import { jobName, errorText, progressView, timesView, cancelView, detailValues } from "./cardview.js";
import { fillResult } from "./result.js";

/**
 * Set a node's text only when it differs (no needless mutations for observers).
 * @param {Node} node
 * @param {string|null|undefined} text
 */
export function setText(node, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (node.textContent !== value) node.textContent = value;
}

export class CardRenderer {
  /**
   * @param {object} options
   * @param {HTMLTemplateElement} options.template the server's card template
   * @param {ReturnType<import("./format.js").createFormat>} options.fmt
   * @param {(id: string) => string|null} options.jobUrl the job page of an id (null: no link)
   * @param {() => number} options.serverNowMs now on the server's clock
   * @param {() => number} options.now now on this browser's clock (Date.now)
   * @param {(ms: number) => string} options.dateText a time for people
   * @param {() => boolean} options.foldProfiles a finished CSV profile starts folded
   * @param {(entry: object) => void} options.onCancel the card's cancel button was pressed
   */
  constructor(options) {
    Object.assign(this, options);
  }

  /**
   * A new card for a store entry (kept on `entry.card`), not yet in the document.
   * @param {object} entry a store entry
   * @returns {HTMLElement} the card's <article>
   */
  create(entry) {
    const card = this.template.content.firstElementChild.cloneNode(true);
    const one = (selector) => card.querySelector(selector);
    const id = entry.job.id;
    const titleId = "job-title-" + id;
    card.dataset.jobId = id;
    card.setAttribute("aria-labelledby", titleId);
    one(".job-title").id = titleId;
    const link = one(".job-title a");
    const url = this.jobUrl(id);
    if (link && url) link.setAttribute("href", url);
    const nodes = {
      card,
      titleText: one(".job-title-text"), state: one(".job-state"), stale: one(".job-stale"),
      created: one(".job-created"), params: one(".job-params"), progress: one(".job-progress"),
      percent: one(".job-percent"), counts: one(".job-counts"),
      elapsed: one(".job-elapsed"), rate: one(".job-rate"), eta: one(".job-eta"),
      message: one(".job-message"), retry: one(".job-retry"), error: one(".job-error"),
      result: one(".job-result"), details: one(".job-details"), cancel: one(".job-cancel"),
      alert: one(".job-alert"),
    };
    nodes.rateItem = nodes.rate.closest(".job-stat");
    nodes.etaItem = nodes.eta.closest(".job-stat");
    nodes.cancel.addEventListener("click", () => this.onCancel(entry));
    entry.card = { nodes, percent: null, resultShown: false };
    return card;
  }

  /**
   * Bring an entry's card in line with its job object, touching only what changed.
   * @param {object} entry a store entry with its card (create)
   */
  render(entry) {
    const job = entry.job;
    const n = entry.card.nodes;
    const state = String(job.state || "pending");
    n.card.dataset.state = state;
    n.card.dataset.kind = String(job.kind || "");

    const title = jobName(job);
    setText(n.titleText, title);
    setText(n.state, state);
    n.progress.setAttribute("aria-label", "Progress of " + title);
    if (job.created_at && n.created.getAttribute("datetime") !== job.created_at) {
      n.created.setAttribute("datetime", job.created_at);
      const date = new Date(job.created_at);
      setText(n.created, Number.isNaN(date.getTime()) ? "" : "Created " + date.toLocaleString());
    }
    setText(n.params, job.summary ? " · " + job.summary : "");
    if (entry.stale) n.card.dataset.stale = "true";
    else delete n.card.dataset.stale;
    n.stale.hidden = !entry.stale;

    this.renderProgress(entry);
    this.renderTimes(entry);
    this.renderCancel(entry);
    this.renderOutcome(entry, state);
    if (n.details) {
      const values = detailValues(job, this.dateText);
      for (const dd of n.details.querySelectorAll("dd[data-detail]")) setText(dd, values[dd.dataset.detail]);
    }
    setText(n.alert, entry.alert || "");
    n.alert.hidden = !entry.alert;
  }

  renderProgress(entry) {
    const n = entry.card.nodes;
    const view = progressView(entry.job, entry.card.percent, this.fmt);
    entry.card.percent = view.percent;
    if (view.barValue === null) {
      if (n.progress.hasAttribute("value")) n.progress.removeAttribute("value");
    } else if (n.progress.getAttribute("value") !== view.barValue) {
      n.progress.setAttribute("value", view.barValue);
    }
    setText(n.percent, view.percentText);
    setText(n.counts, view.counts);
    if (view.countsTitle) n.counts.setAttribute("title", view.countsTitle);
    else n.counts.removeAttribute("title");
    setText(n.message, view.message);
  }

  /**
   * The parts that move with the clock (elapsed, ETA, retry countdown) and the rate.
   * @param {object} entry a store entry with its card
   */
  renderTimes(entry) {
    const n = entry.card.nodes;
    const view = timesView(entry.job, { serverNowMs: this.serverNowMs(), sinceMs: this.now() - entry.receivedMs }, this.fmt);
    setText(n.elapsed, view.elapsed);
    n.rateItem.hidden = !view.rateShown;
    setText(n.rate, view.rate);
    n.etaItem.hidden = !view.etaShown;
    if (view.eta !== null) setText(n.eta, view.eta);
    setText(n.retry, view.retry);
    n.retry.hidden = !view.retry;
  }

  renderCancel(entry) {
    const n = entry.card.nodes;
    if (!n.cancel) return; // removed: the job is final, and a final state never changes
    const view = cancelView(entry.job, entry.cancelRequested);
    if (!view.shown) {
      const hadFocus = n.cancel.ownerDocument.activeElement === n.cancel;
      n.cancel.remove();
      n.cancel = null;
      if (hadFocus) focusCard(entry);
      return;
    }
    n.cancel.disabled = view.disabled;
    setText(n.cancel, view.text);
    n.cancel.setAttribute("aria-label", view.label);
  }

  renderOutcome(entry, state) {
    const n = entry.card.nodes;
    const job = entry.job;
    if (state === "succeeded" && !entry.card.resultShown) {
      entry.card.resultShown = true;
      fillResult(n.result, job, { fmt: this.fmt, folded: this.foldProfiles() });
      n.result.hidden = false;
    }
    if (state === "failed") {
      setText(n.error, job.error ? errorText(job.error) : "The job failed.");
      n.error.hidden = false;
    }
  }

  /**
   * Re-render the clock-driven parts of every card of a job that is not final.
   * @param {Iterable<object>} entries store entries with cards
   */
  tick(entries) {
    for (const entry of entries) {
      if (entry.card && !isFinal(entry.job.state)) this.renderTimes(entry);
    }
  }
}

/**
 * Move focus to a card (its button went away, or the cancel dialog closed without one).
 * @param {object} entry a store entry with its card
 */
export function focusCard(entry) {
  const card = entry.card.nodes.card;
  if (!card.isConnected) return;
  card.setAttribute("tabindex", "-1");
  card.focus();
}
