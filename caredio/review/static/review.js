// The review page. Every text from the run (questions, answers, items, critiques) is put on
// the page with textContent, never as HTML: an answer holding <script> shows as text.
"use strict";

const state = {
  samples: [], byId: {}, shown: [], current: null, detail: null, cache: {},
  reasons: [], labels: {}, showSupport: false, showVersions: true, focusSeg: null,
};
// Keys act in the order pressed: a reviewer typing "a u" quickly gets the accept, then its undo,
// never one of them dropped because the other was still talking to the server.
let queue = Promise.resolve();
function enqueue(action) {
  queue = queue.then(action).catch((error) => say(error.message, "error"));
}
const $ = (id) => document.getElementById(id);
const MARK = { accept: "✓", edit: "✎", reject: "✗" };
const SHORT = { supported: "supported", shared: "shared", unsupported: "unsupported (possible invention)",
  off_topic: "off-topic", repeated: "repeated", copied: "copied" };

// history: the token leaves the address bar (it lives on in an HTTP-only cookie)
if (location.search.includes("token=")) history.replaceState(null, "", location.pathname);

// Similarities are on the scorer's scale, where 1 is a paraphrase; a closer match reads past 1,
// which says no more than 1 does (the terminal and the report show it so too).
function sim(x) { return Math.min(x, 1).toFixed(2); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(typeof child === "string" || typeof child === "number"
      ? document.createTextNode(String(child)) : child);
  }
  return node;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-Requested-With": "caredio-review" },
  };
  const response = await fetch(path, options);
  const text = await response.text();
  let data = null;
  try { data = JSON.parse(text); } catch (e) { data = { error: text }; }
  if (!response.ok) throw new Error((data && data.error) || `${response.status}`);
  return data;
}

function say(message, kind) {
  const box = $("status");
  box.textContent = message;
  box.className = "status " + (kind || "");
  clearTimeout(say.timer);
  if (message) say.timer = setTimeout(() => { box.textContent = ""; }, 6000);
}

// -- the list ----------------------------------------------------------------------------------

function fillSelect(select, values, texts) {
  const keep = select.value;
  while (select.options.length > 1) select.remove(1);
  for (const value of values) select.appendChild(el("option", { value }, texts ? texts[value] || value : value));
  select.value = keep;
}

function applyFilters() {
  const culture = $("f-culture").value, topic = $("f-topic").value, label = $("f-label").value;
  const score = parseFloat($("f-score").value) || 0, decision = $("f-decision").value;
  state.shown = state.samples.filter((s) => (!culture || s.culture === culture)
    && (!topic || s.topic === topic) && (!label || s.labels.includes(label))
    && s.objective >= score
    && (!decision || (decision === "none" ? !s.decision : s.decision === decision)))
    .map((s) => s.sample_id);
  $("shown").textContent = `showing ${state.shown.length} of ${state.samples.length}`;
  renderList();
}

function listItem(id) {
  const s = state.byId[id];
  return el("a", {
    href: "#", "data-id": id, class: "item" + (id === state.current ? " current" : "") + (s.decision ? " " + s.decision : ""),
    onclick: (event) => { event.preventDefault(); enqueue(() => show(id)); },
  }, el("span", { class: "mark" }, MARK[s.decision] || "·"), s.selected ? el("span", { class: "star", title: "selected" }, "★") : "",
  el("span", { class: "id" }, id), el("span", { class: "j" }, s.objective.toFixed(2)));
}

// The list is built whole only when the filters change; moving through it touches two items
// (a thousand rebuilt on every key press cost a reviewer ~100 ms a step).
function renderList() {
  $("list").replaceChildren(...state.shown.map(listItem));
  markCurrent();
}

function itemOf(id) {
  return id ? $("list").querySelector(`.item[data-id="${CSS.escape(id)}"]`) : null;
}

function markCurrent() {
  for (const node of $("list").querySelectorAll(".item.current")) node.classList.remove("current");
  const current = itemOf(state.current);
  if (current) { current.classList.add("current"); current.scrollIntoView({ block: "nearest" }); }
}

function refreshItem(id) {
  const old = itemOf(id);
  if (old) old.replaceWith(listItem(id));
}

// After a decision or an edit: the one item again, or the whole list when a filter may now
// leave the sample out.
function relist(id) {
  if ($("f-decision").value || $("f-label").value || parseFloat($("f-score").value) > 0) applyFilters();
  else refreshItem(id);
}

function renderProgress(progress) {
  $("progress").textContent = `${progress.reviewed}/${progress.total} reviewed`;
}

// -- one sample --------------------------------------------------------------------------------

function scoreBar(name, value) {
  const bar = el("span", { class: "bar" }, el("span", { class: "fill" }));
  bar.firstChild.style.width = `${Math.round(Math.max(0, Math.min(1, value)) * 100)}%`;
  return el("span", { class: "score" }, `${name} ${value.toFixed(3)} `, bar);
}

function segmentPanel(seg, index) {
  const rows = seg.support.map((item) => el("li", {},
    el("span", { class: "sim" }, sim(item.similarity)), " ",
    el("code", {}, item.id), " ", item.text ? el("span", {}, item.text) : el("span", { class: "muted" }, "(text not in memory)")));
  let rival = null;
  if (seg.rival) {
    const text = seg.rival.text || (seg.rival.id === "contrast answer" ? "(the contrast answer)" : "(text not in memory)");
    rival = el("p", { class: "rival" }, `strongest of a compared culture: ${seg.rival.culture} `,
      el("code", {}, seg.rival.id), ` ${sim(seg.rival.similarity)} — `, text);
  }
  return el("div", { class: "segpanel label-" + seg.label, "data-seg": index },
    el("p", {}, el("strong", {}, `sentence ${index + 1}: `), seg.label_text),
    seg.text ? el("p", { class: "muted" }, `as scored: ${seg.text}`) : null,
    el("p", { class: "nums" }, `relevance ${seg.relevance.toFixed(3)} · weight ${seg.weight.toFixed(2)} · ` +
      `attribution ${seg.attribution.toFixed(3)} · share of R ${seg.r_share.toFixed(2)} · share of D ${seg.d_share.toFixed(2)}`),
    el("p", {}, "supporting items of the culture:"), rows.length ? el("ol", {}, rows) : el("p", { class: "muted" }, "none"),
    rival);
}

function answerBlock(detail) {
  const ev = detail.evidence;
  const answer = el("div", { class: "answer", id: "answer" });
  for (const piece of ev.pieces) {
    if (piece.seg === null) { answer.appendChild(document.createTextNode(piece.text)); continue; }
    const seg = ev.segments[piece.seg];
    answer.appendChild(el("span", {
      class: "seg label-" + seg.label + (state.focusSeg === piece.seg ? " focus" : ""), tabindex: "0",
      title: seg.label_text, "data-seg": piece.seg, "data-label": seg.label,
      onclick: () => { state.focusSeg = state.focusSeg === piece.seg ? null : piece.seg; renderSample(); },
    }, piece.text));
  }
  const parts = [el("h3", {}, "Answer"), answer];
  if (!ev.recorded) parts.push(el("p", { class: "muted", id: "no-evidence" }, ev.note));
  if (ev.unplaced.length) {
    parts.push(el("p", { class: "muted" }, "sentences as scored, not found in the answer:"),
      el("ul", {}, ev.unplaced.map((i) => el("li", { class: "seg label-" + ev.segments[i].label }, ev.segments[i].text || ""))));
  }
  if (ev.recorded) {
    const used = [...new Set(ev.segments.map((s) => s.label))];
    parts.push(el("p", { class: "legend" }, used.map((label) => el("span", { class: "seg label-" + label }, state.labels[label] || label))));
    const panels = ev.segments.map((seg, i) => (state.showSupport || state.focusSeg === i) ? segmentPanel(seg, i) : null).filter(Boolean);
    parts.push(panels.length ? el("div", { id: "support" }, panels)
      : el("p", { class: "muted" }, "click a sentence, or press s, for its supporting items"));
  }
  return parts;
}

function diffText(pieces) {
  return el("span", {}, pieces.map(([op, text]) => op === "eq" ? text : el(op === "ins" ? "ins" : "del", {}, text)));
}

function versionsBlock(detail) {
  if (!state.showVersions) return el("p", { class: "muted" }, `${detail.versions.length} versions (v shows them)`);
  return el("div", { id: "versions" }, detail.versions.map((v) => el("div", { class: "version" + (v.edit ? " edit" : "") + (v.rejected ? " rejected" : "") },
    el("p", { class: "vhead" }, v.edit ? v.step : `round ${v.round} · ${v.step}`, v.rejected ? " · rejected by the loop (R fell)" : "",
      v.scores.objective !== undefined ? ` · R ${v.scores.representativeness.toFixed(3)} D ${v.scores.distinctiveness.toFixed(3)} J ${v.scores.objective.toFixed(3)}` : ""),
    el("p", {}, el("strong", {}, "Q "), diffText(v.question)), el("p", {}, el("strong", {}, "A "), diffText(v.response)))));
}

function renderSample() {
  const d = state.detail, box = $("sample");
  if (!d) { box.replaceChildren(el("p", { class: "muted" }, "no sample matches the filters")); return; }
  const decided = d.mine ? `${d.mine.decision}${d.mine.reason ? ": " + d.mine.reason : ""}` : "undecided";
  const scores = d.scores;
  box.replaceChildren(...[
    el("div", { class: "head" }, el("h2", { id: "sample-id" }, d.sample_id),
      el("span", { class: "badge" }, d.culture), el("span", { class: "badge" }, d.topic),
      d.selected ? el("span", { class: "badge sel" }, "selected") : null,
      el("span", { id: "decision", class: "badge decision " + (d.mine ? d.mine.decision : "none") }, decided)),
    d.others.length ? el("p", { class: "others" }, "other reviewers: ", d.others.map((o) => `${o.reviewer} ${o.decision}${o.reason ? " (" + o.reason + ")" : ""}`).join("; ")) : null,
    d.edited_by ? el("p", { class: "note" }, `text edited by ${d.edited_by}` + (d.rescore_note ? ` — ${d.rescore_note}` : "")) : null,
    el("p", { class: "scores", id: "scores" }, scores.objective === undefined ? "no scores" : [scoreBar("R", scores.representativeness), scoreBar("D", scores.distinctiveness), scoreBar("J", scores.objective)],
      Object.keys(d.attribution).length && !d.edited ? el("span", { class: "muted" }, " attribution: " + Object.entries(d.attribution).map(([c, p]) => `${c} ${p.toFixed(2)}`).join(", ")) : null),
    el("h3", {}, "Question"), el("p", { class: "question", id: "question" }, d.question),
    ...answerBlock(d),
    el("h3", {}, "Contrast answers"),
    Object.keys(d.contrast_answers).length ? el("dl", { class: "contrast" }, Object.entries(d.contrast_answers).map(([c, text]) => [el("dt", {}, c), el("dd", {}, text)]))
      : el("p", { class: "muted" }, "none recorded"),
    el("h3", {}, "Versions"), versionsBlock(d)].filter(Boolean));
}

async function load(id) {
  if (!state.cache[id]) state.cache[id] = api(`/api/samples/${encodeURIComponent(id)}`);
  try { return await state.cache[id]; } catch (error) { delete state.cache[id]; throw error; }
}

async function show(id) {
  if (!id) { state.current = null; state.detail = null; renderSample(); markCurrent(); return; }
  state.current = id;
  state.focusSeg = null;
  markCurrent();
  try {
    const detail = await load(id);
    if (state.current !== id) return;
    state.detail = detail;
    renderSample();
  } catch (error) { say(error.message, "error"); }
  const next = state.shown[state.shown.indexOf(id) + 1];
  if (next && !state.cache[next]) load(next).catch(() => {});  // the next one is ready when j is pressed
}

function step(delta) {
  if (!state.shown.length) return undefined;
  const at = state.shown.indexOf(state.current);
  const to = at < 0 ? 0 : Math.max(0, Math.min(state.shown.length - 1, at + delta));
  return show(state.shown[to]);
}

const SUMMARY = ["objective", "labels", "decision", "edited", "others"];

function updateSample(summary) {
  const entry = state.byId[summary.sample_id];
  for (const key of SUMMARY) entry[key] = summary[key];
  delete state.cache[summary.sample_id];
}

async function decide(decision, reason) {
  const id = state.current;
  if (!id) return;
  try {
    const at = state.shown.indexOf(id);
    const result = await api(`/api/samples/${encodeURIComponent(id)}/decision`, { decision, reason });
    updateSample(result.sample);
    renderProgress(result.progress);
    say(`${id}: ${decision === "accept" ? "accepted" : "rejected (" + reason + ")"}`, "ok");
    relist(id);
    const next = state.shown.includes(id) ? state.shown[at + 1] : state.shown[at];
    await show(next || id);
  } catch (error) { say(error.message, "error"); }
}

async function undo() {
  try {
    const result = await api("/api/undo", {});
    const listing = await api("/api/samples");
    setSamples(listing);
    say(`undid the ${result.undone} of ${result.sample_id}`, "ok");
    await show(result.sample_id);
  } catch (error) { say(error.message, "error"); }
}

// -- dialogs -----------------------------------------------------------------------------------

function openReject() {
  if (!state.current) return;
  $("reasons").replaceChildren(...state.reasons.map((reason, i) => el("li", {},
    el("a", { href: "#", onclick: (event) => { event.preventDefault(); closeDialogs(); enqueue(() => decide("reject", reason)); } }, `${i + 1} ${reason}`))));
  $("reason-text").value = "";
  $("reject").hidden = false;
  $("reason-text").focus();
}

function openEditor() {
  if (!state.detail) return;
  $("edit-question").value = state.detail.question;
  $("edit-response").value = state.detail.response;
  $("editor").hidden = false;
  $("edit-response").focus();
}

function closeDialogs() {
  $("reject").hidden = true;
  $("editor").hidden = true;
  document.activeElement && document.activeElement.blur();
}

async function saveEdit() {
  const id = state.current;
  if (!id) return;
  say("re-scoring the edit…");
  try {
    const result = await api(`/api/samples/${encodeURIComponent(id)}/edit`, {
      question: $("edit-question").value, response: $("edit-response").value });
    closeDialogs();
    state.detail = result.detail;
    updateSample(result.detail);
    state.cache[id] = Promise.resolve(result.detail);
    renderProgress(result.progress);
    relist(id);
    renderSample();
    const s = result.detail.scores;
    say(s.objective === undefined ? `${id}: edit saved (${result.detail.rescore_note || "not re-scored"})`
      : `${id}: edit saved and re-scored: J ${s.objective.toFixed(3)}`, "ok");
  } catch (error) { say(error.message, "error"); }
}

// -- keys --------------------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  const inReject = !$("reject").hidden, inEditor = !$("editor").hidden;
  if (event.key === "Escape") { closeDialogs(); return; }
  if (inEditor) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); enqueue(saveEdit); }
    return;
  }
  if (inReject) {
    const typed = $("reason-text").value.trim();
    if (event.key === "Enter" && typed) { event.preventDefault(); closeDialogs(); enqueue(() => decide("reject", typed)); return; }
    const n = parseInt(event.key, 10);
    if (!typed && n >= 1 && n <= state.reasons.length) { event.preventDefault(); closeDialogs(); enqueue(() => decide("reject", state.reasons[n - 1])); }
    return;
  }
  const target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const actions = {
    j: () => step(1), k: () => step(-1), a: () => decide("accept", null), r: openReject, e: openEditor, u: undo,
    s: () => { state.showSupport = !state.showSupport; renderSample(); },
    v: () => { state.showVersions = !state.showVersions; renderSample(); },
  };
  if (actions[event.key]) { event.preventDefault(); enqueue(actions[event.key]); }
});

$("edit-save").addEventListener("click", () => enqueue(saveEdit));
$("edit-cancel").addEventListener("click", closeDialogs);
for (const id of ["f-culture", "f-topic", "f-label", "f-score", "f-decision"]) {
  $(id).addEventListener("change", () => { applyFilters(); if (!state.shown.includes(state.current)) show(state.shown[0]); });
}
$("filters").addEventListener("submit", (event) => event.preventDefault());

function setSamples(listing) {
  state.samples = listing.samples;
  state.byId = Object.fromEntries(listing.samples.map((s) => [s.sample_id, s]));
  state.cache = {};
  renderProgress(listing.progress);
  applyFilters();
}

async function start() {
  try {
    const listing = await api("/api/samples");
    state.reasons = listing.reasons;
    state.labels = listing.labels;
    fillSelect($("f-culture"), [...new Set(listing.samples.map((s) => s.culture))].sort());
    fillSelect($("f-topic"), [...new Set(listing.samples.map((s) => s.topic))].sort());
    fillSelect($("f-label"), Object.keys(listing.labels), SHORT);
    if (listing.warnings.length) {
      $("warnings").hidden = false;
      $("warnings").replaceChildren(...listing.warnings.map((w) => el("p", {}, w)));
    }
    setSamples(listing);
    await show(listing.start);
  } catch (error) { say(error.message, "error"); }
}

start();
