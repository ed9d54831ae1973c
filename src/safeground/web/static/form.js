// Report forms: the questions come from the field-form definitions (one per record field); this
// module turns the answers into draft reports, lets the user draw or upload polygons and pick
// points, saves drafts, reopens them (?report=ID), submits or withdraws them, and shows the
// register's problems next to their fields.
import * as maplibregl from "maplibre-gl";
import { TerraDraw, TerraDrawPolygonMode } from "terra-draw";
import { TerraDrawMapLibreGLAdapter } from "terra-draw-maplibre-gl-adapter";
import { api, boundsOf, draftFormLink, el, label, withdrawControls } from "./app.js";
import { addBaseMap } from "./basemap.js";
import { addRegisterLayers, tileCatalogue } from "./symbology.js";

let form;
let map;
let draw;
let drawTarget = null; // the geoshape question being drawn
let pickTarget = null; // the geopoint question waiting for a click
// The drafts saved so far: the main report, the report of each repeat entry that becomes a
// record of its own (items found, victims), kept with its entry, and the photos' attachments.
let mainDraft = null;
const entryDrafts = new WeakMap();
let photoDrafts = [];
// The files chosen and not attached yet, each with its caption box. A save attaches them one by
// one, and each leaves this list (for photoDrafts) as soon as it is attached: a save retried
// after a failed upload attaches only the files still here, never one twice.
let chosenPhotos = [];
// The main report is shown as it stands (submitted, approved, or a colleague's draft) while the
// user's drafts among its entries are edited.
let mainLocked = false;
// The controls withdrawing the reopened draft, while it is one.
let withdrawing = [];

export async function start() {
  form = document.getElementById("report-form");
  setUpRepeats();
  prefill();
  if (form.dataset.report) await reopen(form.dataset.report);
  await setUpMap();
  form.addEventListener("click", onClick);
  form.addEventListener("change", onFileChosen);
  document.getElementById("save-draft")?.addEventListener("click", () => save(false)); // none when read only
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save(true);
  });
  form.dataset.ready = "true";
}

// -- questions ----------------------------------------------------------------------------

function setUpRepeats() {
  for (const repeat of form.querySelectorAll("fieldset.repeat")) {
    const wanted = Math.max(1, Number(repeat.dataset.min || 0));
    for (let i = 0; i < wanted; i += 1) addEntry(repeat);
  }
}

function addEntry(repeat) {
  const entries = repeat.querySelector(".entries");
  const entry = repeat.querySelector("template").content.firstElementChild.cloneNode(true);
  entries.append(entry);
  renumber(repeat);
  return entry;
}

function renumber(repeat) {
  repeat.querySelectorAll(".entry").forEach((entry, i) => {
    entry.dataset.index = String(i);
    const saved = entryDrafts.get(entry);
    entry.querySelector(".entry-title").textContent = `${repeat.querySelector("legend").textContent}: entry ${i + 1}${saved ? ` (report ${saved.report_id})` : ""}`;
  });
}

/** Tie a saved report to its entry. The entry can no longer be removed: its draft would stay. */
function keepDraft(entry, report) {
  entryDrafts.set(entry, report);
  entry.querySelector("button.remove")?.remove();
  renumber(entry.closest("fieldset.repeat"));
}

function prefill() {
  const today = new Date().toISOString().slice(0, 10);
  const dateOfInformation = form.querySelector('[data-question="date_of_information"] input');
  if (dateOfInformation && !dateOfInformation.value) dateOfInformation.value = today;
  const values = JSON.parse(form.dataset.prefill || "{}");
  for (const [name, value] of Object.entries(values)) {
    const input = form.querySelector(`:scope > .question[data-question="${CSS.escape(name)}"] [name]`);
    if (input) input.value = value;
  }
}

/** The question's answer as the register wants it, or undefined when left empty. */
function answer(question) {
  const kind = question.dataset.kind;
  if (kind === "select_multiple") {
    const checked = [...question.querySelectorAll("input:checked")].map((i) => i.value);
    return checked.length ? checked : undefined;
  }
  if (kind === "geoshape") {
    const text = question.querySelector("textarea.geometry").value;
    return text ? JSON.parse(text) : undefined;
  }
  if (kind === "geopoint") {
    const lon = question.querySelector(".lon").value;
    const lat = question.querySelector(".lat").value;
    return lon !== "" && lat !== "" ? { type: "Point", coordinates: [Number(lon), Number(lat)] } : undefined;
  }
  const input = question.querySelector("[name]");
  const raw = input.value.trim();
  if (raw === "") return undefined;
  if (kind === "integer" || kind === "beneficiary") return Number.parseInt(raw, 10);
  if (kind === "decimal") return Number(raw);
  if (kind === "yes_no") return raw === "yes";
  if (kind === "id_list") return raw.split(/[\s,]+/).filter(Boolean);
  return raw;
}

/** Answers of the questions directly inside ``scope``, keyed by record field. */
function answers(scope) {
  const found = {};
  for (const question of scope.querySelectorAll(":scope > .question, :scope > fieldset.beneficiaries > .question")) {
    const value = answer(question);
    if (value === undefined) continue;
    const field = question.dataset.field;
    if (question.dataset.kind === "beneficiary") {
      found[field] = { ...(found[field] || {}), [question.dataset.groupKey]: value };
    } else {
      found[field] = value;
    }
  }
  return found;
}

/** The reports this form makes: the main one, and records of their own from repeats. */
function reportsToFile() {
  const top = answers(form);
  const { date_of_information: dateOfInformation, record_id: recordId, reason } = top;
  delete top.date_of_information;
  delete top.record_id;
  delete top.reason;
  const fixed = JSON.parse(form.dataset.fixed || "{}");
  const main = { record_type: form.dataset.recordType, changes: { ...fixed, ...top }, reason };
  if (recordId) main.record_id = recordId;
  const others = [];
  for (const repeat of form.querySelectorAll("fieldset.repeat")) {
    const filled = [...repeat.querySelectorAll(".entry")]
      .map((entry) => ({ entry, changes: answers(entry) }))
      .filter(({ changes }) => Object.keys(changes).length > 0);
    if (repeat.dataset.mode === "into") {
      main.changes[repeat.dataset.target] = filled.map(({ changes }) => changes);
    } else if (repeat.dataset.mode === "each") {
      filled.forEach(({ entry, changes }) => others.push({ entry, record_type: form.dataset.recordType, changes: { ...fixed, ...top, ...changes }, reason }));
    } else {
      filled.forEach(({ entry, changes }) => others.push({ entry, record_type: repeat.dataset.recordType, changes, reason, link: repeat.dataset.target }));
    }
  }
  return { dateOfInformation, main: form.dataset.createsMain === "true" ? main : null, others };
}

// -- reopening a saved draft --------------------------------------------------------------

/** Fill the form with a saved draft (and its entries' drafts), or say why it cannot be edited.
 * An entry's draft (a victim) reopens with the record it names (its accident), whatever state
 * that is in: the user's entries are edited while the main report stays as it is. */
async function reopen(reportId) {
  try {
    const opened = await api("GET", `/api/reports/${encodeURIComponent(reportId)}`);
    if (opened.form !== form.dataset.form) {
      const link = draftFormLink(opened);
      refuse(`Report ${reportId} (${label(opened.record_type)}) was not written in this form. `, link ? el("a", { href: link }, "Open it in its own form") : "No form edits it.");
      return;
    }
    const repeat = form.querySelector("fieldset.repeat[data-mode=link]");
    const entry = repeat && opened.record_type === repeat.dataset.recordType ? opened : null;
    const report = entry ? await creatingReport(entry.changes[repeat.dataset.target]) : opened;
    const mine = await myDraftsNaming(report);
    const linked = repeat ? mine.filter((r) => r.record_type === repeat.dataset.recordType) : [];
    photoDrafts = mine.filter((r) => r.record_type === "attachment");
    fill(report, linked);
    showPhotos();
    const entryRefusal = entry && whyNotEditable(entry);
    const mainRefusal = whyNotEditable(report);
    if (entryRefusal) refuse(...entryRefusal);
    else if (mainRefusal && !linked.length) refuse(...mainRefusal);
    else if (mainRefusal) lockMain(report);
    if (!whyNotEditable(opened)) offerWithdraw(opened);
  } catch (failure) {
    refuse(`Report ${reportId} cannot be opened: ${failure.message}`);
  }
}

/** Why the user may not edit the report here, or null. */
function whyNotEditable(report) {
  if (report.status !== "draft") {
    return [`Report ${report.report_id} is ${report.status}: only a draft can be edited. `, el("a", { href: `/records/${encodeURIComponent(report.record_id)}` }, `See ${report.record_id}`)];
  }
  if (report.author !== form.dataset.user) return [`Report ${report.report_id} is ${report.author}'s draft: only its author can edit it.`];
  return null;
}

/** Say why the report cannot be saved from here, and offer no saving. */
function refuse(...message) {
  const box = document.getElementById("form-error");
  box.replaceChildren(...message);
  box.hidden = false;
  readOnly();
}

function readOnly() {
  for (const control of form.elements) control.disabled = true;
  form.querySelector(".buttons").remove();
}

/** Offer to withdraw the reopened draft (a new record's, with the drafts naming it). */
function offerWithdraw(report) {
  withdrawing = withdrawControls(report, withdrawn);
  withdrawing[0].id = "withdraw-draft";
  form.querySelector(".buttons").append(...withdrawing);
}

/** The draft is withdrawn: there is nothing left to save or submit here. */
function withdrawn(answer) {
  const ids = [answer.report_id, ...answer.withdrawn_with];
  readOnly();
  const notice = document.getElementById("form-notice");
  notice.replaceChildren(
    `Withdrawn: report ${ids.join(", ")}. `,
    el("a", { href: "/reports?status=withdrawn" }, "See withdrawn reports"),
  );
  notice.hidden = false;
  form.dataset.withdrawn = ids.join(",");
}

/** Leave the main report as it is and let the user's drafts among its entries be edited. */
function lockMain(report) {
  mainLocked = true;
  for (const control of form.elements) {
    if (!control.closest("fieldset.repeat[data-mode=link], .buttons")) control.disabled = true;
  }
  const entries = form.querySelector("fieldset.repeat[data-mode=link] legend").textContent.toLowerCase();
  const whose = report.author === form.dataset.user ? "" : `, ${report.author}'s`;
  const notice = document.getElementById("form-notice");
  notice.replaceChildren(
    `Report ${report.report_id} is ${report.status}${whose}: it stays as it is. Your drafts among its ${entries} are edited and submitted here. `,
    el("a", { href: `/records/${encodeURIComponent(report.record_id)}` }, `See ${report.record_id}`),
  );
  notice.hidden = false;
}

/** The report that created a record (a victim's accident), as far as the user may read it. */
async function creatingReport(recordId) {
  const { entries } = await api("GET", `/api/records/${encodeURIComponent(recordId)}/history`);
  const created = entries.filter((r) => r.operation === "create").at(-1);
  if (!created) throw new Error(`no report creating ${recordId} that you may read`);
  return created;
}

/** The user's drafts naming the report's record: an accident's victims, a new record's photos. */
async function myDraftsNaming(report) {
  const { items } = await api("GET", `/api/reports/${report.report_id}/dependents`);
  return items.filter((r) => r.status === "draft" && r.author === form.dataset.user);
}

function fill(report, linked) {
  fillQuestions(form, report.changes);
  form.querySelector('[data-question="date_of_information"] input').value = report.date_of_information;
  form.querySelector('[data-question="reason"] [name]').value = report.reason || "";
  // The record a draft concerns is fixed when it is first saved.
  const recordId = form.querySelector(':scope > [data-question="record_id"] [name]');
  if (recordId) {
    recordId.value = report.operation === "update" ? report.record_id : "";
    recordId.disabled = true;
  }
  for (const repeat of form.querySelectorAll("fieldset.repeat")) {
    const mode = repeat.dataset.mode;
    const drafts = { into: [], each: [report], link: linked }[mode];
    const entries = mode === "into" ? report.changes[repeat.dataset.target] || [] : drafts.map((r) => r.changes);
    if (!entries.length) continue;
    repeat.querySelector(".entries").replaceChildren();
    entries.forEach((values, i) => {
      const entry = addEntry(repeat);
      fillQuestions(entry, values);
      if (drafts[i]) keepDraft(entry, drafts[i]);
    });
  }
  if (form.dataset.createsMain === "true") mainDraft = report;
}

function fillQuestions(scope, values) {
  for (const question of scope.querySelectorAll(":scope > .question, :scope > fieldset.beneficiaries > .question")) {
    const value = question.dataset.kind === "beneficiary" ? values[question.dataset.field]?.[question.dataset.groupKey] : values[question.dataset.field];
    if (value !== undefined && value !== null) setAnswer(question, value);
  }
}

/** Put a saved value back into its question: answer() read backwards. */
function setAnswer(question, value) {
  const kind = question.dataset.kind;
  if (kind === "select_multiple") {
    for (const box of question.querySelectorAll("input[type=checkbox]")) box.checked = value.includes(box.value);
  } else if (kind === "geoshape") {
    setShape(question, value);
  } else if (kind === "geopoint") {
    question.querySelector(".lon").value = String(value.coordinates[0]);
    question.querySelector(".lat").value = String(value.coordinates[1]);
  } else if (kind === "yes_no") {
    question.querySelector("[name]").value = value ? "yes" : "no";
  } else if (kind === "id_list") {
    question.querySelector("[name]").value = value.join(" ");
  } else {
    question.querySelector("[name]").value = String(value);
  }
}

// -- saving and submitting ----------------------------------------------------------------

async function save(submit) {
  clearProblems();
  const status = document.getElementById("form-status");
  const { dateOfInformation, main, others } = reportsToFile();
  if (!dateOfInformation) {
    showProblem({ field: "date_of_information", message: "give the date of information" });
    return;
  }
  status.textContent = submit ? "Submitting…" : "Saving…";
  const saved = [];
  try {
    if (main && !mainLocked) {
      mainDraft = await saveOne(mainDraft, main, dateOfInformation);
      saved.push({ report: mainDraft, scope: form });
    }
    for (const { entry, link, ...other } of others) {
      const body = { ...other, changes: { ...other.changes } };
      if (link) body.changes[link] = mainDraft.record_id;
      const report = await saveOne(entryDrafts.get(entry), body, dateOfInformation, entry);
      keepDraft(entry, report);
      saved.push({ report, scope: entry });
    }
    await attachPhotos(saved[0]?.report, others[0]?.changes || {});
    const photos = form.querySelector("fieldset.photos");
    saved.push(...photoDrafts.map((report) => ({ report, scope: photos })));
    if (submit) await submitTogether(saved);
  } catch (failure) {
    // A file not attached: the reports were saved all the same (as drafts), and the user is told.
    const kept = saved.map(({ report }) => report.report_id);
    status.textContent = failure.photo && kept.length ? `Draft saved: report ${kept.join(", ")}; not every file was attached (see Photos)${submit ? ", so nothing was submitted" : ""}.` : "";
    showFailure(failure);
    return;
  } finally {
    showPhotos();
  }
  const ids = saved.map(({ report }) => report.report_id);
  status.replaceChildren(
    submit ? `Submitted for review: report ${ids.join(", ")}. ` : `Draft saved: report ${ids.join(", ")}. `,
    el("a", { href: submit ? "/reports?status=submitted" : "/reports?status=draft" }, submit ? "See the queue" : "See your drafts"),
  );
  form.dataset.saved = ids.join(",");
  if (submit) {
    form.dataset.submitted = "true";
    withdrawing.forEach((control) => control.remove()); // no longer a draft
  }
}

/** Submit the form's drafts in one call, checked together: a victim passes with the accident it
 * names. A problem is shown in the entry whose record it names. */
async function submitTogether(saved) {
  const drafts = saved.filter(({ report }) => report.status === "draft");
  if (!drafts.length) return;
  try {
    const { items } = await api("POST", "/api/reports/submit", { report_ids: drafts.map(({ report }) => report.report_id) });
    items.forEach((submitted, i) => Object.assign(drafts[i].report, submitted));
  } catch (failure) {
    failure.scopes = new Map(drafts.map(({ report, scope }) => [report.record_id, scope]));
    throw failure;
  }
}

async function saveOne(existing, body, dateOfInformation, scope) {
  try {
    if (existing && existing.status === "draft") return await api("PATCH", `/api/reports/${existing.report_id}`, revisionOf(existing, body, dateOfInformation));
    if (existing) return existing; // submitted already: nothing more to save
    return await api("POST", "/api/reports", { ...body, date_of_information: dateOfInformation });
  } catch (failure) {
    failure.scope = scope || form;
    throw failure;
  }
}

/** A saved draft's revision. Fields the form does not ask for (a victim's phone, fields filed
 * through the API) stay as they were: PATCH replaces all the changes. */
function revisionOf(existing, body, dateOfInformation) {
  const asked = askedFields();
  const kept = Object.entries(existing.changes).filter(([field]) => !asked.has(field));
  const revision = { changes: { ...Object.fromEntries(kept), ...body.changes }, date_of_information: dateOfInformation };
  if ((body.reason || "") !== (existing.reason || "")) revision.reason = body.reason || "";
  return revision;
}

function askedFields() {
  const questions = [...form.querySelectorAll(".question"), ...[...form.querySelectorAll("template")].flatMap((t) => [...t.content.querySelectorAll(".question")])];
  const repeats = [...form.querySelectorAll("fieldset.repeat")].map((r) => r.dataset.target).filter(Boolean);
  return new Set([...questions.map((q) => q.dataset.field), ...repeats, ...Object.keys(JSON.parse(form.dataset.fixed || "{}"))]);
}

/** Attach the chosen files to the record of the form's main report (drafted with it while it
 * is new, they go with it), or, when each entry is a report of its own (items found), to the
 * hazardous area they name. A file attached leaves the chosen ones at once, so that when a later
 * one fails, saving again attaches only those not attached yet. A file the server already has
 * for that record, from the user and waiting (a save whose answer was lost, a file chosen twice)
 * or approved there (whoever attached it), is refused with 409 naming its attachment: it is shown
 * as attached, and the user told. */
async function attachPhotos(report, entryChanges) {
  const notice = form.querySelector("fieldset.photos .photo-notice");
  notice.replaceChildren();
  notice.hidden = true;
  if (!chosenPhotos.length || !report) return;
  const target = mainDraft?.record_id || entryChanges.hazard_id;
  if (!target) {
    throw Object.assign(new Error("photos need a record to go with"), { problems: [{ field: "photos", message: "name the hazardous area the items were found in" }] });
  }
  for (const chosen of [...chosenPhotos]) {
    if (!chosenPhotos.includes(chosen)) continue; // removed meanwhile
    const { file } = chosen;
    const caption = chosen.caption.value.trim() || undefined;
    const body = new FormData();
    body.append("file", file);
    if (caption) body.append("caption", caption); // left empty: no caption rather than a made-up one
    try {
      const attached = await api("POST", `/api/records/${encodeURIComponent(target)}/attachments`, body);
      photoDrafts.push({ ...attached, record_type: "attachment", changes: { filename: file.name, caption } });
    } catch (failure) {
      const existing = failure.status === 409 ? failure.body?.existing : null;
      if (!existing) throw photoFailure(file, failure);
      if (!photoDrafts.some((r) => r.report_id === existing.report_id)) {
        photoDrafts.push({ ...existing, record_type: "attachment", changes: { filename: existing.filename, caption: existing.caption } });
      }
      const unused = (caption || "") === (existing.caption || "") ? ""
        : existing.status === "approved" ? ` Your caption "${caption || ""}" was not used: ${existing.record_id} keeps ${existing.caption ? `its caption "${existing.caption}"` : "no caption"} (Edit caption on the page of ${target} changes it).`
          : ` Your caption "${caption || ""}" was not used: to attach the file with it, withdraw report ${existing.report_id} first.`;
      notice.append(el("span", {}, `${failure.message.replace(/\.$/, "")}.${unused}`), " ");
      notice.hidden = false;
    }
    unchoosePhoto(chosen);
  }
}

/** A failed upload, said at the photos: which file, why, and that the ones attached stay. */
function photoFailure(file, failure) {
  const waiting = chosenPhotos.length - 1;
  const rest = waiting ? ` It and the ${waiting} other file${waiting > 1 ? "s" : ""} not attached yet stay chosen: save again to attach them, or remove it.` : " It stays chosen: save again to attach it, or remove it.";
  // A fetch that got no answer (the network, the server restarting) says only "Failed to fetch".
  const why = failure.status ? failure.message.replace(/\.$/, "") : `no answer from the server (${failure.message})`;
  const message = `${file.name} was not attached: ${why}.${rest}${photoDrafts.length ? " The files listed as attached are kept, and are not attached again." : ""}`;
  return Object.assign(new Error(message), { problems: [{ field: "photos", message }], photo: true });
}

/** Add chosen files to those waiting to be attached, each with a caption box (what it shows)
 * and a button to remove it. */
function choosePhotos(files) {
  for (const file of files) {
    const caption = el("input", { type: "text", class: "caption", placeholder: "what it shows" });
    const chosen = { file, caption };
    chosen.item = el("li", {},
      el("label", {}, `Caption for ${file.name} `, caption),
      el("button", { type: "button", class: "remove-photo", "aria-label": `Remove ${file.name}`, onclick: () => unchoosePhoto(chosen) }, "Remove"));
    chosenPhotos.push(chosen);
  }
  showChosenPhotos();
}

function unchoosePhoto(chosen) {
  chosenPhotos = chosenPhotos.filter((c) => c !== chosen);
  showChosenPhotos();
}

function showChosenPhotos() {
  form.querySelector("fieldset.photos .chosen-photos").replaceChildren(...chosenPhotos.map((c) => c.item));
}

/** List the photos saved with the form (a reopened draft's too), with captions and reports. */
function showPhotos() {
  const list = form.querySelector("fieldset.photos .saved-photos");
  list.replaceChildren(...photoDrafts.map((r) => el("li", { dataset: { reportId: r.report_id } },
    `${r.changes.filename}${r.changes.caption ? ` — ${r.changes.caption}` : ""} (report ${r.report_id}, ${r.status})`)));
}

function clearProblems() {
  for (const p of form.querySelectorAll(".problem, #form-error")) {
    p.hidden = true;
    p.textContent = "";
  }
  for (const q of form.querySelectorAll(".has-problem")) q.classList.remove("has-problem");
}

function showFailure(failure) {
  const problems = failure.problems && failure.problems.length ? failure.problems : [{ field: null, message: failure.message }];
  const unplaced = problems.filter((p) => !showProblem(p, failure.scopes?.get(p.record) || failure.scope || form));
  if (unplaced.length || !failure.problems?.length) {
    const box = document.getElementById("form-error");
    box.replaceChildren(failure.message, ...unplaced.map((p) => el("div", {}, p.field ? `${p.field}: ${p.message}` : p.message)));
    box.hidden = false;
  }
  form.querySelector(".has-problem")?.scrollIntoView({ block: "center" });
}

/** Show a problem next to the question it names; false if no question matches. */
function showProblem(problem, scope = form) {
  if (!problem.field) return false;
  const parts = problem.field.replace(/\[(\d+)\]/g, ".$1").split(".").filter((p) => p !== "body" && p !== "changes");
  let place = null;
  const repeat = form.querySelector(`fieldset.repeat[data-target="${CSS.escape(parts[0])}"][data-mode=into]`);
  if (repeat) {
    const entry = repeat.querySelectorAll(".entry")[Number(parts[1])];
    // A rule naming the whole piece (overlap, outside the hazard) is about its polygon.
    const field = parts[2] || "geometry";
    place = (entry && entry.querySelector(`.question[data-field="${CSS.escape(field)}"]`)) || entry || repeat;
  } else if (parts[0] === "photos" || scope.classList?.contains("photos")) {
    place = form.querySelector("fieldset.photos");
  } else {
    const within = scope.classList?.contains("entry") ? scope : form;
    place = within.querySelector(`.question[data-field="${CSS.escape(parts[0])}"]`) || form.querySelector(`.question[data-field="${CSS.escape(parts[0])}"]`);
  }
  if (!place) return false;
  const box = place.querySelector(":scope > .problem") || place.appendChild(el("p", { class: "problem", role: "alert" }));
  box.textContent = box.textContent ? `${box.textContent} ${problem.message}` : problem.message;
  box.hidden = false;
  place.classList.add("has-problem");
  return true;
}

// -- map: drawing polygons, picking points, uploading GeoJSON --------------------------------

async function setUpMap() {
  const container = document.getElementById("form-map");
  map = new maplibregl.Map({
    container,
    style: { version: 8, sources: {}, layers: [{ id: "bg", type: "background", paint: { "background-color": "#dfe7ea" } }] },
    bounds: await initialBounds(),
    fitBoundsOptions: { padding: 30, maxZoom: 17 },
    attributionControl: { compact: true }, // the base map's licence may require its credit
  });
  window.safegroundFormMap = map;
  map.addControl(new maplibregl.NavigationControl(), "top-right");
  await map.once("load");
  // The configured base map, as on the map page: one draws a polygon by what is on the ground.
  const hasBase = await addBaseMap(map, JSON.parse(container.dataset.baseMap));
  addRegisterLayers(map, await tileCatalogue(), { plainBackground: !hasBase, layers: ["admin_area", "hazardous_area", "processed_land", "task"] });
  map.addSource("answers", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  map.addLayer({ id: "answers-fill", type: "fill", source: "answers", filter: ["==", ["geometry-type"], "Polygon"], paint: { "fill-color": "#0050b3", "fill-opacity": 0.25 } });
  map.addLayer({ id: "answers-line", type: "line", source: "answers", paint: { "line-color": "#0050b3", "line-width": 2.5 } });
  map.addLayer({ id: "answers-point", type: "circle", source: "answers", filter: ["==", ["geometry-type"], "Point"], paint: { "circle-radius": 6, "circle-color": "#0050b3" } });
  refreshAnswers();
  draw = new TerraDraw({
    adapter: new TerraDrawMapLibreGLAdapter({ map }),
    modes: [new TerraDrawPolygonMode()],
  });
  draw.start();
  draw.setMode("static");
  draw.on("finish", (id) => {
    const feature = draw.getSnapshotFeature(id);
    draw.clear();
    draw.setMode("static");
    if (drawTarget && feature) setShape(drawTarget, feature.geometry);
    drawTarget = null;
    document.getElementById("draw-help").textContent = "Polygon drawn.";
  });
  map.on("click", (event) => {
    if (!pickTarget) return;
    pickTarget.querySelector(".lon").value = event.lngLat.lng.toFixed(6);
    pickTarget.querySelector(".lat").value = event.lngLat.lat.toFixed(6);
    pickTarget = null;
    map.getCanvas().style.cursor = "";
    refreshAnswers();
  });
}

async function initialBounds() {
  const answered = answeredGeometries();
  if (answered.length) return boundsOf(answered);
  const hazard = answers(form).hazard_id || JSON.parse(form.dataset.prefill || "{}").hazard_id;
  if (hazard) {
    try {
      const record = await api("GET", `/api/records/${encodeURIComponent(hazard)}`);
      if (record.geometry) return boundsOf([record.geometry]);
    } catch {
      // an unknown hazard is reported when the draft is saved
    }
  }
  const [minX, minY, maxX, maxY] = form.dataset.bounds.split(",").map(Number);
  return [[minX, minY], [maxX, maxY]];
}

function onClick(event) {
  const button = event.target.closest("button");
  if (!button) return;
  const question = button.closest(".question");
  if (button.classList.contains("draw")) {
    drawTarget = question;
    draw.setMode("polygon");
    document.getElementById("draw-help").textContent = "Click the corners on the map; click the first corner again (or press Enter) to close the polygon.";
    document.getElementById("form-map").scrollIntoView({ block: "nearest" });
  } else if (button.classList.contains("clear")) {
    setShape(question, null);
  } else if (button.classList.contains("pick")) {
    pickTarget = question;
    map.getCanvas().style.cursor = "crosshair";
  } else if (button.classList.contains("add")) {
    addEntry(button.closest("fieldset.repeat"));
  } else if (button.classList.contains("remove")) {
    const repeat = button.closest("fieldset.repeat");
    button.closest(".entry").remove();
    renumber(repeat);
    refreshAnswers();
  }
}

async function onFileChosen(event) {
  const input = event.target;
  if (input.classList.contains("geojson-file") && input.files.length) {
    const question = input.closest(".question");
    try {
      setShape(question, polygonFromGeoJSON(JSON.parse(await input.files[0].text())));
    } catch (failure) {
      showProblem({ field: question.dataset.field, message: `${input.files[0].name}: ${failure.message}` }, question.closest(".entry") || form);
    }
    input.value = "";
  } else if (input.id === "photos") {
    choosePhotos(input.files);
    input.value = ""; // kept in the list below; the input chooses more
  } else if (input.closest(".kind-geopoint")) {
    refreshAnswers();
  }
}

/** The one polygon in a GeoJSON file (geometry, feature or collection of one feature). */
function polygonFromGeoJSON(data) {
  let geometry = data;
  if (data.type === "FeatureCollection") {
    if (data.features.length !== 1) throw new Error(`has ${data.features.length} features; give exactly one polygon`);
    geometry = data.features[0].geometry;
  } else if (data.type === "Feature") {
    geometry = data.geometry;
  }
  if (!geometry || !["Polygon", "MultiPolygon"].includes(geometry.type)) {
    throw new Error(`is a ${geometry ? geometry.type : "file without geometry"}, not a polygon`);
  }
  return geometry;
}

function setShape(question, geometry) {
  question.querySelector("textarea.geometry").value = geometry ? JSON.stringify(geometry) : "";
  const rings = geometry ? (geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates) : [];
  const corners = rings.reduce((n, polygon) => n + polygon[0].length - 1, 0);
  question.querySelector(".shape-status").textContent = geometry ? `${geometry.type} with ${corners} corners.` : "No polygon yet.";
  question.querySelector(".clear").hidden = !geometry;
  question.dataset.hasShape = geometry ? "true" : "false";
  refreshAnswers();
  // A reopened draft's shapes are filled in before there is a map: it opens around them.
  if (geometry && map) map.fitBounds(boundsOf([geometry]), { padding: 60, maxZoom: 17, duration: 0 });
}

function answeredGeometries() {
  return [...form.querySelectorAll(".kind-geoshape, .kind-geopoint")].map(answer).filter(Boolean);
}

/** Show every polygon and point answered so far on the map. */
function refreshAnswers() {
  const features = answeredGeometries().map((geometry) => ({ type: "Feature", geometry, properties: {} }));
  map?.getSource("answers")?.setData({ type: "FeatureCollection", features });
}
