// rankstack's search page: plain JavaScript, no dependencies, text always inserted as text (never as HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { pipelines: [], collection: null, qid: null, judgedText: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const token = $("token").value.trim();
  if (token) headers["Authorization"] = "Bearer " + token;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const error = new Error((data && data.message) || response.statusText || "request failed");
    error.status = response.status;
    throw error;
  }
  return data;
}

function status(text, isError = false) {
  const node = $("status");
  node.textContent = text;
  node.classList.toggle("error", isError);
}

// [[piece, matched], ...] -> inline nodes with <mark> on the matched words
function segments(parts) {
  const span = el("span");
  for (const [piece, matched] of parts || []) span.append(matched ? el("mark", {}, piece) : piece);
  return span;
}

async function loadCollection() {
  try {
    state.collection = await api("/api/collection");
    const { pipelines } = await api("/api/pipelines");
    state.pipelines = pipelines.filter((p) => p.first_stage);
  } catch (e) {
    if (e.status === 401) {
      $("token-box").open = true;
      status("This server needs the bearer token for reads: enter it under Token, then search.", true);
    } else if (e.status === 503) {
      status("The server is still loading its pipelines; retrying…");
      setTimeout(loadCollection, 1000);
    } else {
      status(e.message, true);
    }
    return false;
  }
  const c = state.collection;
  const parts = [];
  if (c.documents !== null) parts.push(c.documents.toLocaleString() + " documents");
  parts.push(state.pipelines.length + " pipelines");
  if (c.has_qrels) parts.push(c.judged_queries.toLocaleString() + " judged queries");
  $("collection-info").textContent = parts.join(" · ");
  for (const id of ["pipeline-a", "pipeline-b"]) {
    const select = $(id);
    select.replaceChildren(...state.pipelines.map((p) => el("option", { value: p.name, title: p.expression }, p.name)));
  }
  if (state.pipelines.length > 1) $("pipeline-b").selectedIndex = 1;
  $("add-box").hidden = !c.writes;
  if (c.has_qrels && c.judged_queries) {
    const { queries } = await api("/api/queries");
    $("judged").append(...queries.map((q) => el("option", { value: q.id }, q.id + ": " + truncate(q.query, 90))));
    $("judged-field").hidden = false;
    state.queries = Object.fromEntries(queries.map((q) => [q.id, q.query]));
  }
  status("");
  return true;
}

function truncate(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

async function search(event) {
  if (event) event.preventDefault();
  if (!state.collection && !(await loadCollection())) return;
  const query = $("query").value.trim();
  if (!query) { status("Type a query first.", true); $("query").focus(); return; }
  const k = Math.max(1, Math.min(100, parseInt($("k").value, 10) || 10));
  const names = [$("pipeline-a").value];
  if ($("compare").checked && $("pipeline-b").value) names.push($("pipeline-b").value);
  const qid = state.qid && state.judgedText === query ? state.qid : null;
  status("Searching…");
  $("search-button").disabled = true;
  try {
    const results = await Promise.all(names.map((pipeline) => api("/api/search", {
      method: "POST", body: { query, pipeline, k, explain: true, text: true, qid },
    })));
    render(results);
    const took = results.map((r) => r.pipeline + " " + r.took_ms.toFixed(1) + " ms").join(", ");
    status(results[0].hits.length ? "Done: " + took + "." : "No document matches.");
  } catch (e) {
    status(e.message, true);
  } finally {
    $("search-button").disabled = false;
  }
}

function render(results) {
  const container = $("results");
  container.classList.toggle("compare", results.length > 1);
  const ranks = results.map((r) => new Map(r.hits.map((h) => [h.id, h.rank])));
  container.replaceChildren(...results.map((result, i) => column(result, i, ranks)));
}

function column(result, i, ranks) {
  const other = ranks.length > 1 ? ranks[1 - i] : null;
  const head = el("header", { class: "column-head" },
    el("h2", {}, result.pipeline),
    el("code", { class: "expression" }, (state.pipelines.find((p) => p.name === result.pipeline) || {}).expression || ""));
  if (result.judged) {
    head.append(el("p", { class: "ndcg" }, "nDCG@10 ", el("strong", {}, result["ndcg@10"].toFixed(4)),
      " · " + result.relevant + " relevant judged"));
  } else if (result.qid) {
    head.append(el("p", { class: "muted" }, "query " + result.qid + " has no judgments"));
  }
  const list = el("ol", { class: "hits", "aria-label": "Results of " + result.pipeline });
  for (const hit of result.hits) list.append(hitItem(hit, i, other));
  return el("section", { class: "column", "aria-label": result.pipeline }, head, list);
}

function hitItem(hit, column, other) {
  const badges = el("span", { class: "badges" });
  if (other) {
    const before = other.get(hit.id);
    if (column === 1) {
      if (before === undefined) badges.append(el("span", { class: "move new", title: "not in the other list" }, "new"));
      else if (before > hit.rank) badges.append(el("span", { class: "move up", title: "moved up " + (before - hit.rank) + " from rank " + before }, "▲" + (before - hit.rank)));
      else if (before < hit.rank) badges.append(el("span", { class: "move down", title: "moved down " + (hit.rank - before) + " from rank " + before }, "▼" + (hit.rank - before)));
      else badges.append(el("span", { class: "move same", title: "same rank" }, "="));
    } else if (before === undefined) {
      badges.append(el("span", { class: "move gone", title: "not in the other list" }, "only here"));
    }
  }
  if ("relevance" in hit) {
    const r = hit.relevance;
    const label = r === null ? "unjudged" : r > 0 ? "relevant" + (r > 1 ? " (" + r + ")" : "") : "not relevant";
    badges.append(el("span", { class: "rel " + (r === null ? "unjudged" : r > 0 ? "yes" : "no"), title: "judgment: " + label }, label));
  }
  const title = el("button", { type: "button", class: "title", "aria-haspopup": "dialog", onclick: () => openDocument(hit.id) },
    hit.title && hit.title.length ? segments(hit.title) : hit.id);
  const scores = el("p", { class: "scores" });
  const stages = Object.entries(hit.stages || {});
  scores.append(...stages.flatMap(([name, score], j) => [j ? " · " : "", el("span", { class: "stage" }, name + " "),
    el("span", { class: "score" }, score === null ? "–" : score.toFixed(4))]));
  return el("li", { class: "hit", "data-id": hit.id },
    el("div", { class: "hit-head" }, el("span", { class: "rank" }, String(hit.rank)), badges),
    title,
    hit.snippet ? el("p", { class: "snippet" }, segments(hit.snippet)) : null,
    scores,
    el("p", { class: "docid muted" }, "id " + hit.id));
}

let lastFocus = null;

async function openDocument(id) {
  lastFocus = document.activeElement;
  try {
    const query = $("query").value.trim();
    const doc = await api("/api/documents/" + encodeURIComponent(id) + (query ? "?query=" + encodeURIComponent(query) : ""));
    $("doc-title").replaceChildren(doc.segments ? segments(doc.segments.title) : doc.title || doc.id);
    $("doc-id").textContent = "id " + doc.id;
    $("doc-text").replaceChildren(doc.segments ? segments(doc.segments.text) : doc.text);
    $("doc-dialog").showModal();
    $("doc-close").focus();
  } catch (e) {
    status(e.message, true);
  }
}

async function addDocument(event) {
  event.preventDefault();
  const out = $("add-status");
  const body = { documents: [{ id: $("add-id").value.trim(), title: $("add-title").value, text: $("add-text").value }] };
  out.classList.remove("error");
  out.textContent = "Adding…";
  try {
    await api("/api/documents", { method: "POST", body });
    out.textContent = "Added " + body.documents[0].id + ".";
    $("add-form").reset();
    state.collection = null;
    await loadCollection();
  } catch (e) {
    out.textContent = e.message;
    out.classList.add("error");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", search);
  $("add-form").addEventListener("submit", addDocument);
  $("compare").addEventListener("change", () => { $("pipeline-b").disabled = !$("compare").checked; });
  $("judged").addEventListener("change", () => {
    const qid = $("judged").value;
    state.qid = qid || null;
    if (qid) { state.judgedText = state.queries[qid]; $("query").value = state.judgedText; }
  });
  $("query").addEventListener("input", () => {
    if (state.qid && $("query").value.trim() !== state.judgedText) { state.qid = null; $("judged").value = ""; }
  });
  $("doc-close").addEventListener("click", () => $("doc-dialog").close());
  $("doc-dialog").addEventListener("close", () => { if (lastFocus) lastFocus.focus(); });
  $("doc-dialog").addEventListener("click", (e) => { if (e.target === $("doc-dialog")) $("doc-dialog").close(); });
  document.addEventListener("keydown", (e) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (e.key === "/" && !typing) { e.preventDefault(); $("query").focus(); }
  });
  loadCollection();
});
