// The map page: the register's layers as vector tiles, filters, layer toggles, click to open.
import * as maplibregl from "maplibre-gl";
import { addBaseMap } from "./basemap.js";
import { CLASSIFICATION_FILL, addRegisterLayers, riskFill, setFilters, tileCatalogue, tileUrl } from "./symbology.js";

// Layers a click can open, topmost first.
const CLICKABLE = [
  "accident-points", "eo_item-points", "processed-fill", "task-outline", "hazard-fill",
];

export async function start() {
  const container = document.getElementById("map");
  const bounds = container.dataset.bounds.split(",").map(Number);
  const baseMap = JSON.parse(container.dataset.baseMap);
  const map = new maplibregl.Map({
    container,
    style: {
      version: 8,
      sources: {},
      layers: [{ id: "background", type: "background", paint: { "background-color": "#dfe7ea" } }],
    },
    bounds: [[bounds[0], bounds[1]], [bounds[2], bounds[3]]],
    fitBoundsOptions: { padding: 20 },
    attributionControl: { compact: true },
  });
  window.safegroundMap = map; // for the browser tests and the curious
  map.addControl(new maplibregl.NavigationControl(), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
  await map.once("load");
  const hasBase = await addBaseMap(map, baseMap);
  const filters = document.getElementById("filters");
  const catalogue = await tileCatalogue();
  const groups = addRegisterLayers(map, catalogue, {
    filters: chosenFilters(filters),
    plainBackground: !hasBase,
    layers: container.dataset.layers.split(","),
  });

  // The risk map whose scores colour the hazardous areas (its SHA-256), while the box asks so.
  let riskMap = null;
  const withRisk = (chosen) => (riskMap ? { ...chosen, risk_map: riskMap } : chosen);
  addRiskLayer(map, catalogue.risk, (sha256) => {
    riskMap = sha256;
    const hazards = catalogue.hazardous_area;
    if (hazards) map.getSource(hazards.id)?.setTiles([tileUrl(hazards, withRisk(chosenFilters(filters)))]);
  });

  filters.addEventListener("change", () => setFilters(map, catalogue, groups, withRisk(chosenFilters(filters))));
  filters.addEventListener("reset", () => setTimeout(() => setFilters(map, catalogue, groups, withRisk({})), 0));

  for (const toggle of document.querySelectorAll("#legend input[name=layer]")) {
    toggle.addEventListener("change", () => {
      for (const [id, group] of Object.entries(groups)) {
        if (group === toggle.value) map.setLayoutProperty(id, "visibility", toggle.checked ? "visible" : "none");
      }
    });
  }

  const clickable = CLICKABLE.filter((id) => map.getLayer(id));
  map.on("click", (event) => {
    const [feature] = map.queryRenderedFeatures(event.point, { layers: clickable });
    const id = feature && (feature.properties.record_id || feature.properties.activity_id);
    if (id) window.location.assign(`/records/${encodeURIComponent(id)}`);
  });
  map.on("mousemove", (event) => {
    const hit = map.queryRenderedFeatures(event.point, { layers: clickable }).length > 0;
    map.getCanvas().style.cursor = hit ? "pointer" : "";
  });
  // What is drawn, for people and tests alike: the number of hazardous areas on screen,
  // counted shortly after drawing settles (not on "idle": a failing layer would hold it back).
  let counting = null;
  map.on("render", () => {
    clearTimeout(counting);
    counting = setTimeout(() => {
      const shown = map.getLayer("hazard-fill") ? map.queryRenderedFeatures({ layers: ["hazard-fill"] }) : [];
      container.dataset.renderedHazards = String(new Set(shown.map((f) => f.properties.record_id)).size);
    }, 150);
  });
}

/** The PNG tiles of the risk map chosen in the legend (the newest at first), drawn under the
 *  hazardous areas; the filters do not apply to it. Each map is drawn from its own tile URL,
 *  so the tiles stay those of the map the legend names even if a newer one is attached.
 *  While "colour hazardous areas by their mean risk" is ticked, ``colourBy`` is told the chosen
 *  map's SHA-256 (again whenever another is chosen; null once unticked), so that the hazards'
 *  ``risk_mean`` comes from the map drawn, not from whichever was attached last. */
function addRiskLayer(map, risk, colourBy) {
  const legend = document.getElementById("risk-legend");
  const toggle = legend?.querySelector("input[name=layer][value=risk]");
  if (!risk || !toggle) return; // none attached, or none whose file is the one attached
  const above = map.getLayer("hazard-fill") ? "hazard-fill" : undefined;
  const draw = (chosen) => {
    if (map.getLayer("risk-raster")) map.removeLayer("risk-raster");
    if (map.getSource("risk")) map.removeSource("risk");
    legend.querySelector(".risk-title").textContent = chosen.title;
    const problem = legend.querySelector(".risk-problem");
    problem.textContent = chosen.available ? "" : `${chosen.title} is not shown: ${chosen.problem}`;
    problem.hidden = chosen.available;
    if (!chosen.available) return;
    map.addSource("risk", {
      type: "raster", tiles: chosen.tiles, tileSize: chosen.tile_size, minzoom: chosen.minzoom, maxzoom: chosen.maxzoom, bounds: chosen.bounds,
    });
    const visibility = toggle.checked ? "visible" : "none";
    map.addLayer({ id: "risk-raster", type: "raster", source: "risk", layout: { visibility }, paint: { "raster-opacity": 0.75 } }, above);
  };
  // The selector is there when several maps are; the listing, fetched after the page, holds
  // every map it offers (and perhaps one attached meanwhile, which the page did not).
  const choice = legend.querySelector("select[name=risk-map]");
  const chosen = () => risk.maps.find((m) => m.map_sha256 === choice?.value) ?? risk.maps[0];
  const byRisk = legend.querySelector("input[name=hazard-colour]");
  const colouring = byRisk && map.getLayer("hazard-fill");
  draw(chosen());
  choice?.addEventListener("change", () => {
    draw(chosen());
    if (colouring && byRisk.checked) colourBy(chosen().map_sha256);
  });
  toggle.addEventListener("change", () => {
    if (map.getLayer("risk-raster")) map.setLayoutProperty("risk-raster", "visibility", toggle.checked ? "visible" : "none");
  });
  if (!colouring) return;
  byRisk.addEventListener("change", () => {
    colourBy(byRisk.checked ? chosen().map_sha256 : null);
    map.setPaintProperty("hazard-fill", "fill-color", byRisk.checked ? riskFill(risk.legend) : CLASSIFICATION_FILL);
  });
}

/** The filters chosen in the panel, {name: value}; each layer takes those it knows. */
function chosenFilters(form) {
  return Object.fromEntries([...new FormData(form)].filter(([, value]) => value));
}
