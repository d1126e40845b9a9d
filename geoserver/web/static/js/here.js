// What's here: for a point clicked (or Enter on the focused map), the ward and community it lies in and the
// facilities serving it (from /here), and the features drawn there (from the map's layers).

import { getJSON } from "./api.js";
import { definitionList, details, nameOf } from "./format.js";
import { distance, t } from "./i18n.js";

const SERVING = ["fire_station", "library", "recreation_centre"];

export class WhatsHere {
  /** `els`: the view's elements; `titleOf(layerId)`; `onNearHere(lngLat)` runs near me at the point. */
  constructor(els, { titleOf, onNearHere }) {
    Object.assign(this, { els, titleOf, onNearHere });
    this.point = null;
    els.nearHere.addEventListener("click", () => this.point && this.onNearHere(this.point));
  }

  /** Describe `lngLat`; `drawn` are the map's features there. */
  async show(lngLat, drawn) {
    this.point = [lngLat.lng, lngLat.lat];
    this.els.nearHere.hidden = false;
    this.say(t("here.looking"));
    let body;
    try {
      body = await getJSON("/here", { lon: lngLat.lng, lat: lngLat.lat });
    } catch {
      return this.say(t("error.server"));
    }
    this.renderAreas(body.features);
    this.renderServing(body.serving || {});
    this.renderDrawn(drawn);
    const area = body.features.map((f) => nameOf(f, this.titleOf(f.properties.layer))).join(", ");
    this.say(area ? t("here.inside", { area }) : t("here.outside"));
  }

  /** A shared feature (from the URL): its details, as for a feature drawn at a clicked point. */
  showFeature(feature) {
    this.els.areas.replaceChildren();
    this.els.serving.replaceChildren();
    this.renderDrawn([{ ...feature, sourceLayer: feature.properties.layer }]);
    this.say(t("here.shared", { name: nameOf(feature, this.titleOf(feature.properties.layer)) }));
  }

  renderAreas(features) {
    const rows = features.map((f) => [this.titleOf(f.properties.layer), nameOf(f, this.titleOf(f.properties.layer))]);
    this.els.areas.replaceChildren(rows.length ? definitionList(rows) : paragraph(t("here.noArea")));
  }

  renderServing(serving) {
    const rows = SERVING.filter((key) => serving[key]).map((key) => {
      const feature = serving[key];
      const where = t("here.servedBy", {
        name: nameOf(feature, this.titleOf(feature.properties.layer)),
        distance: distance(feature.properties.distance_m),
      });
      return [t(`category.${key}`), where];
    });
    this.els.serving.replaceChildren(rows.length ? definitionList(rows) : paragraph(t("here.noServing")));
  }

  renderDrawn(drawn) {
    const list = document.createElement("ul");
    for (const feature of drawn) {
      const title = this.titleOf(feature.sourceLayer);
      const item = document.createElement("li");
      const name = document.createElement("strong");
      name.textContent = nameOf(feature, title);
      item.append(name, ` (${title})`, definitionList(details(feature)));
      list.append(item);
    }
    this.els.drawn.replaceChildren(drawn.length ? list : paragraph(t("here.nothingDrawn")));
  }

  say(text) {
    this.els.status.textContent = text;
  }
}

function paragraph(text) {
  const p = document.createElement("p");
  p.textContent = text;
  return p;
}
