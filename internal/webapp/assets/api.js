// api.js: the daemon's control API as the page sees it. A path "/v1/..."
// is fetched as "<base>/api/v1/..." with the session cookie, where base is
// the session's base path (its cookie's Path, a secret of the session:
// no other port of this host ever gets the cookie); every request that is
// not a GET carries the session's CSRF token. A failed request throws
// Error(message) with the daemon's own message (it names cause and fix).

const CSRF_HEADER = 'X-SecureJingle-CSRF';
let csrf = '';

let base = '';

// The page trusts the port only while it can tell the daemon is there
// (review rvweb5 F1, and the race of the CI run where an old tab sent
// chat plaintext to whoever bound the port after the daemon stopped):
// the daemon's end shows as the end of the event stream, so requests
// leave the page only once the stream is open and whoever answered it
// proved to be the daemon this page logged in to (check: the session's
// CSRF token and leg fingerprint, secrets the daemon gives this page
// only), and not while a sign that the daemon may be gone (a broken
// stream, a request that failed on the network) is being checked. Until
// then every request waits (ready); once the page has stopped (halted)
// it throws, and nothing leaves the page any more: whoever holds the
// port may not be the daemon, and every start of the daemon is a new
// origin, so an old tab has nothing legitimate to come back to.
let halted = false;
let holds = 0; // reasons requests wait now (see hold)
let waiters = []; // resolve functions of requests waiting in ready
let streamHeld = false; // the hold of setSession, until streamVerified
let identity = null; // {account, csrf, leg_fingerprint} the daemon gave

// LOST is the message of every request refused once the page stopped.
const LOST = 'connection to the daemon lost: run `securejingle ui` for a new link';
// ENDED is the message of every request refused once the session ended.
export const ENDED = 'not logged in: this session ended; run `securejingle ui` and open the link it prints';
let haltMessage = LOST;

function wake() {
  const w = waiters;
  waiters = [];
  for (const f of w) f();
}

function hold() { holds++; }

function unhold() {
  if (holds > 0) holds--;
  if (holds === 0) wake();
}

// halt stops every later request of the page (and those waiting): they
// throw Error(message), by default LOST.
export function halt(message) {
  if (!halted) haltMessage = message || LOST;
  halted = true;
  abortInflight();
  wake();
}

// isHalted reports whether the page stopped (halt).
export function isHalted() { return halted; }

// ready resolves once requests may leave the page; it throws once the
// page stopped (halt). Everything the page loads from the port (views'
// modules included) waits for it.
export async function ready() {
  while (!halted && holds > 0) await new Promise((r) => waiters.push(r));
  if (halted) throw new Error(haltMessage);
}

// blocked reports whether a request may not leave the page now. A
// request tests it in the same turn as it calls fetch (a hold may come
// between ready resolving and its caller resuming): while (blocked())
// await ready().
function blocked() { return halted || holds > 0; }

// inflight aborts the page's requests under way when the page stops
// (halt, or a break of the event stream): one not yet sent (queued by
// the browser for a connection) must not go to whoever holds the port
// by then.
let inflight = new AbortController();

function abortInflight() {
  inflight.abort();
  inflight = new AbortController();
}

// setSession records the session as the daemon gave it at login (GET
// /api/session: account, csrf, leg_fingerprint), which check compares
// later answers with, and holds every request until streamVerified.
export function setSession(s) {
  identity = { account: String(s.account || ''), csrf: String(s.csrf || ''), leg: String(s.leg_fingerprint || '') };
  csrf = identity.csrf;
  if (!streamHeld && !halted) { streamHeld = true; hold(); }
}

// streamVerified lets requests go (setSession): the event stream is
// open and check found the daemon behind it.
export function streamVerified() {
  if (!streamHeld) return;
  streamHeld = false;
  unhold();
}

// same compares two strings in time that depends on their lengths only.
function same(a, b) {
  if (typeof a !== 'string' || typeof b !== 'string' || a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return d === 0 && a.length > 0;
}

// ASK_TIMEOUT and ASK_MAX bound what ask waits for and reads: the
// answer may be an impostor's.
const ASK_TIMEOUT = 15000;
const ASK_MAX = 16 << 10;

// readBounded returns the body of res as text, or null when it is longer
// than max bytes.
async function readBounded(res, max) {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const parts = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > max) {
      reader.cancel().catch(() => {});
      return null;
    }
    parts.push(value);
  }
  const all = new Uint8Array(n);
  let off = 0;
  for (const p of parts) { all.set(p, off); off += p.length; }
  return new TextDecoder().decode(all);
}

// ask sends GET /api/session to whoever holds the port (the cookie, no
// CSRF token) and tells what came back: {kind: "same"} when it is this
// page's session as the daemon gave it, {kind: "ended", message,
// reason} for a 401, {kind: "other"} for anything else (no answer within
// ASK_TIMEOUT, a longer one than ASK_MAX, a server error, another
// session, an impostor's "{}").
async function ask() {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), ASK_TIMEOUT);
  let res;
  let j = null;
  try {
    res = await fetch(href('/api/session'), { credentials: 'same-origin', cache: 'no-store', signal: ctl.signal });
    const text = await readBounded(res, ASK_MAX);
    if (text === null) return { kind: 'other' };
    try { j = JSON.parse(text); } catch (_) { /* not JSON */ }
  } catch (_) {
    return { kind: 'other' };
  } finally {
    clearTimeout(timer);
  }
  if (res.status === 401) {
    return {
      kind: 'ended',
      message: j && typeof j.error === 'string' ? j.error : 'the session ended',
      reason: j && typeof j.reason === 'string' ? j.reason : '',
    };
  }
  if (res.status === 200 && identity && j && typeof j === 'object'
    && same(j.csrf, identity.csrf) && same(j.leg_fingerprint, identity.leg) && j.account === identity.account) {
    return { kind: 'same' };
  }
  return { kind: 'other' };
}

// check asks whoever holds the port for the session (ask) while every
// request waits. Unless final, it resolves true when the daemon this
// page logged in to answered, and requests go on. Otherwise (or when
// final: a break of the event stream is final, since only the daemon's
// end breaks it) the page stops (halt) and says why: sj-logged-out for
// a session the daemon ended (401, with its detail {message, reason}),
// sj-lost for anything else; it resolves false.
export async function check(final) {
  if (halted) return false;
  hold();
  if (final) abortInflight();
  const v = await ask();
  if (halted) return false;
  if (v.kind === 'same' && !final) {
    unhold();
    return true;
  }
  halt(v.kind === 'ended' ? ENDED : LOST);
  if (v.kind === 'ended') {
    window.dispatchEvent(new CustomEvent('sj-logged-out', { detail: { message: v.message, reason: v.reason } }));
  } else {
    window.dispatchEvent(new CustomEvent('sj-lost'));
  }
  return false;
}

// setBase records the session's base path (from POST /login).
export function setBase(b) { base = b; }

// href returns the URL of path ("/v1/...", "/api/..." or "/logout")
// under the session's base, for links, images and the event stream.
export function href(path) {
  if (halted) throw new Error(haltMessage);
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

// send is fetch, and when the request fails on the network (the daemon
// may be gone) the page checks who holds the port (check) before any
// other request leaves it.
async function send(u, opts) {
  try {
    return await fetch(u, opts);
  } catch (e) {
    if (e && e.name === 'TypeError') check(false);
    throw e;
  }
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
  while (blocked()) await ready();
  // Not POST /logout: its answer decides what the page says (app.js
  // logout), and it carries no body; the daemon ends the stream as it
  // ends the session.
  if (path !== '/logout') opts.signal = inflight.signal;
  const res = await send(url(path), opts);
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
export async function upload(path, file, onProgress) {
  while (blocked()) await ready();
  const signal = inflight.signal;
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    signal.addEventListener('abort', () => x.abort(), { once: true });
    x.onabort = () => reject(new Error(haltMessage));
    x.open('POST', url(path));
    x.withCredentials = true;
    x.setRequestHeader(CSRF_HEADER, csrf);
    if (file && file.type) x.setRequestHeader('Content-Type', file.type);
    if (onProgress) x.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    x.onerror = () => {
      check(false);
      reject(new Error('upload failed: the connection to the daemon broke; is it running?'));
    };
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
  while (blocked()) await ready();
  const res = await send(url(path), { credentials: 'same-origin', signal: inflight.signal });
  if (!res.ok) await fail(res);
  return res.blob();
}

export const api = { ENDED, get, post, upload, getBlob, setSession, setBase, href, ready, check, streamVerified, halt, isHalted };
export default api;
