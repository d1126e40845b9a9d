// The map: MapLibre GL JS drawing the City's own style (and an optional basemap under it), the selected feature,
// and picking a point by click or by Enter on the focused map.

import { getJSON } from "./api.js";
import { dataLanguage, t } from "./i18n.js";
import { authHeaders, sameOrigin } from "./session.js";

const SELECTION = "selection";
const POINT = "near-point";
export const reducedMotion = () => matchMedia("(prefers-reduced-motion: reduce)").matches;

/** The City's style for the caller (their group layers too), over the basemap style when one is configured. */
export async function loadStyle(basemapUrl) {
  const city = await getJSON(`/styles/city-${dataLanguage()}.json`);
  if (!basemapUrl) return city;
  const base = await getJSON(basemapUrl, {}, { anonymous: !sameOrigin(basemapUrl) });
  return {
    ...base,
    name: city.name,
    metadata: { ...(base.metadata || {}), ...city.metadata },
    center: city.center,
    zoom: city.zoom,
    sources: { ...base.sources, ...city.sources },
    layers: [...base.layers, ...city.layers.filter((layer) => layer.type !== "background")],
  };
}

/** A map in `container` with `style`; `onPick(lngLat, point)` on a click or on Enter (the map's centre). */
export function createMap(container, style, onPick) {
  maplibregl.setWorkerUrl("/map/vendor/maplibre-gl-csp-worker.js");
  const map = new maplibregl.Map({
    container,
    style,
    hash: true,
    attributionControl: { compact: true },
    fadeDuration: reducedMotion() ? 0 : 300,
    locale: controlWords(),
    // The token goes with the style, TileJSON and tiles of this server, never anywhere else.
    transformRequest: (url) => (sameOrigin(url) ? { url, headers: authHeaders() } : { url }),
  });
  map.addControl(new maplibregl.NavigationControl({ visualizePitch: false }), "top-right");
  map.on("load", () => addSelectionLayers(map));
  map.on("click", (event) => onPick(event.lngLat, event.point));
  // An application to screen readers, so their arrow keys move the map; the region around it is the landmark.
  map.getCanvas().setAttribute("role", "application");
  map.getCanvas().setAttribute("aria-describedby", "map-help");
  map.getCanvas().addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      onPick(map.getCenter(), null);
    }
  });
  return map;
}

/** MapLibre's own words (controls, the map's accessible name) in the current language. */
function controlWords() {
  return {
    "Map.Title": t("map.label"),
    "NavigationControl.ZoomIn": t("map.zoomIn"),
    "NavigationControl.ZoomOut": t("map.zoomOut"),
    "NavigationControl.ResetBearing": t("map.resetBearing"),
    "AttributionControl.ToggleAttribution": t("map.attribution"),
  };
}

function addSelectionLayers(map) {
  map.addSource(SELECTION, { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  map.addSource(POINT, { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  map.addLayer({
    id: POINT,
    type: "circle",
    source: POINT,
    paint: { "circle-radius": 8, "circle-color": "#0B57D0", "circle-stroke-color": "#FFFFFF", "circle-stroke-width": 3 },
  });
  const only = (kind) => ["==", ["geometry-type"], kind];
  map.addLayer({
    id: "selection-line",
    type: "line",
    source: SELECTION,
    filter: ["!=", ["geometry-type"], "Point"],
    paint: { "line-color": "#000000", "line-width": 4 },
  });
  map.addLayer({
    id: "selection-circle",
    type: "circle",
    source: SELECTION,
    filter: only("Point"),
    paint: {
      "circle-radius": 11,
      "circle-color": "rgba(0,0,0,0)",
      "circle-stroke-color": "#000000",
      "circle-stroke-width": 4,
    },
  });
}

/** Show `feature` (GeoJSON) as the selection and bring it into view; null clears it. */
export function select(map, feature) {
  const source = map.getSource(SELECTION);
  if (source) source.setData({ type: "FeatureCollection", features: feature ? [feature] : [] });
  if (!feature) return;
  const box = feature.bbox || bboxOf(feature.geometry);
  if (!box) return;
  const options = { padding: 60, maxZoom: 16, animate: !reducedMotion() };
  if (box[0] === box[2] && box[1] === box[3]) {
    const zoom = Math.max(map.getZoom(), 15);
    (reducedMotion() ? map.jumpTo.bind(map) : map.easeTo.bind(map))({ center: [box[0], box[1]], zoom });
  } else {
    map.fitBounds([box[0], box[1], box[2], box[3]], options);
  }
}

/** Mark the near-me point and bring it and the results into view (fitting them, never centring on the point). */
export function showPoint(map, lngLat, features = []) {
  const source = map.getSource(POINT);
  if (source) source.setData({ type: "Feature", properties: {}, geometry: { type: "Point", coordinates: lngLat } });
  const box = [lngLat[0], lngLat[1], lngLat[0], lngLat[1]];
  for (const feature of features.slice(0, 10)) {
    const b = feature.bbox || bboxOf(feature.geometry);
    if (!b) continue;
    box[0] = Math.min(box[0], b[0]);
    box[1] = Math.min(box[1], b[1]);
    box[2] = Math.max(box[2], b[2]);
    box[3] = Math.max(box[3], b[3]);
  }
  map.fitBounds(box, { padding: 50, maxZoom: 15, animate: !reducedMotion() });
}

/** [west, south, east, north] of a GeoJSON geometry. */
export function bboxOf(geometry) {
  if (!geometry) return null;
  const box = [Infinity, Infinity, -Infinity, -Infinity];
  const walk = (coords) => {
    if (typeof coords[0] === "number") {
      box[0] = Math.min(box[0], coords[0]);
      box[1] = Math.min(box[1], coords[1]);
      box[2] = Math.max(box[2], coords[0]);
      box[3] = Math.max(box[3], coords[1]);
    } else coords.forEach(walk);
  };
  walk(geometry.type === "GeometryCollection" ? geometry.geometries.map((g) => g.coordinates) : geometry.coordinates);
  return box[0] === Infinity ? null : box;
}

/** The style layers that draw catalogue layer `layerId`. */
export function styleLayersOf(map, layerId) {
  return map.getStyle().layers.filter((layer) => layer["source-layer"] === layerId);
}

/** Show or hide a catalogue layer. */
export function setVisible(map, layerId, visible) {
  for (const layer of styleLayersOf(map, layerId)) {
    map.setLayoutProperty(layer.id, "visibility", visible ? "visible" : "none");
  }
}

/** The catalogue features drawn within a few pixels of `point`, one per feature. */
export function featuresAt(map, point) {
  const box = [
    [point.x - 6, point.y - 6],
    [point.x + 6, point.y + 6],
  ];
  const seen = new Set();
  const found = [];
  for (const feature of map.queryRenderedFeatures(box)) {
    if (feature.source === SELECTION || feature.source === POINT || !feature.sourceLayer) continue;
    const key = `${feature.sourceLayer}:${feature.id ?? JSON.stringify(feature.properties)}`;
    if (!seen.has(key)) {
      seen.add(key);
      found.push(feature);
    }
  }
  return found;
}
