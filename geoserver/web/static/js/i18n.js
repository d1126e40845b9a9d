// The interface's words: ICU MessageFormat catalogues (messages/<language>.json), formatted with intl-messageformat,
// and dates, times and distances in the reader's locale through Intl.

import { IntlMessageFormat } from "/map/vendor/intl-messageformat.js";

export const LANGUAGES = ["en", "fr", "pa", "zh-Hans"];
export const CITY_TIME_ZONE = "America/Edmonton"; // opening hours are the City's wall-clock time
const STORAGE_KEY = "geoserver.map.language";

let current = { lang: "en", messages: {}, english: {} };
const formats = new Map();

/** The language to start in: `lang=` in the URL, then the one remembered, then the server's pick (Accept-Language). */
export function initialLanguage(urlLang) {
  const remembered = safeStorage(() => localStorage.getItem(STORAGE_KEY));
  for (const candidate of [urlLang, remembered, document.documentElement.lang]) {
    if (LANGUAGES.includes(candidate)) return candidate;
  }
  return "en";
}

/** Load a catalogue (and English, the fallback for a missing message) and make it current. */
export async function setLanguage(lang) {
  const [messages, english] = await Promise.all([load(lang), lang === "en" ? null : load("en")]);
  current = { lang, messages, english: english || messages };
  formats.clear();
  safeStorage(() => localStorage.setItem(STORAGE_KEY, lang));
  document.documentElement.lang = lang;
  return lang;
}

export function language() {
  return current.lang;
}

/** The layer-title language the server has: English where it has no translation. */
export function dataLanguage() {
  return current.lang === "fr" ? "fr" : "en";
}

/** One message, formatted with `values` (ICU syntax: plurals, selects, numbers). */
export function t(key, values) {
  let format = formats.get(key);
  if (!format) {
    const source = current.messages[key] ?? current.english[key];
    if (source === undefined) {
      console.warn(`missing message ${key}`);
      return key;
    }
    format = new IntlMessageFormat(source, current.lang);
    formats.set(key, format);
  }
  return format.format(values);
}

/** Fill every element marked `data-i18n` (text), `data-i18n-label` (aria-label) or `data-i18n-placeholder`. */
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
  }
}

/** A distance: metres below a kilometre, else kilometres with one decimal. */
export function distance(metres) {
  const km = metres >= 1000;
  return new Intl.NumberFormat(current.lang, {
    style: "unit",
    unit: km ? "kilometer" : "meter",
    unitDisplay: "short",
    maximumFractionDigits: km ? 1 : 0,
  }).format(km ? metres / 1000 : Math.round(metres / 10) * 10);
}

/** A compass direction (eight points) for a bearing in degrees. */
export function direction(bearing) {
  if (bearing === null || bearing === undefined) return "";
  const points = ["n", "ne", "e", "se", "s", "sw", "w", "nw"];
  return t(`direction.${points[Math.round(bearing / 45) % 8]}`);
}

/** A time of day in the City's time zone, with the weekday when it is not today. */
export function cityTime(iso) {
  const when = new Date(iso);
  const day = (d) => new Intl.DateTimeFormat("en-CA", { timeZone: CITY_TIME_ZONE, dateStyle: "short" }).format(d);
  const options = { hour: "numeric", minute: "2-digit", timeZone: CITY_TIME_ZONE };
  if (day(when) !== day(new Date())) options.weekday = "long";
  return new Intl.DateTimeFormat(current.lang, options).format(when);
}

/** A date and time range, in the reader's time zone. */
export function dateRange(startIso, endIso) {
  const format = new Intl.DateTimeFormat(current.lang, { dateStyle: "medium", timeStyle: "short" });
  const start = new Date(startIso);
  if (!endIso) return format.format(start);
  return format.formatRange(start, new Date(endIso));
}

/** A category value (`library`, `road_closure`) in words: the catalogue's, else the value itself. */
export function category(value) {
  if (value === null || value === undefined) return "";
  const key = `category.${value}`;
  if (key in current.messages || key in current.english) return t(key);
  return String(value).replaceAll("_", " ");
}

async function load(lang) {
  // The page carries its own language's catalogue (and English): no request for those.
  const embedded = JSON.parse(document.getElementById("catalogues")?.textContent || "{}");
  if (embedded[lang]) return embedded[lang];
  const response = await fetch(`/map/messages/${lang}.json`);
  if (!response.ok) throw new Error(`no messages for ${lang}`);
  return response.json();
}

function safeStorage(action) {
  try {
    return action();
  } catch {
    return null; // storage can be disabled: the choice is then not remembered, nothing more
  }
}
