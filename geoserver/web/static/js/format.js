// How a feature reads in a list: its name, what it is, how far and which way, whether it is open or on now.

import { category, cityTime, dateRange, direction, distance, t } from "./i18n.js";

// Fields that name a feature, in the order they are tried.
const NAME_FIELDS = ["name", "title", "venue", "address"];
// Properties a search adds, shown in words rather than as fields.
const ADDED = new Set(["layer", "layer_title", "distance_m", "bearing_deg", "open_now", "opens_at", "closes_at"]);
const TIME_FIELDS = ["starts_at", "ends_at"];

/** The feature's name, or the layer's title and its id. */
export function nameOf(feature, layerTitle) {
  const props = feature.properties || {};
  for (const field of NAME_FIELDS) if (props[field]) return String(props[field]);
  return t("feature.unnamed", { layer: layerTitle || props.layer || "", id: String(feature.id ?? "") });
}

/** "Library · 350 m northeast" (what it is, how far and which way). */
export function whatAndWhere(feature, layerTitle) {
  const props = feature.properties || {};
  const parts = [props.category ? category(props.category) : layerTitle];
  if (typeof props.distance_m === "number") {
    parts.push(t("near.distance", { distance: distance(props.distance_m), direction: direction(props.bearing_deg) }));
  }
  return parts.filter(Boolean).join(" · ");
}

/** "Open now · closes at 9:00 p.m.", "Closed · opens Monday 9:00 a.m.", "Happening now", or "". */
export function status(feature) {
  const props = feature.properties || {};
  if (props.happening_now === true) return t("status.happeningNow");
  if (props.open_now === true) {
    return props.closes_at ? t("status.openUntil", { time: cityTime(props.closes_at) }) : t("status.open");
  }
  if (props.open_now === false) {
    return props.opens_at ? t("status.closedUntil", { time: cityTime(props.opens_at) }) : t("status.closed");
  }
  if (props.starts_at) return dateRange(props.starts_at, props.ends_at);
  return "";
}

/** The feature's other public fields as [label, value] pairs, field names in words where the catalogue has them. */
export function details(feature) {
  const props = feature.properties || {};
  const rows = [];
  if (props.starts_at) rows.push([t("field.when"), dateRange(props.starts_at, props.ends_at)]);
  for (const [name, value] of Object.entries(props)) {
    if (ADDED.has(name) || TIME_FIELDS.includes(name) || value === null || value === "" || name === "happening_now") {
      continue;
    }
    if (value === feature.id && /(^|_)id$/.test(name)) continue; // the id field says nothing to a reader
    const text = name === "category" ? category(value) : String(value);
    rows.push([fieldLabel(name), text]);
  }
  return rows;
}

function fieldLabel(name) {
  const known = ["name", "title", "address", "phone", "opening_hours", "venue", "category", "councillor"];
  return known.includes(name) ? t(`field.${name}`) : name.replaceAll("_", " ");
}

/** A definition list of `rows`. */
export function definitionList(rows) {
  const dl = document.createElement("dl");
  for (const [term, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dl.append(dt, dd);
  }
  return dl;
}
