// Safeground pages: shared helpers, and the page module for the page being shown.

const CSRF_COOKIE = "safeground_csrf";

/** The session's CSRF token, sent back as a header with every write (see the web contract). */
export function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith(`${CSRF_COOKIE}=`));
  return found ? decodeURIComponent(found.slice(CSRF_COOKIE.length + 1)) : "";
}

/** An API error with the register's problems: [{field, message}], for showing beside fields,
 * and the whole answer (``body``: what else a 409 says, such as the attachment there already). */
export class ApiError extends Error {
  constructor(status, detail, problems, body) {
    super(detail || `request failed (${status})`);
    this.status = status;
    this.problems = problems || [];
    this.body = body;
  }
}

/** Call the REST API; JSON in and out, CSRF header on writes, ApiError on a 4xx/5xx. */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const detail = typeof data === "string" ? data : data.detail;
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail), data.problems, data);
  }
  return data;
}

/** Create an element: el("td", {class: "x"}, "text", child...). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** The form page that reopens a report for editing; null when no form asks for what it says. */
export function draftFormLink(report) {
  return report.form ? `/reports/new?form=${encodeURIComponent(report.form)}&report=${report.report_id}` : null;
}

/** A "Withdraw" button for one's draft and the confirmation it opens (with an optional reason);
 * ``done`` gets the API's answer. A new record's draft takes the drafts naming it along.
 * ``onBehalfOf``: an administrator withdraws the draft of that disabled account, saying why. */
export function withdrawControls(report, done, onBehalfOf = null) {
  const reason = el("input", {
    name: "withdraw-reason", placeholder: onBehalfOf ? "Reason (required)" : "Reason (optional)", "aria-label": "Why withdraw it",
    // Enter would submit the report form around it.
    onkeydown: (event) => { if (event.key === "Enter") event.preventDefault(); },
  });
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const confirm = el("div", { class: "confirm-withdraw", hidden: true },
    el("p", {}, `Withdraw report ${report.report_id}${onBehalfOf ? ` on behalf of ${onBehalfOf}` : ""}? It leaves the drafts and is kept, withdrawn, in the history of ${report.record_id}.`,
      report.operation === "create" ? ` Any drafts naming ${report.record_id} are withdrawn with it.` : ""),
    reason, " ",
    el("button", { type: "button", class: "danger confirm", onclick: async () => {
      error.hidden = true;
      const why = reason.value.trim();
      if (onBehalfOf && !why) {
        error.textContent = `Say why you withdraw ${onBehalfOf}'s draft.`;
        error.hidden = false;
        reason.focus();
        return;
      }
      try {
        done(await api("POST", `/api/reports/${report.report_id}/withdraw`, why ? { reason: why } : {}));
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
      }
    } }, "Withdraw it"), " ",
    el("button", { type: "button", class: "cancel", onclick: () => { confirm.hidden = true; open.hidden = false; } }, "Cancel"),
    error);
  const open = el("button", { type: "button", class: "withdraw", onclick: () => { open.hidden = true; confirm.hidden = false; reason.focus(); } }, "Withdraw");
  return [open, confirm];
}

/** The lon/lat box [[minX, minY], [maxX, maxY]] around GeoJSON geometries. */
export function boundsOf(geometries) {
  let minX = 180, minY = 90, maxX = -180, maxY = -90;
  const walk = (c) => {
    if (typeof c[0] === "number") {
      minX = Math.min(minX, c[0]); maxX = Math.max(maxX, c[0]);
      minY = Math.min(minY, c[1]); maxY = Math.max(maxY, c[1]);
    } else c.forEach(walk);
  };
  geometries.forEach((g) => walk(g.coordinates));
  return [[minX, minY], [maxX, maxY]];
}

const area = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
const hectares = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });

/** An area in m² as people read it: "12,345 m² (1.23 ha)". */
export function formatArea(m2) {
  if (m2 === null || m2 === undefined) return "—";
  return `${area.format(m2)} m² (${hectares.format(m2 / 10000)} ha)`;
}

/** A code as a label: "worked_on" → "Worked on". */
export function label(value) {
  if (value === null || value === undefined) return "—";
  const known = { sha: "SHA", cha: "CHA", nts: "NTS", ts: "TS", uxo: "UXO", ied: "IED", eod: "EOD", eore: "EORE" };
  const text = String(value);
  return known[text] || (text.charAt(0).toUpperCase() + text.slice(1)).replaceAll("_", " ");
}

async function logout() {
  await api("POST", "/api/logout");
  window.location.assign("/");
}

document.getElementById("logout")?.addEventListener("click", logout);

const PAGES = {
  login: "./login.js",
  map: "./map.js",
  record: "./record.js",
  reports: "./reports.js",
  form: "./form.js",
  dashboard: "./dashboard.js",
};
const page = document.body.dataset.page;
if (PAGES[page]) {
  import(PAGES[page]).then((module) => module.start()).catch((error) => {
    console.error(error);
    const main = document.querySelector("main");
    main.prepend(el("p", { class: "error", role: "alert" }, `This page failed to start: ${error.message}`));
  });
}
