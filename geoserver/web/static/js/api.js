// Requests to this server's public HTTP API: the bearer token when signed in, JSON answers, errors as ApiError.

import { authHeaders } from "./session.js";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.description || `HTTP ${status}`);
    this.status = status;
    this.parameter = body?.parameter;
  }
}

/** GET a JSON document from `path` with query `params` (null and undefined values left out). */
export async function getJSON(path, params = {}, { anonymous = false } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  const response = await fetch(url, { headers: anonymous ? {} : authHeaders() });
  return answer(response);
}

/** Send `body` (FormData or a JSON-able value) with `method`; the parsed answer. */
export async function send(method, path, body, contentType = "application/json") {
  const isForm = body instanceof FormData;
  const headers = { ...authHeaders(), ...(isForm ? {} : { "Content-Type": contentType }) };
  const response = await fetch(new URL(path, location.origin), {
    method,
    headers,
    body: isForm ? body : JSON.stringify(body),
  });
  return answer(response);
}

async function answer(response) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}
