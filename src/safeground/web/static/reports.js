// The review queue: reviewers and the IM officer approve or reject (with a reason) submitted
// reports, an accident with its victims in one go; everyone sees their drafts, to edit
// (reopened in their form) or submit them.
import { api, draftFormLink, el, label } from "./app.js";

let root;

export function start() {
  root = document.getElementById("reports");
  const wanted = new URLSearchParams(window.location.search).get("status") || "submitted";
  for (const tab of root.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => show(tab.dataset.status));
  }
  show(wanted);
}

async function show(status) {
  for (const tab of root.querySelectorAll(".tabs button")) {
    tab.setAttribute("aria-pressed", String(tab.dataset.status === status));
  }
  const list = document.getElementById("report-list");
  try {
    const found = await api("GET", `/api/reports?status=${status}`);
    const reports = Array.isArray(found) ? found : found.items || found.reports || [];
    list.replaceChildren(reports.length
      ? el("ul", { class: "queue" }, reports.map((r) => card(r, status, reports)))
      : el("p", { class: "muted" }, `No ${label(status).toLowerCase()} reports.`));
  } catch (failure) {
    list.replaceChildren(el("p", { class: "error" }, failure.message));
  }
}

function summary(changes) {
  const filled = Object.entries(changes || {}).filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length) && !(typeof v === "object" && !Object.keys(v).length));
  return filled.map(([key, v]) => {
    let shown;
    if (v && typeof v === "object" && v.type && v.coordinates) shown = v.type;
    else if (Array.isArray(v)) shown = v.map((x) => (x && typeof x === "object" ? (x.land_type ? `${label(x.land_type)} ${x.geometry?.type || "polygon"}` : "…") : label(x))).join(", ");
    else if (v && typeof v === "object") shown = "…";
    else if (typeof v === "string" && /^[A-Z]{2,3}-[A-Z]+-\d{4}-\d+$/.test(v)) shown = el("a", { href: `/records/${encodeURIComponent(v)}` }, v);
    else shown = label(v);
    return el("li", {}, el("strong", {}, `${label(key)}: `), shown);
  });
}

/** The victims listed with an accident's report, which name its record. */
function victimsOf(report, reports) {
  if (report.record_type !== "accident") return [];
  return reports.filter((r) => r.record_type === "victim" && r.changes.accident_id === report.record_id).sort((a, b) => a.report_id - b.report_id);
}

function card(report, status, reports) {
  const canApprove = root.dataset.canApprove === "true";
  const mine = report.author === root.dataset.user;
  const item = el("li", { class: "card", dataset: { reportId: report.report_id, recordId: report.record_id } },
    el("h2", {}, `Report ${report.report_id}: ${label(report.operation)} ${label(report.record_type)} `,
      el("a", { href: `/records/${encodeURIComponent(report.record_id)}` }, report.record_id)),
    el("p", { class: "muted" }, `By ${report.author}, information of ${report.date_of_information}`,
      report.submitted_at ? `, submitted ${report.submitted_at.slice(0, 16).replace("T", " ")}` : "",
      report.review_reason ? ` — ${label(report.status)} by ${report.reviewed_by}: “${report.review_reason}”` : ""),
    el("ul", { class: "changes" }, summary(report.changes)),
  );
  const error = el("p", { class: "error", role: "alert", hidden: true });
  if (status === "submitted" && canApprove) {
    const reason = el("input", { name: "reason", placeholder: "Reason (required to reject)", "aria-label": "Reason" });
    const victims = victimsOf(report, reports);
    const accident = reports.find((r) => r.record_type === "accident" && r.record_id === report.changes.accident_id);
    if (accident) item.append(el("p", { class: "muted" }, `Its accident is report ${accident.report_id}: approve that first, or with its victims there.`));
    item.append(el("div", { class: "decide" },
      reason,
      el("button", { type: "button", class: "approve", onclick: () => decide(report, "approve", reason, error) }, "Approve"),
      victims.length ? el("button", { type: "button", class: "approve-with-victims", onclick: () => approveWithVictims(report, victims, reason, error) }, `Approve with its victims (report ${victims.map((v) => v.report_id).join(", ")})`) : null,
      el("button", { type: "button", class: "reject danger", onclick: () => decide(report, "reject", reason, error) }, "Reject")));
  }
  if (status === "draft" && mine) {
    const edit = draftFormLink(report);
    item.append(el("div", { class: "decide" },
      edit ? el("a", { class: "button edit", href: edit }, "Edit") : null,
      el("button", { type: "button", class: "submit", onclick: () => submitDraft(report, error) }, "Submit for review")));
  }
  item.append(error);
  return item;
}

async function decide(report, action, reasonInput, error) {
  const reason = reasonInput.value.trim();
  error.hidden = true;
  if (action === "reject" && !reason) {
    error.textContent = "Say why the report is rejected.";
    error.hidden = false;
    reasonInput.focus();
    return;
  }
  try {
    await api("POST", `/api/reports/${report.report_id}/${action}`, reason ? { reason } : {});
    done(report, action === "approve" ? "approved" : "rejected");
  } catch (failure) {
    showError(error, failure);
  }
}

/** Approve an accident with its victims still waiting in the queue, all in one transaction. */
async function approveWithVictims(accident, victims, reasonInput, error) {
  const reason = reasonInput.value.trim();
  const waiting = victims.filter((v) => !root.querySelector(`li[data-report-id="${v.report_id}"] .done`));
  const reports = [accident, ...waiting];
  error.hidden = true;
  try {
    await api("POST", "/api/reports/approve", { report_ids: reports.map((r) => r.report_id), ...(reason ? { reason } : {}) });
    for (const report of reports) done(report, "approved");
  } catch (failure) {
    showError(error, failure);
  }
}

function done(report, verb) {
  root.querySelector(`li[data-report-id="${report.report_id}"]`).replaceChildren(el("p", { class: "done" },
    `Report ${report.report_id} ${verb}. `,
    el("a", { href: `/records/${encodeURIComponent(report.record_id)}` }, `Open ${report.record_id}`)));
}

function showError(error, failure) {
  error.replaceChildren(failure.message, ...failure.problems.map((p) => el("div", {}, p.field ? `${p.field}: ${p.message}` : p.message)));
  error.hidden = false;
}

async function submitDraft(report, error) {
  error.hidden = true;
  try {
    await api("POST", `/api/reports/${report.report_id}/submit`);
    show("draft");
  } catch (failure) {
    error.replaceChildren(failure.message);
    error.hidden = false;
  }
}
