// The view in the URL, so that a link opens the same map: `#zoom/lat/lon` (kept by MapLibre's hash option) and,
// in the query string, `layers=a,b`, `lang=`, and `feature=layer:id` for the selected feature.

/** What the URL asks for: {layers: [..] | null, lang, feature: "layer:id" | null}. */
export function readView() {
  const params = new URLSearchParams(location.search);
  const layers = params.get("layers");
  return {
    layers: layers === null ? null : layers.split(",").filter(Boolean),
    lang: params.get("lang"),
    feature: params.get("feature"),
  };
}

/** Change parts of the view in the URL without reloading (null removes a part). */
export function writeView(changes) {
  const params = new URLSearchParams(location.search);
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === undefined) params.delete(name);
    else params.set(name, Array.isArray(value) ? value.join(",") : value);
  }
  const query = params.toString().replaceAll("%2C", ",").replaceAll("%3A", ":");
  history.replaceState(history.state, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
}

/** Split `layer:id` against the known layer ids (either may hold a colon). */
export function parseFeature(text, layerIds) {
  if (!text) return null;
  const layer = [...layerIds].sort((a, b) => b.length - a.length).find((id) => text.startsWith(`${id}:`));
  if (!layer) return null;
  const raw = text.slice(layer.length + 1);
  return { layer, id: /^-?\d+$/.test(raw) ? Number(raw) : raw };
}

export function featureKey(layer, id) {
  return `${layer}:${id}`;
}
