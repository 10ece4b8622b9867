// api.js: the daemon's control API as the page sees it. A path "/v1/..."
// is fetched as "<base>/api/v1/..." with the session cookie, where base is
// the session's base path (its cookie's Path, a secret of the session:
// no other port of this host ever gets the cookie); every request that is
// not a GET carries the session's CSRF token. A failed request throws
// Error(message) with the daemon's own message (it names cause and fix).

const CSRF_HEADER = 'X-SecureJingle-CSRF';
let csrf = '';

let base = '';

// halted: the connection to the daemon broke after it had been up
// (events.js). Whoever holds the port now may not be the daemon this
// page logged in to (every start of the daemon is a new origin, so an
// old tab has nothing legitimate to come back to): no request leaves the
// page any more.
let halted = false;

// halt stops every later request of the page.
export function halt() { halted = true; }

// setCSRF records the session's CSRF token (from GET /api/session).
export function setCSRF(token) { csrf = token; }

// setBase records the session's base path (from POST /login).
export function setBase(b) { base = b; }

// href returns the URL of path ("/v1/...", "/api/..." or "/logout")
// under the session's base, for links, images and the event stream.
export function href(path) {
  if (halted) throw new Error('connection to the daemon lost: run `securejingle ui` for a new link');
  if (!base) throw new Error('api: not logged in');
  if (path.startsWith('/v1/')) return base + '/api' + path;
  if (path.startsWith('/api/') || path === '/logout') return base + path;
  throw new Error('api: path must start with /v1/: ' + path);
}

const url = href;

async function fail(res) {
  let msg = '';
  let reason = '';
  try {
    const j = await res.json();
    msg = j && typeof j.error === 'string' ? j.error : '';
    reason = j && typeof j.reason === 'string' ? j.reason : '';
  } catch (_) { /* not JSON */ }
  if (!msg) msg = 'request failed: HTTP ' + res.status;
  const e = new Error(msg);
  e.status = res.status;
  // sj-logged-out's detail is {message, reason}: reason "link-reused"
  // when the daemon ended the session because its login link was used
  // again.
  if (res.status === 401) window.dispatchEvent(new CustomEvent('sj-logged-out', { detail: { message: msg, reason } }));
  throw e;
}

async function request(method, path, body, headers) {
  const opts = { method, credentials: 'same-origin', headers: Object.assign({}, headers) };
  if (method !== 'GET') opts.headers[CSRF_HEADER] = csrf;
  if (body !== undefined) {
    if (body instanceof Blob || body instanceof FormData) {
      opts.body = body;
    } else {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
  }
  const res = await fetch(url(path), opts);
  if (!res.ok) await fail(res);
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  return type.startsWith('application/json') ? res.json() : res.text();
}

// get fetches path and returns its decoded JSON.
export function get(path) { return request('GET', path); }

// post sends body as JSON and returns the decoded JSON answer. With no body
// (undefined or null) it sends none: the endpoints that take none refuse
// even "{}".
export function post(path, body) {
  if (body === undefined || body === null) return request('POST', path);
  return request('POST', path, body);
}

// upload POSTs file (a Blob) as the request body, reporting progress as
// onProgress(sentBytes, totalBytes); it resolves to the decoded JSON.
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', url(path));
    x.withCredentials = true;
    x.setRequestHeader(CSRF_HEADER, csrf);
    if (file && file.type) x.setRequestHeader('Content-Type', file.type);
    if (onProgress) x.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    x.onerror = () => reject(new Error('upload failed: the connection to the daemon broke; is it running?'));
    x.onload = () => {
      let j = null;
      try { j = x.responseText ? JSON.parse(x.responseText) : null; } catch (_) { /* not JSON */ }
      if (x.status >= 200 && x.status < 300) return resolve(j);
      const e = new Error(j && j.error ? j.error : 'upload failed: HTTP ' + x.status);
      e.status = x.status;
      reject(e);
    };
    x.send(file);
  });
}

// getBlob fetches path and returns its body as a Blob (images, files).
export async function getBlob(path) {
  const res = await fetch(url(path), { credentials: 'same-origin' });
  if (!res.ok) await fail(res);
  return res.blob();
}

export const api = { get, post, upload, getBlob, setCSRF, setBase, href, halt };
export default api;
