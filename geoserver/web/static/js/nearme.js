// Near me: services near the reader's position (the browser's geolocation, sent only to /nearby and never kept),
// a point chosen on the map, or a place typed in. The list is the screen-reader equivalent of the map: it updates
// politely, and selecting a result shows it on the map (and a feature selected on the map is marked in the list).

import { ApiError, getJSON } from "./api.js";
import { definitionList, details, nameOf, status, whatAndWhere } from "./format.js";
import { category, language, t } from "./i18n.js";
import { featureKey } from "./view.js";

export const NEAR_LIMIT = 25;

export class NearMe {
  /** `els`: the view's elements; `onSelect(feature | null)`; `onResults(lngLat, features)`; `titleOf(layerId)`. */
  constructor(els, { onSelect, onResults, titleOf }) {
    Object.assign(this, { els, onSelect, onResults, titleOf });
    this.point = null;
    this.features = [];
    this.selected = null;
    this.categories = new Set();
    els.locate.addEventListener("click", () => this.locate());
    els.category.addEventListener("change", () => this.run());
    els.openNow.addEventListener("change", () => this.run());
    els.searchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.searchPlaces();
    });
  }

  /** Ask the browser where the reader is, then search around it. */
  locate() {
    if (!("geolocation" in navigator)) return this.say(t("near.noLocation"));
    this.say(t("near.locating"));
    navigator.geolocation.getCurrentPosition(
      (position) => this.setPoint([position.coords.longitude, position.coords.latitude], t("near.yourLocation")),
      () => this.say(t("near.noLocation")),
      { enableHighAccuracy: false, timeout: 15000, maximumAge: 60000 },
    );
  }

  /** Search around `lngLat` ([lon, lat]), described as `label` ("your location", a place's name). */
  setPoint(lngLat, label) {
    this.point = { lon: lngLat[0], lat: lngLat[1], label };
    this.selected = null;
    return this.run();
  }

  /** The near-me request for the current point and filters. */
  query() {
    const { lon, lat } = this.point;
    const params = { lon, lat, limit: NEAR_LIMIT };
    if (this.els.category.value) params.category = this.els.category.value;
    if (this.els.openNow.checked) params.open_now = "true";
    return params;
  }

  async run() {
    if (!this.point) return;
    this.say(t("near.searching"));
    try {
      const body = await getJSON("/nearby", this.query());
      this.features = body.features;
    } catch (error) {
      this.features = [];
      this.render();
      return this.say(error instanceof ApiError && error.status === 400 ? t("near.badFilter") : t("error.server"));
    }
    for (const feature of this.features) {
      if (feature.properties.category) this.categories.add(String(feature.properties.category));
    }
    this.renderCategories();
    this.render();
    this.onResults([this.point.lon, this.point.lat], this.features);
    this.say(t("near.found", { count: this.features.length, place: this.point.label }));
  }

  render() {
    const list = this.els.results;
    list.replaceChildren();
    this.features.forEach((feature, index) => list.append(this.item(feature, index)));
    if (this.selected) this.mark(this.selected, false);
  }

  item(feature, index) {
    const key = featureKey(feature.properties.layer, feature.id);
    const layerTitle = this.titleOf(feature.properties.layer);
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "result";
    button.dataset.key = key;
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", `near-details-${index}`);
    const name = span("result-name", nameOf(feature, layerTitle));
    button.append(name, span("result-meta", whatAndWhere(feature, layerTitle)));
    const state = status(feature);
    if (state) button.append(span("result-status", state));
    const more = document.createElement("div");
    more.id = `near-details-${index}`;
    more.className = "result-details";
    more.hidden = true;
    more.append(definitionList(details(feature)));
    button.addEventListener("click", () => this.choose(key));
    li.append(button, more);
    return li;
  }

  /** Open the result `key` and show it on the map (a second press closes it). */
  choose(key) {
    const open = this.selected === key;
    this.selected = open ? null : key;
    this.mark(key, !open);
    this.onSelect(open ? null : this.features.find((f) => featureKey(f.properties.layer, f.id) === key) || null);
  }

  /** Mark the result `key` as the selected one, if it is in the list (for a feature selected on the map). */
  mark(key, scroll = true) {
    let found = null;
    for (const button of this.els.results.querySelectorAll("button.result")) {
      const on = button.dataset.key === key;
      button.setAttribute("aria-expanded", String(on));
      button.classList.toggle("selected", on);
      document.getElementById(button.getAttribute("aria-controls")).hidden = !on;
      if (on) found = button;
    }
    if (found && scroll) found.scrollIntoView({ block: "nearest" });
    this.selected = found ? key : null;
    return found !== null;
  }

  renderCategories() {
    const select = this.els.category;
    const chosen = select.value;
    const options = [...this.categories].sort((a, b) => category(a).localeCompare(category(b), language()));
    select.replaceChildren(new Option(t("near.allCategories"), ""));
    for (const value of options) select.append(new Option(category(value), value, false, value === chosen));
  }

  /** A typed address or place name: matches nearest the map's centre; choosing one searches around it. */
  async searchPlaces() {
    const q = this.els.query.value.trim();
    const list = this.els.places;
    list.replaceChildren();
    if (q.length < 2) return this.say(t("search.tooShort"));
    this.say(t("near.searching"));
    let body;
    try {
      body = await getJSON("/search", { q, limit: 8, lang: language(), ...this.els.centre() });
    } catch {
      return this.say(t("error.server"));
    }
    for (const feature of body.features) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "place";
      const name = nameOf(feature, feature.properties.layer_title);
      button.append(span("result-name", name), span("result-meta", feature.properties.layer_title));
      button.addEventListener("click", () => {
        const [w, s, e, n] = feature.bbox;
        list.replaceChildren();
        this.setPoint([(w + e) / 2, (s + n) / 2], name);
      });
      li.append(button);
      list.append(li);
    }
    this.say(t("search.found", { count: body.features.length, query: q }));
  }

  say(text) {
    this.els.status.textContent = text;
  }
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}
