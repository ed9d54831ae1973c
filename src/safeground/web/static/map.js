// The map page: the register's layers as vector tiles, filters, layer toggles, click to open.
import * as maplibregl from "maplibre-gl";
import { addBaseMap } from "./basemap.js";
import { CLASSIFICATION_FILL, addRegisterLayers, riskFill, setFilters, tileCatalogue } from "./symbology.js";

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

  addRiskLayer(map, catalogue.risk);

  filters.addEventListener("change", () => setFilters(map, catalogue, groups, chosenFilters(filters)));
  filters.addEventListener("reset", () => setTimeout(() => setFilters(map, catalogue, groups, {}), 0));

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

/** The risk map's PNG tiles (when one is attached and its file is the one attached), drawn
 *  under the hazardous areas; the filters do not apply to it. */
function addRiskLayer(map, risk) {
  if (!risk?.available) return;
  map.addSource("risk", {
    type: "raster", tiles: risk.tiles, tileSize: risk.tile_size, minzoom: risk.minzoom, maxzoom: risk.maxzoom, bounds: risk.bounds,
  });
  const above = map.getLayer("hazard-fill") ? "hazard-fill" : undefined;
  map.addLayer({ id: "risk-raster", type: "raster", source: "risk", paint: { "raster-opacity": 0.75 } }, above);
  const toggle = document.querySelector("#legend input[name=layer][value=risk]");
  toggle?.addEventListener("change", () => map.setLayoutProperty("risk-raster", "visibility", toggle.checked ? "visible" : "none"));
  const byRisk = document.querySelector("#legend input[name=hazard-colour]");
  if (!byRisk || !map.getLayer("hazard-fill")) return;
  byRisk.addEventListener("change", () => {
    map.setPaintProperty("hazard-fill", "fill-color", byRisk.checked ? riskFill(risk.legend) : CLASSIFICATION_FILL);
  });
}

/** The filters chosen in the panel, {name: value}; each layer takes those it knows. */
function chosenFilters(form) {
  return Object.fromEntries([...new FormData(form)].filter(([, value]) => value));
}
