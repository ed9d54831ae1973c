// The dashboard: one Chart.js chart per aggregate from /api/dashboard/{chart}, with downloads.
import { api, el, label } from "./app.js";

const { Chart } = window; // chart.umd.min.js, loaded by the page
const HECTARE = 10000;
const TYPE_COLOURS = { cancelled_m2: "#a6cee3", reduced_m2: "#b2df8a", cleared_m2: "#33a02c" };
const CASUALTY_SERIES = [
  ["civilian_killed", "Civilians killed", "#b2182b"],
  ["civilian_injured", "Civilians injured", "#ef8a62"],
  ["military_killed", "Military killed", "#2166ac"],
  ["military_injured", "Military injured", "#67a9cf"],
  ["deminer_killed", "Deminers killed", "#542788"],
  ["deminer_injured", "Deminers injured", "#998ec3"],
  ["unknown_killed", "Status unknown, killed", "#4d4d4d"],
  ["unknown_injured", "Status unknown, injured", "#bababa"],
];
const hectares = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
const charts = {};

export async function start() {
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false; // drawn once; downloads and screenshots see the final picture
  const figures = [...document.querySelectorAll("figure.chart")];
  await Promise.all(figures.map((figure) => load(figure)));
  document.querySelector("figure[data-chart=land_released] .period")?.addEventListener("change", (event) => {
    const figure = event.target.closest("figure");
    figure.querySelector("a.csv").href = `/api/dashboard/land_released?format=csv&period=${event.target.value}`;
    load(figure, `?period=${event.target.value}`);
  });
  document.body.dataset.chartsReady = "true";
}

async function load(figure, query = "") {
  const name = figure.dataset.chart;
  let data;
  try {
    data = await api("GET", `/api/dashboard/${name}${query}`);
  } catch (failure) {
    figure.append(el("p", { class: "error" }, failure.message));
    return;
  }
  figure.querySelector(".empty").hidden = data.rows.length > 0;
  const png = figure.querySelector("a.png");
  if (png) png.hidden = data.rows.length === 0;
  if (name === "expiring_accreditations") {
    showExpiring(figure, data);
    return;
  }
  charts[name]?.destroy();
  const canvas = figure.querySelector("canvas");
  figure.querySelector(".canvas-box").hidden = data.rows.length === 0;
  if (!data.rows.length) return;
  charts[name] = new Chart(canvas, CONFIGS[name](data));
  figure.dataset.rows = String(data.rows.length);
  png.onclick = (event) => {
    event.currentTarget.href = pngWithBackground(canvas);
  };
}

function column(data, name) {
  const i = data.columns.indexOf(name);
  return data.rows.map((row) => row[i]);
}

const areaAxis = {
  beginAtZero: true,
  title: { display: true, text: "hectares" },
  ticks: { callback: (v) => hectares.format(v) },
};
const areaTooltip = { callbacks: { label: (c) => `${c.dataset.label}: ${hectares.format(c.parsed.y ?? c.parsed.x)} ha` } };

const CONFIGS = {
  land_released: (data) => ({
    type: "bar",
    data: {
      labels: column(data, "period"),
      datasets: ["cancelled_m2", "reduced_m2", "cleared_m2"].map((key) => ({
        label: label(key.replace("_m2", "")),
        data: column(data, key).map((m2) => m2 / HECTARE),
        backgroundColor: TYPE_COLOURS[key],
      })),
    },
    options: {
      maintainAspectRatio: false,
      scales: { x: { stacked: true }, y: { ...areaAxis, stacked: true } },
      plugins: { tooltip: areaTooltip },
    },
  }),
  remaining_by_district: (data) => ({
    type: "bar",
    data: {
      labels: column(data, "district"),
      datasets: [{ label: "Remaining", data: column(data, "remaining_m2").map((m2) => m2 / HECTARE), backgroundColor: "#d7191c" }],
    },
    options: {
      indexAxis: "y",
      maintainAspectRatio: false,
      scales: { x: areaAxis },
      plugins: { legend: { display: false }, tooltip: areaTooltip },
    },
  }),
  items_by_category: (data) => ({
    type: "bar",
    data: {
      labels: column(data, "label"),
      datasets: [{ label: "Items", data: column(data, "items"), backgroundColor: "#1f78b4" }],
    },
    options: {
      indexAxis: "y",
      maintainAspectRatio: false,
      scales: { x: { beginAtZero: true, title: { display: true, text: "items" }, ticks: { precision: 0 } } },
      plugins: { legend: { display: false } },
    },
  }),
  casualties_by_month: (data) => ({
    type: "bar",
    data: {
      labels: column(data, "month"),
      datasets: CASUALTY_SERIES
        .filter(([key]) => column(data, key).some((n) => n > 0))
        .map(([key, name, colour]) => ({ label: name, data: column(data, key), backgroundColor: colour })),
    },
    options: {
      maintainAspectRatio: false,
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, title: { display: true, text: "victims" }, ticks: { precision: 0 } } },
    },
  }),
};

function showExpiring(figure, data) {
  const at = (name) => data.columns.indexOf(name);
  figure.querySelector("tbody").replaceChildren(...data.rows.map((row) => el("tr", { class: row[at("days_left")] <= 7 ? "soon" : "" },
    el("td", {}, row[at("expires")]),
    el("td", {}, String(row[at("days_left")])),
    el("td", {}, `${label(row[at("subject_type")])} `, el("a", { href: `/records/${encodeURIComponent(row[at("subject_id")])}` }, row[at("subject")])),
    el("td", {}, el("a", { href: `/records/${encodeURIComponent(row[at("accreditation_id")])}` }, row[at("accreditation_id")])))));
  figure.querySelector("table").hidden = data.rows.length === 0;
}

/** The chart as a PNG on white (a canvas is transparent, which viewers show as black). */
function pngWithBackground(canvas) {
  const copy = document.createElement("canvas");
  copy.width = canvas.width;
  copy.height = canvas.height;
  const context = copy.getContext("2d");
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, copy.width, copy.height);
  context.drawImage(canvas, 0, 0);
  return copy.toDataURL("image/png");
}
