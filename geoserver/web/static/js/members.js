// For group members: sign in with a token (kept in this tab's session storage, sent as a bearer header to this
// server only), see the groups' layers (the map and the layer list then include them), upload a file as a new
// layer, and make a layer public where the member's role allows it.
//
// The groups-and-overlays interface: GET /me -> {subject, staff, groups: {gid: role}}; GET /groups -> {groups:
// [{id, name: {en, fr}, role}]}; POST /collections (multipart/form-data: file, id, title, group, description) -> 201
// and the layer's document; PATCH /collections/{id} (application/merge-patch+json) {"visibility": "public"}, which
// only the owner group's publishers and City staff may send. Each collection document says who sees the layer
// (`visibility`: public, group:<owner> or groups:<owner>,<gid>,...), whether it is a community overlay and its
// `publisher` (for an overlay, the group's name).

import { ApiError, getJSON, send } from "./api.js";
import { dataLanguage, t } from "./i18n.js";
import { setToken, token } from "./session.js";
import { readView, writeView } from "./view.js";

const $ = (id) => document.getElementById(id);
const UPLOAD_ROLES = new Set(["editor", "publisher", "staff"]);
const MERGE_PATCH = "application/merge-patch+json";
const NOTICE = "geoserver.map.notice"; // a message to show once after the page reloads (session storage)

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

/** Ask the server who the token is before keeping it: a refused one is never stored. */
async function signIn(dialog) {
  const value = $("sign-in-token").value.trim();
  const error = $("sign-in-error");
  if (!value) {
    error.textContent = t("member.empty");
    return;
  }
  const response = await fetch("/me", { headers: { Authorization: `Bearer ${value}` } }).catch(() => null);
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
  $("tab-member").hidden = false;
  let me;
  try {
    me = await getJSON("/me");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      setToken(null); // revoked or expired since: back to anonymous
      location.reload();
      return;
    }
    $("member-status").textContent = t("error.server");
    return;
  }
  // Group names and roles (staff: every group); without them, the ids and roles of /me will do.
  const listed = await getJSON("/groups").catch(() => null);
  const groups = listed?.groups?.map((g) => ({ id: g.id, name: g.name?.[dataLanguage()] || g.id, role: g.role })) ??
    Object.entries(me.groups || {}).map(([id, role]) => ({ id, name: id, role }));
  const member = { ...me, groupList: groups, names: new Map(groups.map((g) => [g.id, g.name])) };
  button.textContent = me.subject ? t("member.signedInAs", { subject: me.subject }) : t("member.signedIn");
  renderPanel(app, member);
  setupUpload(member);
  announceNotice(app);
}

function renderPanel(app, member) {
  const body = $("member-body");
  body.replaceChildren();
  const own = member.groupList.filter((g) => g.id in (member.groups || {}));
  const list = document.createElement("ul");
  for (const group of own) {
    list.append(item(t("member.groupRole", { group: group.name, role: t(`member.role.${group.role}`) })));
  }
  body.append(heading("h3", t("member.groups")), own.length ? list : para(t("member.noGroups")));
  body.append(heading("h3", t("member.groupLayers")), groupLayers(app, member));
  if (member.groupList.some((g) => UPLOAD_ROLES.has(g.role))) {
    const upload = button(t("member.uploadOpen"), "member-upload");
    upload.addEventListener("click", () => openUpload());
    body.append(upload);
  }
  const out = button(t("member.signOut"), "member-sign-out", "secondary");
  out.addEventListener("click", () => {
    setToken(null);
    location.reload();
  });
  body.append(out);
}

/** The layers the member sees through a group (not public), and the public overlays of the member's groups. */
function groupLayers(app, member) {
  const names = new Set(member.groupList.filter((g) => g.id in (member.groups || {})).map((g) => g.name));
  const mine = app.collections.filter((c) => c.visibility !== "public" || (c.community && names.has(c.publisher)));
  if (!mine.length) return para(t("member.noGroupLayers"));
  const list = document.createElement("ul");
  list.id = "member-layers";
  for (const layer of mine) {
    const entry = item(layer.title);
    entry.dataset.layer = layer.id;
    const seen = document.createElement("span");
    seen.className = "result-meta";
    seen.textContent = ` — ${seenBy(layer.visibility, member.names)}`;
    entry.append(seen);
    if (mayPublish(layer, member)) entry.append(" ", publicButton(layer, seen));
    list.append(entry);
  }
  return list;
}

/** Who sees a layer, in words: everyone, or the names of the groups in `groups:<owner>,<gid>,...`. */
function seenBy(visibility, names) {
  if (visibility === "public") return t("member.seenBy", { who: t("member.everyone") });
  const ids = visibility.slice(visibility.indexOf(":") + 1).split(",");
  return t("member.seenBy", { who: ids.map((id) => names.get(id) || id).join(", ") });
}

/** What the server allows: City staff, or a publisher of an overlay's owner group (the first group named). */
function mayPublish(layer, member) {
  if (layer.visibility === "public") return false;
  if (member.staff) return true;
  const owner = layer.visibility.slice(layer.visibility.indexOf(":") + 1).split(",")[0];
  return Boolean(layer.community) && member.groups?.[owner] === "publisher";
}

function publicButton(layer, seen) {
  const control = button(t("member.makePublic", { title: layer.title }), null, "secondary");
  control.addEventListener("click", () =>
    confirmPublic(layer, () => {
      seen.textContent = ` — ${t("member.seenBy", { who: t("member.everyone") })}`;
      $("member-status").textContent = t("member.madePublic", { title: layer.title });
      seen.tabIndex = -1;
      control.remove();
      seen.focus(); // the button is gone: focus stays on the same line, which now says who sees it
    }),
  );
  return control;
}

/** The make-public dialog: says what it means, sends the PATCH on confirmation, `done()` once the server agreed. */
function confirmPublic(layer, done) {
  const dialog = $("make-public");
  const error = $("make-public-error");
  $("make-public-title").textContent = t("member.publicTitle", { title: layer.title });
  error.textContent = "";
  const form = $("make-public-form");
  const cancel = $("make-public-cancel");
  const submit = async (event) => {
    event.preventDefault();
    try {
      await send("PATCH", `/collections/${encodeURIComponent(layer.id)}`, { visibility: "public" }, MERGE_PATCH);
    } catch (failed) {
      error.textContent = failure(failed);
      return;
    }
    dialog.close();
    done();
  };
  const close = () => dialog.close();
  form.addEventListener("submit", submit);
  cancel.addEventListener("click", close);
  dialog.addEventListener(
    "close",
    () => {
      form.removeEventListener("submit", submit);
      cancel.removeEventListener("click", close);
    },
    { once: true },
  );
  dialog.showModal();
  cancel.focus(); // the safe choice first: making a layer public cannot be undone from here
}

/** The upload dialog's group choices and its submission. */
function setupUpload(member) {
  const dialog = $("upload");
  const form = $("upload-form");
  const select = $("upload-group");
  select.replaceChildren(
    ...member.groupList.filter((g) => UPLOAD_ROLES.has(g.role)).map((g) => new Option(g.name, g.id)),
  );
  $("upload-cancel").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => $("member-upload")?.focus());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = form.querySelector("button[type=submit]");
    $("upload-error").textContent = "";
    $("upload-status").textContent = t("member.uploading");
    submit.disabled = true;
    try {
      const layer = await send("POST", "/collections", new FormData(form));
      afterUpload(layer);
    } catch (error) {
      $("upload-status").textContent = "";
      $("upload-error").textContent = failure(error);
      submit.disabled = false;
    }
  });
}

function openUpload() {
  $("upload-form").reset();
  $("upload-error").textContent = "";
  $("upload-status").textContent = "";
  $("upload").showModal();
  $("upload-file").focus();
}

/** The new layer is drawn from the style, which is read at start: reload with it shown, and say so once there. */
function afterUpload(layer) {
  try {
    sessionStorage.setItem(NOTICE, t("member.uploadedNotice", { title: layer.title }));
  } catch {
    // no session storage: the layer still shows after the reload, without the notice
  }
  const shown = readView().layers;
  writeView({ layers: shown ? [...new Set([...shown, layer.id])] : null });
  location.reload();
}

/** The notice left by the page before it reloaded: shown (and announced) in the member's view. */
function announceNotice(app) {
  let notice = null;
  try {
    notice = sessionStorage.getItem(NOTICE);
    sessionStorage.removeItem(NOTICE);
  } catch {
    return;
  }
  if (!notice) return;
  app.tabs.show("member", { focus: true });
  // After the view is shown: a live region announces changes, not what it held when it appeared.
  setTimeout(() => {
    $("member-status").textContent = notice;
  }, 100);
}

function failure(error) {
  if (error instanceof ApiError && [401, 403].includes(error.status)) return t("member.forbidden");
  if (error instanceof ApiError && error.status < 500) return t("member.refused", { reason: error.message });
  return t("error.server");
}

function button(text, id, className) {
  const control = document.createElement("button");
  control.type = "button";
  if (id) control.id = id;
  if (className) control.className = className;
  control.textContent = text;
  return control;
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

function item(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}
