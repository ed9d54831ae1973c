// IMAS land-release symbology for MapLibre, shared by the map and the report forms' maps.
//
// Hazardous areas: CHA red, SHA orange (indications yellow); the outline tells the status:
// solid = Open, dashed = Worked on, dotted = Suspended, thin grey-green = Closed (released).
// Processed land by how it was released: cancelled, reduced, cleared.

export const COLOURS = {
  cha: "#d7191c",
  sha: "#fd8d3c",
  indication: "#fed976",
  stockpile: "#8c510a",
  eod_spot: "#7b3294",
  cancelled: "#a6cee3",
  reduced: "#b2df8a",
  cleared: "#33a02c",
  admin: "#7f7f7f",
  task: "#6a3d9a",
  eo_item: "#1f78b4",
  accident: "#000000",
  closed: "#4d9221",
};

/** Hazard fill by classification, the IMAS default. */
export const CLASSIFICATION_FILL = [
  "match", ["get", "classification"],
  "cha", COLOURS.cha,
  "sha", COLOURS.sha,
  "indication", COLOURS.indication,
  "stockpile", COLOURS.stockpile,
  "eod_spot", COLOURS.eod_spot,
  "#999999",
];

/** Hazard fill by the mean mapped risk of each area (``risk_mean`` in the tiles, from the map
 *  their URL names), on the risk map's own ramp (its legend stops); grey where that map does
 *  not cover the area. */
export function riskFill(legend) {
  const stops = legend.flatMap((stop) => [stop.risk, stop.colour]);
  return ["case", ["has", "risk_mean"], ["interpolate", ["linear"], ["get", "risk_mean"], ...stops], "#bdbdbd"];
}

const OUTLINE_COLOUR = [
  "match", ["get", "classification"],
  "cha", "#a50f15",
  "sha", "#c44e00",
  "indication", "#b8860b",
  "#555555",
];

/** Outline style per hazard status: one line layer each (dash patterns are per layer). */
export const STATUS_OUTLINES = {
  open: { "line-width": 2.2 },
  worked_on: { "line-width": 2.2, "line-dasharray": [3, 2] },
  suspended: { "line-width": 2, "line-dasharray": [0.5, 1.5] },
  closed: { "line-width": 1.2, "line-color": COLOURS.closed },
};

/** Tile URL of a register layer with those of ``filters`` ({name: value}) it accepts; a layer
 *  whose tiles carry ``risk_mean`` also takes ``risk_map``, the SHA-256 of the map it is from. */
export function tileUrl(layer, filters = {}) {
  const accepted = new Set([...(layer.filters || []), ...(layer.properties?.includes("risk_mean") ? ["risk_map"] : [])]);
  const query = new URLSearchParams(Object.entries(filters).filter(([name, value]) => value && accepted.has(name)));
  const base = `${window.location.origin}/tiles/${layer.id}/{z}/{x}/{y}.pbf`;
  return query.size ? `${base}?${query}` : base;
}

/** The tile layers the caller's role may see, by id, from ``/tiles/layers.json``. */
export async function tileCatalogue() {
  const response = await fetch("/tiles/layers.json", { credentials: "same-origin" });
  if (!response.ok) throw new Error(`tile layers: ${response.status}`);
  return Object.fromEntries((await response.json()).layers.map((layer) => [layer.id, layer]));
}

/** Add the register's vector-tile sources and styled layers to ``map``: those in ``layers``
 *  that the catalogue offers (tiles past its maxzoom are drawn from the last level).
 *  Returns {layer id → register layer} so that toggles and clicks know what is what. */
export function addRegisterLayers(map, catalogue, { filters = {}, plainBackground = true, layers } = {}) {
  const groups = {};
  const wanted = new Set((layers || Object.keys(catalogue)).filter((id) => catalogue[id]));
  const add = (group, layer) => {
    if (!wanted.has(group)) return;
    map.addLayer({ ...layer, source: group, "source-layer": group });
    groups[layer.id] = group;
  };
  for (const layer of wanted) {
    const { minzoom = 0, maxzoom = 14 } = catalogue[layer];
    map.addSource(layer, { type: "vector", tiles: [tileUrl(catalogue[layer], filters)], minzoom, maxzoom });
  }
  add("admin_area", {
    id: "admin-fill",
    type: "fill",
    paint: { "fill-color": plainBackground ? "#f4f1e8" : "#ffffff", "fill-opacity": plainBackground ? 1 : 0 },
  });
  add("admin_area", {
    id: "admin-outline",
    type: "line",
    paint: { "line-color": COLOURS.admin, "line-width": 1, "line-opacity": 0.8 },
  });
  add("hazardous_area", {
    id: "hazard-fill",
    type: "fill",
    paint: {
      "fill-color": CLASSIFICATION_FILL,
      "fill-opacity": ["match", ["get", "status"], "closed", 0.12, 0.45],
    },
  });
  add("processed_land", {
    id: "processed-fill",
    type: "fill",
    paint: {
      "fill-color": [
        "match", ["get", "land_type"],
        "cancelled", COLOURS.cancelled,
        "reduced", COLOURS.reduced,
        "cleared", COLOURS.cleared,
        "#cccccc",
      ],
      "fill-opacity": 0.75,
    },
  });
  for (const [status, paint] of Object.entries(STATUS_OUTLINES)) {
    add("hazardous_area", {
      id: `hazard-outline-${status}`,
      type: "line",
      filter: ["==", ["get", "status"], status],
      paint: { "line-color": OUTLINE_COLOUR, ...paint },
    });
  }
  add("task", {
    id: "task-outline",
    type: "line",
    paint: { "line-color": COLOURS.task, "line-width": 1.8, "line-dasharray": [1, 1] },
  });
  add("eo_item", {
    id: "eo_item-points",
    type: "circle",
    paint: {
      "circle-radius": ["interpolate", ["linear"], ["zoom"], 6, 2.5, 14, 6],
      "circle-color": COLOURS.eo_item,
      "circle-stroke-color": "#ffffff",
      "circle-stroke-width": 1,
    },
  });
  add("accident", {
    id: "accident-points",
    type: "circle",
    paint: {
      "circle-radius": ["interpolate", ["linear"], ["zoom"], 6, 3.5, 14, 8],
      "circle-color": COLOURS.accident,
      "circle-stroke-color": COLOURS.cha,
      "circle-stroke-width": 2,
    },
  });
  return groups;
}

/** Point the register's sources at new filters. */
export function setFilters(map, catalogue, groups, filters) {
  for (const group of new Set(Object.values(groups))) {
    map.getSource(group)?.setTiles([tileUrl(catalogue[group], filters)]);
  }
}
