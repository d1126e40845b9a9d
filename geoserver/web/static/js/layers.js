// The layers panel: the catalogue's layers by category, each with its title, description, licence and a legend
// swatch in the reader's language, turned on and off (the choice is part of the URL).

import { category, t } from "./i18n.js";
import { setVisible, styleLayersOf } from "./mapview.js";

// Shown when the URL names no layers: what a resident looks for first; the rest is a tick away.
const SHOWN_AT_START = new Set(["boundaries", "facilities", "events", "community"]);
const CATEGORY_ORDER = ["facilities", "events", "community", "boundaries", "infrastructure", "service_requests"];

/** The catalogue layers drawn by the style: [{id, title, description, licence, category, group, swatches}]. */
export function describeLayers(map, collections, publicIds) {
  const byId = new Map(collections.map((c) => [c.id, c]));
  const found = new Map();
  for (const styleLayer of map.getStyle().layers) {
    const id = styleLayer["source-layer"];
    const meta = styleLayer.metadata || {};
    if (!id || !byId.has(id) || found.has(id)) continue;
    const collection = byId.get(id);
    const community = Boolean(meta["geoserver:community"]);
    found.set(id, {
      id,
      title: collection.title,
      description: collection.description,
      licence: collection.license,
      licenceUrl: collection.licenseUrl,
      category: community ? "community" : meta["geoserver:category"] || "other",
      group: !publicIds.has(id),
      swatches: swatchesOf(map, id),
      // The street network (infrastructure lines drawn from zoom 10 or less) makes the map readable.
      streets: meta["geoserver:category"] === "infrastructure" && styleLayer.type === "line" && (styleLayer.minzoom ?? 0) <= 10,
    });
  }
  return [...found.values()];
}

/** Build the panel in `root`; `onChange(visibleIds)` after each toggle. Returns the ids shown at start. */
export function renderLayers(root, map, layers, wanted, onChange) {
  const start = (l) => SHOWN_AT_START.has(l.category) || l.group || l.streets;
  const shown = new Set(wanted ?? layers.filter(start).map((l) => l.id));
  root.replaceChildren();
  const groups = new Map();
  for (const layer of layers) {
    const key = layer.group ? "group" : layer.category;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(layer);
  }
  const order = (key) => (key === "group" ? -1 : CATEGORY_ORDER.indexOf(key) + 1 || 99);
  for (const key of [...groups.keys()].sort((a, b) => order(a) - order(b) || a.localeCompare(b))) {
    const fieldset = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = key === "group" ? t("layers.groupLayers") : t(`layercat.${known(key)}`);
    fieldset.append(legend);
    for (const layer of groups.get(key)) fieldset.append(layerRow(map, layer, shown, onChange));
    root.append(fieldset);
  }
  for (const layer of layers) setVisible(map, layer.id, shown.has(layer.id));
  return [...shown];
}

function known(key) {
  return CATEGORY_ORDER.includes(key) || key === "property" ? key : "other";
}

function layerRow(map, layer, shown, onChange) {
  const row = document.createElement("div");
  row.className = "layer";
  const input = document.createElement("input");
  input.type = "checkbox";
  input.id = `layer-${cssId(layer.id)}`;
  input.checked = shown.has(layer.id);
  input.dataset.layer = layer.id;
  const label = document.createElement("label");
  label.htmlFor = input.id;
  label.append(swatch(layer.swatches[0]?.colour, layer.swatches[0]?.shape), layer.title);
  input.addEventListener("change", () => {
    if (input.checked) shown.add(layer.id);
    else shown.delete(layer.id);
    setVisible(map, layer.id, input.checked);
    onChange([...shown]);
  });
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = t("layers.about", { title: layer.title });
  const text = document.createElement("p");
  text.textContent = layer.description;
  details.append(summary, text, legendList(layer), licence(layer));
  row.append(input, label, details);
  return row;
}

function legendList(layer) {
  const list = document.createElement("ul");
  list.className = "legend";
  list.setAttribute("aria-label", t("layers.legend"));
  for (const item of layer.swatches) {
    const entry = document.createElement("li");
    entry.append(swatch(item.colour, item.shape), item.value === null ? layer.title : category(item.value));
    list.append(entry);
  }
  return list;
}

function licence(layer) {
  const p = document.createElement("p");
  if (layer.licenceUrl) {
    const a = document.createElement("a");
    a.href = layer.licenceUrl;
    a.textContent = layer.licence;
    a.rel = "license";
    p.append(`${t("layers.licence")} `, a);
  } else {
    p.textContent = `${t("layers.licence")} ${layer.licence || ""}`;
  }
  return p;
}

function swatch(colour, shape) {
  const span = document.createElement("span");
  span.className = `swatch swatch-${shape || "fill"}`;
  span.setAttribute("aria-hidden", "true");
  if (colour) span.style.setProperty("--swatch", colour);
  return span;
}

/** The colours a layer is drawn in: one per category value of a `match` expression, else the one colour. */
function swatchesOf(map, layerId) {
  const swatches = [];
  for (const styleLayer of styleLayersOf(map, layerId)) {
    const shape = { circle: "point", line: "line", fill: "fill" }[styleLayer.type];
    if (!shape) continue;
    const paint = styleLayer.paint || {};
    const colour = paint[`${styleLayer.type}-color`];
    if (Array.isArray(colour) && colour[0] === "match") {
      for (let i = 2; i < colour.length - 1; i += 2) swatches.push({ value: colour[i], colour: colour[i + 1], shape });
      swatches.push({ value: null, colour: colour[colour.length - 1], shape });
    } else if (typeof colour === "string") {
      swatches.push({ value: null, colour, shape });
    }
    if (shape !== "fill") break; // a polygon's outline says the same as its fill
  }
  return swatches.length ? swatches : [{ value: null, colour: "#767676", shape: "fill" }];
}

function cssId(text) {
  return Array.from(text, (ch) => (/[A-Za-z0-9_-]/.test(ch) ? ch : `_${ch.codePointAt(0).toString(16)}`)).join("");
}
