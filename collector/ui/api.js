// The console's only way to data: the collector's `/v1` API, with the key the user signed in
// with (kept in this tab's sessionStorage, never in a cookie or localStorage). A refused call
// throws an ApiError carrying the API's RFC 9457 problem.

const KEY = "tollgate.key";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export const session = {
  get key() { return sessionStorage.getItem(KEY) || ""; },
  set key(v) { if (v) sessionStorage.setItem(KEY, v); else sessionStorage.removeItem(KEY); },
};

/** GET /v1/<path> with query parameters (empty values left out). */
export async function api(path, params = {}, key = session.key) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const url = "/v1/" + path + (q.toString() ? "?" + q : "");
  const headers = { accept: "application/json" };
  if (key) headers.authorization = "Bearer " + key;
  const resp = await fetch(url, { headers });
  const body = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}
