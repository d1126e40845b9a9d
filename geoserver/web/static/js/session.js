// The signed-in member's token: kept in this tab's session storage only, sent only to this server as a bearer header.

const KEY = "geoserver.map.token";
const listeners = new Set();

/** The token, or null when nobody is signed in. */
export function token() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

/** Keep (or, with null, forget) the token, and tell whoever listens. */
export function setToken(value) {
  try {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  } catch {
    // storage disabled: the token lives as long as this page, in the closure below
  }
  for (const listener of listeners) listener(value);
}

/** Call `listener(token)` whenever someone signs in or out. */
export function onTokenChange(listener) {
  listeners.add(listener);
}

/** Headers for a request to this server: the bearer token when signed in. */
export function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

/** True for a URL of this server (the token is never sent anywhere else). */
export function sameOrigin(url) {
  return new URL(url, location.href).origin === location.origin;
}
