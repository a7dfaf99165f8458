/* findling's search page: plain JavaScript, no build step, nothing loaded from elsewhere.
 *
 * Indexed documents are untrusted, so their text only ever reaches the page as text nodes
 * (textContent, append(string)); this file never assigns innerHTML.
 */
"use strict";

(() => {
  const SNIPPET_CHARS = 110; // context kept either side of the sentence until "More context"
  const DEFAULT_K = "5";
  const PICKERS = { mode: "Ranking", collection: "Collection" }; // shown when /search has them
  let scoreMeaning = null; // SearchHit.score's description in /openapi.json, once loaded
  const MODE_LABELS = { hybrid: "Hybrid", dense: "Meaning (dense)", bm25: "Words (BM25)" };
  const LANGUAGES = { de: "German", en: "English", fr: "French", es: "Spanish", it: "Italian" };
  const PROBLEMS = {
    index_not_found: ["warn", "No index yet"],
    index_corrupt: ["error", "The index is damaged"],
    model_mismatch: ["error", "Index and model do not match"],
    model_unavailable: ["error", "The model is not available"],
    invalid_request: ["warn", "Check your question"],
  };

  const byId = (id) => document.getElementById(id);
  const form = byId("search-form");
  const input = byId("q");
  const kSelect = byId("k");
  const pickers = byId("pickers");
  const examples = byId("examples");
  const statusLine = byId("status");
  const noticeSlot = byId("notice");
  const results = byId("results");
  const indexInfo = byId("index-info");
  const defaultTitle = document.title;
  let inFlight = null; // the running search's AbortController

  /** An element with attributes and children; strings become text nodes, never markup. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    node.append(...children.filter((child) => child !== null && child !== undefined));
    return node;
  }

  const fmt = (x) => Number(x).toFixed(3);
  const plural = (n, word) => `${n.toLocaleString("en")} ${word}${n === 1 ? "" : "s"}`;

  // -- URL and form state ----------------------------------------------------------------------

  function readUrl() {
    const params = new URLSearchParams(window.location.search);
    const state = { q: params.get("q") || "", k: params.get("k") || "" };
    for (const name of Object.keys(PICKERS)) state[name] = params.get(name) || "";
    return state;
  }

  function formState() {
    const state = { q: input.value, k: kSelect.value };
    for (const name of Object.keys(PICKERS)) {
      const control = byId(`picker-${name}`);
      state[name] = control ? control.value : readUrl()[name];
    }
    return state;
  }

  function fillForm(state) {
    input.value = state.q;
    if (/^\d+$/.test(state.k)) {
      if (![...kSelect.options].some((o) => o.value === state.k)) {
        kSelect.append(el("option", { value: state.k }, state.k));
      }
      kSelect.value = state.k;
    } else {
      kSelect.value = DEFAULT_K;
    }
    for (const name of Object.keys(PICKERS)) {
      const control = byId(`picker-${name}`);
      if (control) control.value = state[name];
    }
  }

  function writeUrl(state, push) {
    const params = new URLSearchParams({ q: state.q.trim() });
    if (/^\d+$/.test(state.k)) params.set("k", state.k);
    for (const name of Object.keys(PICKERS)) if (state[name]) params.set(name, state[name]);
    const url = `${window.location.pathname}?${params}`;
    const same = url === window.location.pathname + window.location.search;
    window.history[push && !same ? "pushState" : "replaceState"](null, "", url);
  }

  // -- searching -------------------------------------------------------------------------------

  async function search(state, { push }) {
    const query = state.q.trim();
    if (!query) {
      reset();
      setStatus("Type a question first.");
      input.focus();
      return;
    }
    writeUrl(state, push);
    document.title = `${query} · findling`;
    if (inFlight) inFlight.abort();
    const controller = (inFlight = new AbortController());
    showLoading();

    const params = new URLSearchParams({ q: query });
    if (/^\d+$/.test(state.k)) params.set("k", state.k);
    for (const name of Object.keys(PICKERS)) if (state[name]) params.set(name, state[name]);
    let response;
    let body = null;
    try {
      response = await fetch(`search?${params}`, {
        signal: controller.signal,
        headers: { Accept: "application/json" },
      });
      body = await response.json().catch(() => null);
    } catch (error) {
      if (controller.signal.aborted) return;
      showProblem("error", "Cannot reach findling", String(error.message || error), {
        hint: "Is `findling serve` still running? Then try again.",
        state: "offline",
        retry: state,
      });
      return;
    }
    if (controller.signal.aborted) return;
    inFlight = null;
    if (response.ok && body && Array.isArray(body.results)) renderResults(body);
    else renderError(response.status, body, state);
  }

  function reset() {
    if (inFlight) inFlight.abort();
    inFlight = null;
    document.title = defaultTitle;
    results.replaceChildren();
    results.setAttribute("aria-busy", "false");
    noticeSlot.replaceChildren();
    examples.hidden = false;
    setStatus("");
  }

  function setStatus(text, { visible = true } = {}) {
    statusLine.textContent = text;
    // with a notice on screen the status line only speaks to screen readers
    statusLine.classList.toggle("visually-hidden", !visible);
  }

  function showLoading() {
    noticeSlot.replaceChildren();
    setStatus("Searching…");
    results.setAttribute("aria-busy", "true");
    const skeleton = () =>
      el(
        "li",
        { class: "card skeleton", "aria-hidden": "true" },
        el("span", { class: "bone bone-head" }),
        el("span", { class: "bone" }),
        el("span", { class: "bone bone-short" }),
      );
    results.replaceChildren(skeleton(), skeleton(), skeleton());
  }

  // -- rendering results -----------------------------------------------------------------------

  function renderResults(body) {
    results.setAttribute("aria-busy", "false");
    results.replaceChildren(...body.results.map((hit) => card(hit, body.mode)));
    const count = body.results.length;
    examples.hidden = count > 0;
    if (count === 0) {
      setStatus(`No results for “${body.query}”.`, { visible: false });
      showNotice("info", "No matching passages", "Nothing in the index matches this question.", {
        hint: "Try other words, ask in the other language, or switch the ranking to Hybrid.",
        state: "no-results",
      });
      return;
    }
    const took = body.took_ms < 1 ? "<1" : Math.round(body.took_ms);
    setStatus(`${plural(count, "result")} for “${body.query}” · ${took} ms`);
  }

  function card(hit, mode) {
    const id = `result-${hit.rank}`;
    // offsets count Unicode code points (Python); JavaScript strings count UTF-16 units
    const points = Array.from(hit.context);
    const before = points.slice(0, hit.context_start).join("");
    const sentence = points.slice(hit.context_start, hit.context_end).join("");
    const after = points.slice(hit.context_end).join("");
    const lead = lastWords(before, SNIPPET_CHARS);
    const tail = firstWords(after, SNIPPET_CHARS);

    const passage = el("p", { class: "context", id: `${id}-context`, lang: hit.language || null });
    const show = (full) =>
      passage.replaceChildren(full ? before : lead, el("mark", {}, sentence), full ? after : tail);
    show(false);

    let toggle = null;
    if (lead !== before || tail !== after) {
      toggle = el(
        "button",
        { type: "button", class: "toggle", "aria-expanded": "false", "aria-controls": passage.id },
        "More context",
      );
      toggle.addEventListener("click", () => {
        const open = toggle.getAttribute("aria-expanded") !== "true";
        toggle.setAttribute("aria-expanded", String(open));
        toggle.textContent = open ? "Less context" : "More context";
        show(open);
      });
    }

    const slash = hit.source.lastIndexOf("/");
    const language = LANGUAGES[hit.language] || hit.language;
    const where =
      `Paragraph ${hit.paragraph + 1}, sentence ${hit.sentence + 1} of ${hit.source} ` +
      `(counted from 1); characters ${hit.start} to ${hit.end} of the file (end exclusive)`;
    return el(
      "li",
      { class: "card", id },
      el(
        "article",
        { "aria-labelledby": `${id}-source` },
        el(
          "header",
          { class: "card-head" },
          el("span", { class: "rank", title: `Rank ${hit.rank}` }, String(hit.rank)),
          el(
            "h3",
            { class: "source", id: `${id}-source`, title: hit.source },
            el("span", { class: "visually-hidden" }, `Result ${hit.rank}: `),
            el("span", { class: "file" }, hit.source.slice(slash + 1)),
            slash > 0 ? el("span", { class: "dir" }, hit.source.slice(0, slash + 1)) : null,
          ),
          score(hit, mode),
        ),
        passage,
        el(
          "footer",
          { class: "card-meta" },
          el(
            "p",
            { class: "position", title: where },
            language ? el("span", { class: "lang", title: `Detected language: ${language}` }, hit.language) : null,
            el("span", {}, `¶ ${hit.paragraph + 1}`),
            el("span", {}, `sentence ${hit.sentence + 1}`),
            el("span", {}, `chars ${hit.start}–${hit.end}`),
          ),
          toggle,
        ),
      ),
    );
  }

  function score(hit, mode) {
    // what a score means comes from the API's own schema (one text for API, MCP, page, README)
    const meaning = scoreMeaning || "Higher is better; dense scores are cosine-based (see /docs).";
    let label = "cosine";
    let parts = `dense ${fmt(hit.score)}`;
    if (hit.dense_score != null && hit.lexical_score != null) {
      label = "score";
      parts = `dense ${fmt(hit.dense_score)} plus ${fmt(hit.score - hit.dense_score)} for shared words, ` +
        `BM25 share ${fmt(hit.lexical_score)}`;
    } else if (hit.lexical_score != null || mode === "bm25") {
      label = "BM25";
      parts = `BM25 share ${fmt(hit.score)}, not a cosine similarity`;
    }
    const title = `Score ${fmt(hit.score)} (${parts}). ${meaning}`;
    return el(
      "p",
      { class: "score", title },
      el("span", { class: "score-label", "aria-hidden": "true" }, label),
      el("span", { class: "score-value", "aria-hidden": "true" }, fmt(hit.score)),
      el("span", { class: "visually-hidden" }, title),
    );
  }

  function lastWords(text, max) {
    const chars = Array.from(text);
    if (chars.length <= max) return text;
    let start = chars.length - max;
    while (start < chars.length && !/\s/.test(chars[start - 1])) start += 1;
    if (start >= chars.length) start = chars.length - max;
    return `…${chars.slice(start).join("")}`;
  }

  function firstWords(text, max) {
    const chars = Array.from(text);
    if (chars.length <= max) return text;
    let end = max;
    while (end > 0 && !/\s/.test(chars[end])) end -= 1;
    if (end === 0) end = max;
    return `${chars.slice(0, end).join("")}…`;
  }

  // -- problems --------------------------------------------------------------------------------

  function renderError(status, body, state) {
    results.setAttribute("aria-busy", "false");
    results.replaceChildren();
    const error = body && body.error ? body.error : {};
    const [kind, title] =
      PROBLEMS[error.code] || (status >= 500 ? ["error", "Server error"] : ["error", "Search failed"]);
    let message = error.message || `The server answered ${status}.`;
    const details = (error.details || []).map((d) => d.msg).filter(Boolean);
    if (details.length) message = `${message}: ${details.join("; ")}`;
    const retry = status >= 500 && error.code !== "index_not_found" ? state : null;
    const stateName = error.code === "index_not_found" ? "no-index" : `error-${status}`;
    showProblem(kind, title, message, { hint: error.hint, state: stateName, retry });
  }

  function showProblem(kind, title, message, options) {
    results.setAttribute("aria-busy", "false");
    results.replaceChildren();
    examples.hidden = true;
    setStatus(`${title}.`, { visible: false });
    showNotice(kind, title, message, options);
  }

  function showNotice(kind, title, message, { hint = "", state = kind, retry = null } = {}) {
    const text = el("div", { class: "notice-text" }, el("h2", { class: "notice-title" }, title));
    text.append(el("p", { class: "notice-message" }, message));
    if (hint) text.append(el("p", { class: "notice-hint" }, ...withCode(hint)));
    if (retry) {
      const again = el("button", { type: "button", class: "button-secondary" }, "Try again");
      again.addEventListener("click", () => search(retry, { push: false }));
      text.append(again);
    }
    const icon = kind === "info" ? "i" : "!";
    noticeSlot.replaceChildren(
      el(
        "div",
        { class: `notice notice-${kind}`, "data-state": state },
        el("span", { class: "notice-icon", "aria-hidden": "true" }, icon),
        text,
      ),
    );
  }

  /** `backticked` parts of a hint as <code>, the rest as text. */
  function withCode(hint) {
    return hint.split("`").map((part, i) => (i % 2 ? el("code", {}, part) : part));
  }

  // -- what the server offers ------------------------------------------------------------------

  async function loadPickers(initial) {
    const spec = await getJson("openapi.json");
    const hitSchema = ((spec && spec.components && spec.components.schemas) || {}).SearchHit;
    scoreMeaning = (((hitSchema || {}).properties || {}).score || {}).description || null;
    const operation = (((spec && spec.paths) || {})["/search"] || {}).get || {};
    for (const [name, label] of Object.entries(PICKERS)) {
      const param = (operation.parameters || []).find((p) => p.name === name && p.in === "query");
      if (!param) continue;
      let values = enumOf(param.schema, spec);
      if (!values && name === "collection" && spec.paths["/collections"]) {
        const listed = await getJson("collections");
        values = Array.isArray(listed) ? listed.map((c) => c.name) : null;
      }
      if (values && values.length > 1) {
        pickers.append(picker(name, label, values, param.description, initial[name]));
      }
    }
  }

  async function getJson(url) {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      return response.ok ? await response.json() : null;
    } catch {
      return null;
    }
  }

  function enumOf(schema, spec) {
    if (!schema) return null;
    if (schema.$ref) {
      const path = schema.$ref.replace(/^#\//, "").split("/");
      return enumOf(path.reduce((node, key) => (node || {})[key], spec), spec);
    }
    if (Array.isArray(schema.enum)) return schema.enum;
    for (const alternative of schema.anyOf || schema.oneOf || []) {
      const values = enumOf(alternative, spec);
      if (values) return values;
    }
    return null;
  }

  function picker(name, label, values, description, value) {
    const id = `picker-${name}`;
    const fallback = name === "mode" ? "Default" : "Server default";
    const control = el("select", { id, name }, el("option", { value: "" }, fallback));
    for (const v of values) control.append(el("option", { value: v }, (name === "mode" && MODE_LABELS[v]) || v));
    control.value = values.includes(value) ? value : "";
    control.addEventListener("change", () => {
      if (name === "collection") loadInfo();
      rerun();
    });
    return el("label", { class: "option", for: id, title: description || null }, `${label} `, control);
  }

  async function loadInfo() {
    let response;
    let body = null;
    try {
      const collection = formState().collection;
      response = await fetch(collection ? `info?${new URLSearchParams({ collection })}` : "info");
      body = await response.json().catch(() => null);
    } catch {
      indexInfo.textContent = "Index information is not available.";
      return;
    }
    if (response.ok && body) {
      const created = body.created_at ? new Date(body.created_at) : null;
      indexInfo.replaceChildren(
        "Index: ",
        el("strong", {}, body.model),
        ` · ${plural(body.documents, "document")} · ${plural(body.passages, "sentence")}`,
        created && !Number.isNaN(created.getTime())
          ? el("span", {}, " · built ", el("time", { datetime: body.created_at }, created.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" })))
          : null,
      );
    } else if (body && body.error && body.error.code === "index_not_found") {
      indexInfo.replaceChildren("No index yet: run ", el("code", {}, "findling index"), ".");
      if (!inFlight && !results.childElementCount && !noticeSlot.childElementCount) {
        const { message, hint } = body.error;
        showNotice("warn", "No index yet", message, { hint, state: "no-index" });
        examples.hidden = true;
      }
    } else {
      indexInfo.textContent = `Index unavailable${body && body.error ? `: ${body.error.message}` : ""}.`;
    }
  }

  // -- wiring ----------------------------------------------------------------------------------

  function rerun() {
    if (input.value.trim()) search(formState(), { push: true });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search(formState(), { push: true });
  });
  kSelect.addEventListener("change", rerun);
  for (const chip of document.querySelectorAll(".chip")) {
    chip.addEventListener("click", () => {
      input.value = chip.querySelector(".chip-text").textContent;
      search(formState(), { push: true });
      input.focus();
    });
  }
  window.addEventListener("popstate", () => {
    const state = readUrl();
    fillForm(state);
    if (state.q.trim()) search(state, { push: false });
    else reset();
  });
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest && event.target.closest("input, select, textarea");
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      input.focus();
      input.select();
    }
  });

  const initial = readUrl();
  fillForm(initial);
  input.focus();
  loadPickers(initial);
  loadInfo();
  if (initial.q.trim()) search(initial, { push: false });
})();
