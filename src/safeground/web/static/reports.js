// The review queue: reviewers and the IM officer approve or reject (with a reason) submitted
// reports, a new record with the reports naming it (an accident's victims, its photos) in one go;
// everyone sees their drafts, to edit (reopened in their form), submit or withdraw them, with
// theirs; an administrator withdraws the drafts of disabled accounts (with a reason).
import { api, draftFormLink, el, label, withdrawControls } from "./app.js";

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
      ? el("ul", { class: "queue" }, reports.map((r) => card(r, status)))
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

function card(report, status) {
  const canApprove = root.dataset.canApprove === "true";
  const mine = report.author === root.dataset.user;
  const item = el("li", { class: "card", dataset: { reportId: report.report_id, recordId: report.record_id } },
    el("h2", {}, `Report ${report.report_id}: ${label(report.operation)} ${label(report.record_type)} `,
      el("a", { href: `/records/${encodeURIComponent(report.record_id)}` }, report.record_id)),
    el("p", { class: "muted" }, `By ${report.author}, information of ${report.date_of_information}`,
      report.submitted_at ? `, submitted ${report.submitted_at.slice(0, 16).replace("T", " ")}` : "",
      report.review_reason || report.status === "withdrawn"
        ? ` — ${label(report.status)} by ${report.reviewed_by}${report.review_reason ? `: “${report.review_reason}”` : ""}`
        : ""),
    el("ul", { class: "changes" }, summary(report.changes)),
  );
  const error = el("p", { class: "error", role: "alert", hidden: true });
  if (status === "submitted" && canApprove) {
    const reason = el("input", { name: "reason", placeholder: "Reason (required to reject)", "aria-label": "Reason" });
    const approve = el("button", { type: "button", class: "approve", onclick: () => decide(report, "approve", reason, error) }, "Approve");
    const buttons = el("div", { class: "decide" }, reason, approve,
      el("button", { type: "button", class: "reject danger", onclick: () => decide(report, "reject", reason, error) }, "Reject"));
    item.append(buttons);
    withDependents(report, (r) => r.status === "submitted", (waiting) => {
      buttons.before(dependentsList(waiting, "Waiting with it (rejecting it rejects them too):"));
      approve.after(el("button", { type: "button", class: "approve-with-dependents", onclick: () => approveTogether(report, waiting, reason, error) },
        `Approve with the reports naming it (report ${waiting.map((r) => r.report_id).join(", ")})`));
      for (const other of waiting) {
        root.querySelector(`li.card[data-report-id="${other.report_id}"] h2`)?.after(el("p", { class: "muted goes-with" },
          `It names ${report.record_id}, new in report ${report.report_id}: approve that first, or with it there.`));
      }
    });
  }
  if (status === "draft" && mine) {
    const edit = draftFormLink(report);
    let together = [report];
    const submit = el("button", { type: "button", class: "submit", onclick: () => submitDrafts(together, error) }, "Submit for review");
    const [withdraw, confirm] = withdrawControls(report, () => show("draft"));
    const buttons = el("div", { class: "decide" }, edit ? el("a", { class: "button edit", href: edit }, "Edit") : null, submit, withdraw);
    item.append(buttons, confirm);
    withDependents(report, (r) => r.status === "draft" && r.author === report.author, (drafts) => {
      together = [report, ...drafts];
      buttons.before(dependentsList(drafts, "Your drafts naming it, submitted or withdrawn with it:"));
      submit.textContent = `Submit for review with report ${drafts.map((r) => r.report_id).join(", ")}`;
    });
  }
  if (status === "draft" && !mine && disabledAccounts().has(report.author)) {
    // An administrator's: nobody else can withdraw a disabled account's draft.
    const [withdraw, confirm] = withdrawControls(report, () => show("draft"), report.author);
    item.append(el("p", { class: "muted on-behalf" }, `${report.author}'s account is disabled: withdraw the draft on their behalf, saying why.`),
      el("div", { class: "decide" }, withdraw), confirm);
  }
  item.append(error);
  return item;
}

/** The disabled accounts, whose drafts an administrator may withdraw (the page lists them for
 * administrators only). */
function disabledAccounts() {
  return new Set((root.dataset.disabledAccounts || "").split(" ").filter(Boolean));
}

/** Call ``show`` with the reports naming the record this one creates that pass ``wanted``
 * (an accident's victims, a new area's photos), if there are any: they go with it. */
async function withDependents(report, wanted, show) {
  if (report.operation !== "create") return; // an existing record's: what names it goes on its own
  try {
    const { items } = await api("GET", `/api/reports/${report.report_id}/dependents`);
    const found = items.filter(wanted);
    if (found.length) show(found);
  } catch {
    // the card still offers its own actions
  }
}

function dependentsList(reports, title) {
  return el("div", { class: "dependents" }, el("p", {}, title), el("ul", { class: "attachments" }, reports.map((r) =>
    el("li", { dataset: { reportId: r.report_id } },
      r.record_type === "attachment" ? attachmentPreview(r) : `${label(r.record_type)} ${r.record_id}`,
      ` (report ${r.report_id})`))));
}

/** A pending attachment as the reviewer should see it: the picture itself, before approving it. */
function attachmentPreview(report) {
  const { filename, caption, media_type: mediaType } = report.changes;
  const url = `/api/reports/${report.report_id}/content`;
  return [
    mediaType?.startsWith("image/") ? el("img", { src: url, alt: caption || filename, loading: "lazy" }) : null,
    el("a", { href: url }, filename),
    caption ? ` — ${caption}` : "",
  ];
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
    const answer = await api("POST", `/api/reports/${report.report_id}/${action}`, reason ? { reason } : {});
    done(report, action === "approve" ? "approved" : "rejected");
    for (const other of answer.rejected_with || []) done({ report_id: other }, `rejected with report ${report.report_id}`);
  } catch (failure) {
    showError(error, failure);
  }
}

/** Approve a new record with the reports naming it still waiting in the queue, in one transaction. */
async function approveTogether(report, dependents, reasonInput, error) {
  const reason = reasonInput.value.trim();
  const waiting = dependents.filter((d) => !root.querySelector(`li[data-report-id="${d.report_id}"] .done`));
  const reports = [report, ...waiting];
  error.hidden = true;
  try {
    await api("POST", "/api/reports/approve", { report_ids: reports.map((r) => r.report_id), ...(reason ? { reason } : {}) });
    for (const approved of reports) done(approved, "approved");
  } catch (failure) {
    showError(error, failure);
  }
}

/** Mark a report's card as decided, if the page lists it. */
function done(report, verb) {
  root.querySelector(`li.card[data-report-id="${report.report_id}"]`)?.replaceChildren(el("p", { class: "done" },
    `Report ${report.report_id} ${verb}. `,
    report.record_id ? el("a", { href: `/records/${encodeURIComponent(report.record_id)}` }, `Open ${report.record_id}`) : null));
}

function showError(error, failure) {
  error.replaceChildren(failure.message, ...failure.problems.map((p) => el("div", {}, p.field ? `${p.field}: ${p.message}` : p.message)));
  error.hidden = false;
}

/** Submit one's drafts together: a new record with the drafts naming it passes the checks. */
async function submitDrafts(reports, error) {
  error.hidden = true;
  try {
    await api("POST", "/api/reports/submit", { report_ids: reports.map((r) => r.report_id) });
    show("draft");
  } catch (failure) {
    showError(error, failure);
  }
}
