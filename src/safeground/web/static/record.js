// A record's page: current view, land-release balance, linked records, attachments, history.
import * as maplibregl from "maplibre-gl";
import { api, boundsOf, draftFormLink, el, formatArea, label } from "./app.js";
import { addBaseMap } from "./basemap.js";
import { addRegisterLayers, tileCatalogue } from "./symbology.js";

const LEDGER = ["estimated_area_m2", "cancelled_m2", "reduced_m2", "cleared_m2", "remaining_m2"];
const BOOKKEEPING = new Set(["record_type", "version", "updated_at", "last_report_id", "source", "source_key", "released_m2"]);
const FORM_FOR_HAZARD = [
  ["ts", "Technical survey"],
  ["clearance_progress", "Clearance progress"],
  ["clearance_completion", "Clearance completion"],
  ["items_found", "Items found"],
];

export async function start() {
  const root = document.getElementById("record");
  const id = root.dataset.recordId;
  const path = `/api/records/${encodeURIComponent(id)}`;
  const error = root.querySelector("header .error");
  const reports = api("GET", `${path}/history`);
  const history = reports.then(showHistory, (e) => showProblem("history", e));
  try {
    showRecord(await api("GET", path));
  } catch (failure) {
    // A record waiting for its first approval has no current view yet, but has its reports;
    // files attached to it are drafted, and wait with them.
    error.textContent = failure.message;
    error.hidden = false;
    document.getElementById("links").replaceChildren();
    await history;
    const { entries } = await reports.catch(() => ({ entries: [] }));
    const awaiting = entries.find((r) => r.operation === "create" && ["draft", "submitted"].includes(r.status));
    if (awaiting) {
      await showWaitingAttachments(awaiting);
      setUpAttach(id);
    }
    return;
  }
  await Promise.all([
    api("GET", `${path}/links`).then(showLinks, (e) => showProblem("links", e)),
    history,
  ]);
  setUpAttach(id);
}

function showProblem(where, failure) {
  document.getElementById(where).replaceChildren(el("p", { class: "error" }, failure.message));
}

// Geometries in a history diff are hex WKB: say what they are rather than print them.
const HEX_WKB = /^(00|01)[0-9A-Fa-f]{40,}$/;

function value(v) {
  if (v === null || v === undefined || v === "") return "—";
  if (Array.isArray(v)) return v.length ? v.map((x) => (x && typeof x === "object" ? value(x) : label(x))).join("; ") : "—";
  if (typeof v === "string" && HEX_WKB.test(v)) return "geometry";
  if (typeof v === "object") {
    if (Object.keys(v).length === 0) return "—";
    if (v.type && v.coordinates) return `${v.type}`;
    return Object.entries(v).map(([k, x]) => `${label(k)}: ${x && typeof x === "object" ? value(x) : x}`).join(", ");
  }
  if (typeof v === "string" && /^[A-Z]{2,3}-[A-Z]+-\d{4}-\d+$/.test(v)) return recordLink(v);
  return typeof v === "string" && /^[a-z_]+$/.test(v) ? label(v) : String(v);
}

function recordLink(id) {
  return el("a", { href: `/records/${encodeURIComponent(id)}` }, id);
}

function showRecord(record) {
  document.getElementById("record-type").textContent = label(record.record_type);
  if (record.name) document.getElementById("record-title").textContent = `${record.name} · ${record.record_id}`;
  document.title = `${record.record_id} · Safeground`;
  const ledger = document.getElementById("ledger");
  if (record.record_type === "hazardous_area") {
    ledger.hidden = false;
    ledger.querySelector("dl").replaceChildren(
      ...LEDGER.flatMap((key) => [
        el("dt", {}, label(key.replace("_m2", "").replace("_area", ""))),
        el("dd", { dataset: { field: key, value: record[key] ?? "" } }, formatArea(record[key])),
      ]),
    );
    const actions = document.getElementById("record-actions");
    actions?.replaceChildren(
      "Report on this area: ",
      ...FORM_FOR_HAZARD.map(([form, title]) =>
        el("a", { class: "button", href: `/reports/new?form=${form}&hazard_id=${encodeURIComponent(record.record_id)}` }, title)),
    );
  }
  if (record.record_type === "hazardous_area" || record.record_type === "task") {
    api("GET", `/api/records/${encodeURIComponent(record.record_id)}/risk`).then(showRisk, () => {}); // none: no map covers it
  }
  const rows = Object.entries(record)
    .filter(([key]) => !BOOKKEEPING.has(key) && !LEDGER.includes(key) && key !== "geometry")
    .map(([key, v]) => el("tr", {}, el("th", { scope: "row" }, label(key)), el("td", { dataset: { field: key } }, value(v))));
  document.querySelector("#fields tbody").replaceChildren(...rows);
  if (record.geometry) showGeometry(record);
}

/** Mean and max risk from the risk map attached last over the record (a model's output, not a
 *  field), and when several maps cover it, each map's scores. */
function showRisk(score) {
  const box = document.getElementById("risk");
  box.hidden = false;
  box.querySelector("dl").replaceChildren(
    el("dt", {}, "Mean"), el("dd", { dataset: { field: "mean_risk" } }, score.mean_risk.toFixed(3)),
    el("dt", {}, "Max"), el("dd", { dataset: { field: "max_risk" } }, score.max_risk.toFixed(3)),
  );
  box.querySelector("p").textContent =
    `Model ${score.model_version}, map of ${score.map_date}; over ${score.cells} cells (0 lower, 1 higher).`;
  const maps = score.maps || [];
  const table = box.querySelector("table.risk-maps");
  table.hidden = maps.length < 2;
  table.querySelector("tbody").replaceChildren(...maps.map((m) =>
    el("tr", { dataset: { map: m.map_sha256 } },
      el("td", {}, m.map_date), el("td", {}, m.model_version),
      el("td", { dataset: { field: "mean_risk" } }, m.mean_risk.toFixed(3)),
      el("td", { dataset: { field: "max_risk" } }, m.max_risk.toFixed(3)),
      el("td", {}, String(m.cells)), el("td", {}, m.attached_at.slice(0, 10)))));
}

async function showGeometry(record) {
  const container = document.getElementById("record-map");
  container.hidden = false;
  const map = new maplibregl.Map({
    container,
    style: { version: 8, sources: {}, layers: [{ id: "bg", type: "background", paint: { "background-color": "#dfe7ea" } }] },
    bounds: bounds(record.geometry),
    fitBoundsOptions: { padding: 40, maxZoom: 16 },
    attributionControl: { compact: true }, // the base map's licence may require its credit
  });
  window.safegroundRecordMap = map; // for the browser tests and the curious
  await map.once("load");
  const hasBase = await addBaseMap(map, JSON.parse(container.dataset.baseMap));
  addRegisterLayers(map, await tileCatalogue(), { plainBackground: !hasBase, layers: ["admin_area", "hazardous_area", "processed_land", "eo_item", "accident"] });
  map.addSource("this", { type: "geojson", data: record.geometry });
  const point = record.geometry.type === "Point";
  map.addLayer(point
    ? { id: "this", type: "circle", source: "this", paint: { "circle-radius": 8, "circle-color": "rgba(0,0,0,0)", "circle-stroke-color": "#0050b3", "circle-stroke-width": 3 } }
    : { id: "this", type: "line", source: "this", paint: { "line-color": "#0050b3", "line-width": 3 } });
}

function bounds(geometry) {
  const [[minX, minY], [maxX, maxY]] = boundsOf([geometry]);
  const pad = minX === maxX ? 0.005 : 0;
  return [[minX - pad, minY - pad], [maxX + pad, maxY + pad]];
}

function showLinks(links) {
  const items = [
    ...links.references.map((r) => el("li", {}, `${label(r.field)}: `, recordLink(r.record_id), ` (${label(r.record_type)})`)),
    ...links.referenced_by.map((r) => el("li", {}, `${label(r.record_type)} `, recordLink(r.record_id), ` names it as ${label(r.field)}`)),
    ...links.links.map((l) => el("li", {}, `${label(l.relation)}: `, recordLink(l.from_id), " → ", recordLink(l.to_id))),
  ];
  document.getElementById("links").replaceChildren(items.length ? el("ul", {}, items) : el("p", { class: "muted" }, "No linked records."));
  const canDraft = document.getElementById("record").dataset.canDraft === "true";
  const attachments = links.attachments.map((a) => {
    const image = a.media_type.startsWith("image/");
    return el("li", { dataset: { recordId: a.record_id } },
      image ? el("img", { src: a.content_url, alt: a.caption || a.filename, loading: "lazy" }) : null,
      el("a", { href: a.content_url }, a.filename),
      ` ${a.caption ? `— ${a.caption} ` : ""}(${Math.ceil(a.size_bytes / 1024)} KiB, SHA-256 ${a.sha256.slice(0, 12)}…)`,
      canDraft ? captionEditor(a) : null);
  });
  document.getElementById("attachments").replaceChildren(...(attachments.length ? attachments : [el("li", { class: "muted" }, "None.")]));
}

/** "Edit caption" on a saved file: an update report on its attachment record, drafted and
 * submitted for review at once, that changes the caption once approved, like any other change
 * (a reviewer's too: nobody approves their own). Until then the caption shown stays. */
function captionEditor(attachment) {
  const input = el("input", { name: "caption", value: attachment.caption || "", placeholder: "what it shows", "aria-label": `Caption of ${attachment.filename}`, oninput: () => { error.hidden = true; } });
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const status = el("p", { class: "notice caption-status", role: "status", hidden: true });
  const open = el("button", { type: "button", class: "edit-caption", onclick: () => { open.hidden = true; editor.hidden = false; input.focus(); } }, "Edit caption");
  const send = el("button", { type: "submit" }, "Submit for review");
  const editor = el("form", { class: "caption-editor", hidden: true },
    el("label", {}, "Caption ", input), " ",
    send, " ",
    el("button", { type: "button", class: "cancel", onclick: () => { editor.hidden = true; open.hidden = false; error.hidden = true; } }, "Cancel"),
    error);
  editor.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const caption = input.value.trim();
    if (caption === (attachment.caption || "")) {
      error.textContent = "The caption is unchanged.";
      error.hidden = false;
      return;
    }
    let draft = null;
    send.disabled = true; // a double click files one report
    try {
      draft = await api("POST", "/api/reports", {
        record_type: "attachment",
        record_id: attachment.record_id,
        operation: "update",
        changes: { caption: caption || null }, // emptied: no caption
        date_of_information: await captionDate(attachment.record_id),
      });
      await api("POST", `/api/reports/${draft.report_id}/submit`);
    } catch (failure) {
      error.textContent = draft ? `Report ${draft.report_id} is saved as your draft but was not submitted: ${failure.message}` : failure.message;
      error.hidden = false;
      return;
    } finally {
      send.disabled = false;
    }
    editor.hidden = true;
    open.hidden = false;
    status.replaceChildren(
      `Caption ${caption ? `“${caption}”` : "removal"} submitted for review: report ${draft.report_id}; the caption changes once it is approved. `,
      el("a", { href: "/reports?status=submitted" }, "See the queue"));
    status.hidden = false;
  });
  return [" ", open, editor, status];
}

/** A caption change's date of information: today, or the date of the attachment's latest
 * approved report if that is later (the server dated the upload by its own clock, which may be
 * ahead of the browser's: a change dated before the attachment existed is refused). */
async function captionDate(recordId) {
  const today = new Date().toISOString().slice(0, 10);
  const { entries } = await api("GET", `/api/records/${encodeURIComponent(recordId)}/history`);
  return entries.filter((e) => e.status === "approved").map((e) => e.date_of_information)
    .reduce((latest, day) => (day > latest ? day : latest), today);
}

/** The attachments waiting with a new record's report, each with its own report. */
async function showWaitingAttachments(report) {
  const { items } = await api("GET", `/api/reports/${report.report_id}/dependents`);
  const attachments = items.filter((r) => r.record_type === "attachment").map((r) =>
    el("li", { dataset: { reportId: r.report_id } },
      el("a", { href: `/api/reports/${r.report_id}/content` }, r.changes.filename),
      `${r.changes.caption ? ` — ${r.changes.caption}` : ""} (report ${r.report_id}, ${r.status})`));
  document.getElementById("attachments").replaceChildren(...(attachments.length ? attachments : [el("li", { class: "muted" }, "None.")]));
}

function showHistory(found) {
  const me = document.getElementById("record").dataset.user;
  const entries = found.entries.map((entry) => {
    const diff = Object.entries(entry.diff || {});
    const edit = entry.status === "draft" && entry.author === me ? draftFormLink(entry) : null;
    return el("li", { class: `report status-${entry.status}`, dataset: { reportId: entry.report_id } },
      el("p", { class: "headline" },
        el("span", { class: `badge ${entry.status}` }, label(entry.status)),
        ` ${label(entry.operation)} report ${entry.report_id}, information of ${entry.date_of_information}`),
      el("p", {}, `By ${entry.author}${entry.submitted_at ? `, submitted ${when(entry.submitted_at)}` : ""}${entry.reason ? `: “${entry.reason}”` : ""}`),
      entry.reviewed_by
        ? el("p", {}, `${label(entry.status)} by ${entry.reviewed_by} on ${when(entry.reviewed_at)}${entry.review_reason ? `: “${entry.review_reason}”` : ""}`)
        : null,
      entry.notice ? el("p", { class: "notice" }, entry.notice) : null,
      diff.length
        ? el("table", { class: "diff" },
          el("thead", {}, el("tr", {}, el("th", {}, "Field"), el("th", {}, "Before"), el("th", {}, "After"))),
          el("tbody", {}, diff.map(([key, change]) => el("tr", {}, el("th", {}, label(key)), el("td", {}, value(change.old)), el("td", {}, value(change.new))))))
        : entry.status === "approved" ? null : el("p", { class: "muted" }, "Proposed changes: ", Object.keys(entry.changes || {}).map(label).join(", ") || "none"),
      edit ? el("p", {}, el("a", { class: "button edit", href: edit }, "Edit draft")) : null,
    );
  });
  document.getElementById("history").replaceChildren(...entries);
  const changes = found.status_changes || [];
  if (changes.length) {
    document.getElementById("status-changes").replaceChildren(
      el("h3", {}, "Status and classification changes"),
      el("table", { class: "diff" },
        el("thead", {}, el("tr", {}, ["Date", "What", "From", "To", "Why", "Cause"].map((h) => el("th", {}, h)))),
        el("tbody", {}, changes.map((c) => el("tr", {},
          el("td", {}, c.changed_on), el("td", {}, label(c.attribute)), el("td", {}, label(c.old_value)),
          el("td", {}, label(c.new_value)), el("td", {}, c.reason), el("td", {}, c.cause))))));
  }
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" }) : "—";
}

function setUpAttach(id) {
  const form = document.getElementById("attach-form");
  if (!form) return;
  const error = form.querySelector(".error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      await api("POST", `/api/records/${encodeURIComponent(id)}/attachments`, new FormData(form));
      window.location.reload();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  });
}
