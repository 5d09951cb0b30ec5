// The console's only way to the gateway: JSON over fetch with the key the user typed
// (sessionStorage, this tab only) in the X-api-key header. No cookies are ever used, so
// a foreign page cannot make the browser send credentials (CSRF); writes send
// application/json, which a cross-site form cannot.
const KEY = 'c2c.console.key';
const TENANT = 'c2c.console.tenant';

export const store = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(v) { if (v) sessionStorage.setItem(KEY, v); else sessionStorage.removeItem(KEY); },
  get tenant() { return sessionStorage.getItem(TENANT); },
  set tenant(v) { if (v) sessionStorage.setItem(TENANT, v); else sessionStorage.removeItem(TENANT); },
};

/** An error from the gateway, with its JSON error code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** GET or POST a JSON endpoint with the signed-in key. */
export async function api(path, { method = 'GET', body, key } = {}) {
  const headers = { Accept: 'application/json' };
  const k = key || store.key;
  if (k) headers['X-api-key'] = k;
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', `The gateway could not be reached (${e.message}).`);
  }
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const err = json && json.error;
    throw new ApiError(r.status, err ? err.code : 'http_' + r.status, err ? err.message : `HTTP ${r.status}`);
  }
  return json;
}

/** Query string from an object, skipping empty values. */
export function qs(o) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? '?' + s : '';
}
