// A local base map (MBTiles served tile by tile, or a PMTiles archive read by range requests).
import * as maplibregl from "maplibre-gl";

/** Add the configured base map below everything else; ``config`` comes from the server. */
export async function addBaseMap(map, config) {
  if (!config) return false;
  const origin = window.location.origin;
  let source;
  let vector = config.vector;
  let vectorLayers = config.vector_layers || [];
  if (config.kind === "pmtiles") {
    const { PMTiles, Protocol } = await import("pmtiles");
    // metadata: the source's TileJSON then carries the archive's attribution (a licence may
    // require it, as OpenStreetMap's does); without it MapLibre credits nobody.
    const protocol = new Protocol({ metadata: true });
    maplibregl.addProtocol("pmtiles", protocol.tile);
    const archive = new PMTiles(`${origin}${config.url}`);
    protocol.add(archive);
    const header = await archive.getHeader();
    vector = header.tileType === 1;
    if (vector) vectorLayers = ((await archive.getMetadata()).vector_layers || []).map((l) => l.id);
    source = {
      type: vector ? "vector" : "raster",
      url: `pmtiles://${origin}${config.url}`,
      ...(vector ? {} : { tileSize: 256 }),
    };
  } else {
    source = {
      type: vector ? "vector" : "raster",
      tiles: [`${origin}${config.url}`],
      minzoom: config.minzoom,
      maxzoom: config.maxzoom,
      attribution: config.attribution || undefined,
      ...(vector ? {} : { tileSize: 256 }),
    };
  }
  map.addSource("basemap", source);
  if (!vector) {
    map.addLayer({ id: "basemap", type: "raster", source: "basemap" });
    return true;
  }
  // A vector base map has no style of its own here: draw its layers plainly.
  for (const layer of vectorLayers) {
    map.addLayer({
      id: `basemap-${layer}-fill`, type: "fill", source: "basemap", "source-layer": layer,
      filter: ["==", ["geometry-type"], "Polygon"],
      paint: { "fill-color": "#ece8dc", "fill-outline-color": "#d5d0c2" },
    });
    map.addLayer({
      id: `basemap-${layer}-line`, type: "line", source: "basemap", "source-layer": layer,
      filter: ["==", ["geometry-type"], "LineString"],
      paint: { "line-color": "#c8c2b4", "line-width": 0.8 },
    });
  }
  return true;
}
