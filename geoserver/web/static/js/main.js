// The residents' map: starts the language, the map and the panel's views, and keeps them in step with each other
// and with the URL.

import { getJSON } from "./api.js";
import { Events } from "./events.js";
import { WhatsHere } from "./here.js";
import { dataLanguage, initialLanguage, setLanguage, t, translatePage } from "./i18n.js";
import { describeLayers, renderLayers } from "./layers.js";
import { createMap, featuresAt, loadStyle, select, showPoint } from "./mapview.js";
import { setupMembers } from "./members.js";
import { NearMe } from "./nearme.js";
import { token } from "./session.js";
import { Tabs } from "./tabs.js";
import { featureKey, parseFeature, readView, writeView } from "./view.js";

const $ = (id) => document.getElementById(id);

async function start() {
  const view = readView();
  const served = document.documentElement.lang;
  const lang = await setLanguage(initialLanguage(view.lang));
  if (lang !== served) translatePage();
  writeView({ lang });
  $("language").value = lang;
  $("language").addEventListener("change", (event) => {
    writeView({ lang: event.target.value });
    setLanguage(event.target.value).then(() => location.reload());
  });
  const tabs = new Tabs(document.querySelector('[role="tablist"]'));
  const basemap = document.body.dataset.basemap || null;
  const [style, collections, publicOnes] = await Promise.all([
    loadStyle(basemap),
    getJSON("/collections", { lang: dataLanguage() }),
    token() ? getJSON("/collections", { lang: dataLanguage() }, { anonymous: true }) : null,
  ]);
  const app = { tabs, view, collections: collections.collections };
  app.map = createMap($("map"), style, (lngLat, point) => pick(app, lngLat, point));
  window.cityMap = app.map; // for the browser tests and anyone curious in the console
  const idle = new Promise((resolve) => app.map.once("idle", resolve));
  await new Promise((resolve) => app.map.once("load", resolve));
  const publicIds = new Set((publicOnes || collections).collections.map((c) => c.id));
  app.layers = describeLayers(app.map, app.collections, publicIds);
  const titles = new Map(app.layers.map((layer) => [layer.id, layer.title]));
  app.titleOf = (id) => titles.get(id) || id;
  const shown = renderLayers($("layer-list"), app.map, app.layers, view.layers, (ids) => writeView({ layers: ids }));
  writeView({ layers: shown });
  startViews(app);
  setupMembers(app);
  if (view.feature) await openShared(app, view.feature);
  await idle;
  document.body.dataset.ready = "true"; // the map has drawn and every view is wired
}

function startViews(app) {
  const onSelect = (feature) => {
    select(app.map, feature);
    writeView({ feature: feature ? featureKey(feature.properties.layer, feature.id) : null });
  };
  app.near = new NearMe(
    {
      locate: $("near-locate"),
      searchForm: $("near-search"),
      query: $("near-query"),
      places: $("near-places"),
      category: $("near-category"),
      openNow: $("near-open"),
      status: $("near-status"),
      results: $("near-results"),
      centre: () => ({ lon: app.map.getCenter().lng.toFixed(5), lat: app.map.getCenter().lat.toFixed(5) }),
    },
    { onSelect, titleOf: app.titleOf, onResults: (lngLat, features) => showPoint(app.map, lngLat, features) },
  );
  app.here = new WhatsHere(
    {
      status: $("here-status"),
      areas: $("here-areas"),
      serving: $("here-serving"),
      drawn: $("here-drawn"),
      nearHere: $("here-near"),
    },
    {
      titleOf: app.titleOf,
      onNearHere: (lngLat) => {
        app.tabs.show("near", { focus: true });
        app.near.setPoint(lngLat, t("here.point"));
      },
    },
  );
  const timeAware = app.collections
    .filter((c) => c.extent?.temporal && ["events", "community"].includes(layerOf(app, c.id)?.category))
    .map((c) => c.id);
  app.events = new Events(
    { form: $("events-form"), date: $("events-date"), status: $("events-status"), results: $("events-results") },
    { layers: () => timeAware, onSelect, titleOf: app.titleOf },
  );
  app.tabs.onChange = (name) => {
    if (name === "events" && !app.events.started) {
      app.events.started = true;
      app.events.run();
    }
  };
}

function layerOf(app, id) {
  return app.layers.find((layer) => layer.id === id);
}

/** A click on a near-me result drawn on the map selects it in the list; any other click, and Enter on the focused
 * map (its centre), tells what's here. */
function pick(app, lngLat, point) {
  if (!app.here) return;
  const drawn = featuresAt(app.map, point || app.map.project(lngLat));
  if (point && app.tabs.current === "near") {
    for (const feature of drawn) {
      const key = featureKey(feature.sourceLayer, feature.id);
      if (app.near.mark(key)) {
        const result = app.near.features.find((f) => featureKey(f.properties.layer, f.id) === key);
        select(app.map, result);
        writeView({ feature: key });
        return;
      }
    }
  }
  app.tabs.show("here");
  app.here.show(lngLat, drawn);
}

/** A shared link's `feature=layer:id`: fetch it, show it on the map and its details in What's here. */
async function openShared(app, text) {
  const wanted = parseFeature(text, app.layers.map((layer) => layer.id));
  if (!wanted) return;
  try {
    const path = `/collections/${encodeURIComponent(wanted.layer)}/items/${encodeURIComponent(wanted.id)}`;
    const feature = await getJSON(path, { lang: dataLanguage() });
    feature.properties = { ...feature.properties, layer: wanted.layer };
    select(app.map, feature);
    app.tabs.show("here");
    app.here.showFeature(feature);
  } catch {
    writeView({ feature: null });
  }
}

start().catch((error) => {
  console.error(error);
  const status = $("near-status");
  if (status) status.textContent = t("error.server");
});
