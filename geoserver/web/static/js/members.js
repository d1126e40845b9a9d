// For group members: sign in with a token (kept in this tab's session storage, sent as a bearer header to this
// server only), see the group's layers (the map and the layer list then include them), upload a file as a new
// layer, and make a layer public where the member's role allows it.
//
// The HTTP interface used here is the groups-and-overlays one: GET /me -> {subject, staff, groups: {gid: role}},
// POST /collections (multipart/form-data: file, id, title, group, description), PATCH /collections/{id} with
// {"visibility": "public"}. A server without it answers 404 or 405, and this panel says so.

import { ApiError, getJSON, send } from "./api.js";
import { t } from "./i18n.js";
import { setToken, token } from "./session.js";
import { writeView } from "./view.js";

const $ = (id) => document.getElementById(id);
const UPLOAD_ROLES = new Set(["editor", "publisher"]);

/** Wire the sign-in dialog and, when signed in, the member's view. `app` holds the tabs, layers and collections. */
export function setupMembers(app) {
  const dialog = $("sign-in");
  const button = $("member");
  button.addEventListener("click", () => (token() ? app.tabs.show("member", { focus: true }) : open(dialog)));
  $("sign-in-cancel").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => button.focus());
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn(dialog);
  });
  if (token()) showMember(app, button);
}

function open(dialog) {
  $("sign-in-error").textContent = "";
  $("sign-in-token").value = "";
  dialog.showModal();
  $("sign-in-token").focus();
}

/** Check the token against this server before keeping it; a refused one is never stored. */
async function signIn(dialog) {
  const value = $("sign-in-token").value.trim();
  const error = $("sign-in-error");
  if (!value) {
    error.textContent = t("member.empty");
    return;
  }
  const response = await fetch("/collections", { headers: { Authorization: `Bearer ${value}` } }).catch(() => null);
  if (!response || response.status >= 500) {
    error.textContent = t("error.server");
    return;
  }
  if (!response.ok) {
    error.textContent = t("member.rejected");
    return;
  }
  setToken(value);
  dialog.close();
  // The style, tiles and layer list are fetched again, with the group's layers, which start shown.
  writeView({ layers: null });
  location.reload();
}

async function showMember(app, button) {
  const me = await getJSON("/me").catch((error) => (error instanceof ApiError && error.status === 401 ? "out" : null));
  if (me === "out") {
    setToken(null); // revoked or expired since: back to anonymous
    location.reload();
    return;
  }
  button.textContent = me?.subject ? t("member.signedInAs", { subject: me.subject }) : t("member.signedIn");
  const tab = $("tab-member");
  tab.hidden = false;
  renderPanel(app, $("view-member"), me);
}

function renderPanel(app, panel, me) {
  panel.replaceChildren(heading("h2", t("view.member")));
  const groups = me?.groups || null;
  if (groups) {
    const list = document.createElement("ul");
    for (const [group, role] of Object.entries(groups)) {
      const item = document.createElement("li");
      item.textContent = t("member.groupRole", { group, role: t(`member.role.${role}`) });
      list.append(item);
    }
    panel.append(heading("h3", t("member.groups")), Object.keys(groups).length ? list : para(t("member.noGroups")));
  } else {
    panel.append(para(t("member.noGroupInfo")));
  }
  panel.append(heading("h3", t("member.groupLayers")), groupLayers(app, groups));
  const uploadable = groups ? Object.keys(groups).filter((g) => UPLOAD_ROLES.has(groups[g])) : [];
  if (uploadable.length) panel.append(uploadForm(uploadable));
  const out = document.createElement("button");
  out.type = "button";
  out.className = "secondary";
  out.textContent = t("member.signOut");
  out.addEventListener("click", () => {
    setToken(null);
    location.reload();
  });
  panel.append(out);
}

function groupLayers(app, groups) {
  const mine = app.layers.filter((layer) => layer.group);
  if (!mine.length) return para(t("member.noGroupLayers"));
  const publisher = groups && Object.values(groups).includes("publisher");
  const list = document.createElement("ul");
  for (const layer of mine) {
    const item = document.createElement("li");
    item.append(layer.title);
    if (publisher) item.append(" ", publicButton(layer));
    list.append(item);
  }
  return list;
}

function publicButton(layer) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary";
  button.textContent = t("member.makePublic", { title: layer.title });
  const note = document.createElement("span");
  note.setAttribute("role", "status");
  button.addEventListener("click", async () => {
    if (!confirm(t("member.confirmPublic", { title: layer.title }))) return;
    try {
      await send("PATCH", `/collections/${encodeURIComponent(layer.id)}`, { visibility: "public" }, MERGE_PATCH);
      note.textContent = t("member.madePublic");
      button.disabled = true;
    } catch (error) {
      note.textContent = failure(error);
    }
  });
  const wrap = document.createElement("span");
  wrap.append(button, " ", note);
  return wrap;
}

const MERGE_PATCH = "application/merge-patch+json";

function uploadForm(groups) {
  const form = document.createElement("form");
  form.id = "upload-form";
  form.append(heading("h3", t("member.upload")));
  const formats = ".geojson,.json,.gpkg,.kml,.zip,.csv";
  form.append(field("file", t("member.file"), { type: "file", required: true, accept: formats }));
  form.append(field("id", t("member.layerId"), { type: "text", required: true, pattern: "[^/\\\\,?#%]+" }));
  form.append(field("title", t("member.layerTitle"), { type: "text", required: true }));
  const select = document.createElement("select");
  for (const group of groups) select.append(new Option(group, group));
  form.append(labelled("group", t("member.group"), select));
  form.append(field("description", t("member.description"), { type: "text" }));
  const status = document.createElement("p");
  status.setAttribute("role", "status");
  const submit = document.createElement("button");
  submit.type = "submit";
  submit.textContent = t("member.uploadButton");
  form.append(submit, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.textContent = t("member.uploading");
    try {
      await send("POST", "/collections", new FormData(form));
      status.textContent = t("member.uploaded");
      form.reset();
    } catch (error) {
      status.textContent = failure(error);
    }
  });
  return form;
}

function failure(error) {
  if (error instanceof ApiError && [404, 405].includes(error.status)) return t("member.notAvailable");
  if (error instanceof ApiError && [401, 403].includes(error.status)) return t("member.forbidden");
  if (error instanceof ApiError && error.status < 500) return t("member.refused", { reason: error.message });
  return t("error.server");
}

function field(name, label, attributes) {
  const input = document.createElement("input");
  input.name = name;
  Object.assign(input, attributes);
  return labelled(name, label, input);
}

function labelled(name, label, control) {
  const wrap = document.createElement("div");
  wrap.className = "field";
  control.id = `upload-${name}`;
  control.name = name;
  const text = document.createElement("label");
  text.htmlFor = control.id;
  text.textContent = label;
  wrap.append(text, control);
  return wrap;
}

function heading(level, text) {
  const h = document.createElement(level);
  h.textContent = text;
  return h;
}

function para(text) {
  const p = document.createElement("p");
  p.textContent = text;
  return p;
}
