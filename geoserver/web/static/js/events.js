// Events: what is on today, this weekend or on a chosen date, from the time-aware layers (the City's events and
// community overlays), as a list whose entries show on the map.

import { getJSON } from "./api.js";
import { definitionList, details, nameOf, status } from "./format.js";
import { dataLanguage, t } from "./i18n.js";
import { featureKey } from "./view.js";

const LIMIT = 50;

/** [start, end) of a local day, a weekend (Saturday and Sunday) or a date ("YYYY-MM-DD"), as Dates. */
export function span(kind, dateText, now = new Date()) {
  const day = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  if (kind === "date" && /^\d{4}-\d{2}-\d{2}$/.test(dateText)) {
    const [y, m, d] = dateText.split("-").map(Number);
    const start = new Date(y, m - 1, d);
    return [start, new Date(y, m - 1, d + 1)];
  }
  if (kind === "weekend") {
    const weekday = day.getDay(); // 0 Sunday .. 6 Saturday
    const saturday = weekday === 0 ? -1 : 6 - weekday;
    const start = new Date(day.getFullYear(), day.getMonth(), day.getDate() + saturday);
    return [start, new Date(start.getFullYear(), start.getMonth(), start.getDate() + 2)];
  }
  return [day, new Date(day.getFullYear(), day.getMonth(), day.getDate() + 1)];
}

export class Events {
  /** `els`: the view's elements; `layers()`: the time-aware layer ids; `onSelect(feature)`; `titleOf(id)`. */
  constructor(els, { layers, onSelect, titleOf }) {
    Object.assign(this, { els, layers, onSelect, titleOf });
    els.form.addEventListener("change", () => this.run());
    els.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
  }

  async run() {
    const kind = new FormData(this.els.form).get("when") || "today";
    this.els.date.disabled = kind !== "date";
    if (kind === "date" && !this.els.date.value) return this.say(t("events.pickDate"));
    const [start, end] = span(kind, this.els.date.value);
    const datetime = `${start.toISOString()}/${end.toISOString()}`;
    this.say(t("near.searching"));
    let features = [];
    try {
      for (const id of this.layers()) {
        const body = await getJSON(`/collections/${encodeURIComponent(id)}/items`, {
          datetime,
          limit: LIMIT,
          lang: dataLanguage(),
        });
        features = features.concat(body.features.map((f) => ({ ...f, properties: { ...f.properties, layer: id } })));
      }
    } catch {
      return this.say(t("error.server"));
    }
    features.sort((a, b) => String(a.properties.starts_at || "").localeCompare(String(b.properties.starts_at || "")));
    this.render(features);
    this.say(t("events.found", { count: features.length }));
  }

  render(features) {
    const list = this.els.results;
    list.replaceChildren();
    features.forEach((feature, index) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "result";
      button.dataset.key = featureKey(feature.properties.layer, feature.id);
      button.setAttribute("aria-expanded", "false");
      button.setAttribute("aria-controls", `event-details-${index}`);
      const title = this.titleOf(feature.properties.layer);
      const name = document.createElement("span");
      name.className = "result-name";
      name.textContent = nameOf(feature, title);
      const when = document.createElement("span");
      when.className = "result-status";
      when.textContent = status(feature);
      button.append(name, when);
      const more = document.createElement("div");
      more.id = `event-details-${index}`;
      more.className = "result-details";
      more.hidden = true;
      more.append(definitionList(details(feature)));
      button.addEventListener("click", () => {
        const open = button.getAttribute("aria-expanded") !== "true";
        for (const other of list.querySelectorAll("button.result")) {
          other.setAttribute("aria-expanded", String(other === button && open));
          document.getElementById(other.getAttribute("aria-controls")).hidden = !(other === button && open);
        }
        this.onSelect(open ? feature : null);
      });
      li.append(button, more);
      list.append(li);
    });
  }

  say(text) {
    this.els.status.textContent = text;
  }
}
