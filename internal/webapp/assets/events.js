// events.js: the daemon's event stream (GET /api/v1/events, Server-Sent
// Events) shared by all views. events.on(kind, fn) calls fn(event) for
// each event of that kind ("*" for all); events.off(kind, fn) stops.
//
// The stream is how the page knows the daemon is there (review rvweb5
// F1): it ends only when the session or the daemon does, and the
// daemon's port may be held by another local user right after. So the
// page opens it once and never lets the browser reconnect it; once it
// is open, api.check proves that the daemon this page logged in to
// holds the port (until then its events are kept, not shown, and every
// request waits: api.ready). Any error of the stream is final: the page
// asks GET /api/session once, which tells a session the daemon ended
// (401) from a lost daemon, and stops either way (sj-logged-out or
// sj-lost).

import api from './api.js';

const handlers = new Map(); // kind -> Set of functions
const stateHandlers = new Set();
let source = null;
let retry = null;
let connected = false;
let lost = false;
// early holds the events that came before the stream was verified, at
// most MAX_EARLY (the daemon replays its last 256 first).
let early = [];
let verified = false;
const MAX_EARLY = 1024;

// OPEN_TIMEOUT bounds how long the page waits for its stream to open
// and the daemon to prove itself behind it (requests wait meanwhile):
// whoever holds the port may keep the stream's request unanswered. It
// then stops as after a break.
const OPEN_TIMEOUT = 30000;
let openTimer = null;

// CLOSED_DELAY is how long the page waits before its check when the
// stream was refused before it ever opened (an HTTP error, not a broken
// connection): requests wait meanwhile, as during any check.
const CLOSED_DELAY = 3000;

function dispatch(ev) {
  for (const key of [ev.kind, '*']) {
    const set = handlers.get(key);
    if (!set) continue;
    for (const fn of [...set]) {
      try { fn(ev); } catch (e) { console.error('event handler', e); }
    }
  }
}

function setConnected(v) {
  if (connected === v) return;
  connected = v;
  for (const fn of [...stateHandlers]) {
    try { fn(v); } catch (e) { console.error('event state handler', e); }
  }
}

// drop closes stream s for good: no reconnect, by the browser or by the
// page, and its unshown events are forgotten.
function drop(s) {
  s.close();
  source = null;
  lost = true;
  early = [];
  if (openTimer) { clearTimeout(openTimer); openTimer = null; }
  setConnected(false);
}

// start opens the stream (once).
export function start() {
  if (source || lost) return;
  let s;
  try {
    s = new EventSource(api.href('/v1/events'), { withCredentials: true });
  } catch (_) {
    // halted already: the page stopped.
    lost = true;
    return;
  }
  source = s;
  let opened = false;
  openTimer = setTimeout(() => {
    openTimer = null;
    if (source !== s || verified) return;
    api.check(true);
    drop(s);
  }, OPEN_TIMEOUT);
  s.onopen = async () => {
    opened = true;
    // Whoever answered may not be the daemon: show nothing of it and
    // send nothing until the daemon proved itself.
    if (!(await api.check(false)) || source !== s) return;
    verified = true;
    if (openTimer) { clearTimeout(openTimer); openTimer = null; }
    api.streamVerified();
    setConnected(true);
    const evs = early;
    early = [];
    for (const ev of evs) dispatch(ev);
  };
  s.onmessage = (m) => {
    if (source !== s) return;
    let ev;
    try { ev = JSON.parse(m.data); } catch (_) { return; }
    if (!ev || typeof ev.kind !== 'string') return;
    if (verified) dispatch(ev);
    else if (early.length < MAX_EARLY) early.push(ev);
  };
  s.onerror = () => {
    if (source !== s) return;
    // Whoever holds the port now may not be the daemon.
    const refused = !opened && s.readyState === EventSource.CLOSED;
    if (refused) {
      // An HTTP error before the stream ever opened: requests still wait
      // (api.setSession) until the check stops the page.
      drop(s);
      retry = setTimeout(() => { retry = null; api.check(true); }, CLOSED_DELAY);
      return;
    }
    // The check holds every request first: drop tells the state
    // handlers, which may send some.
    api.check(true);
    drop(s);
  };
}

// stop closes the stream.
export function stop() {
  if (retry) { clearTimeout(retry); retry = null; }
  if (openTimer) { clearTimeout(openTimer); openTimer = null; }
  if (source) { source.close(); source = null; }
  setConnected(false);
}

// on registers fn for events of kind ("*": every event).
export function on(kind, fn) {
  if (!handlers.has(kind)) handlers.set(kind, new Set());
  handlers.get(kind).add(fn);
}

// off removes fn for kind.
export function off(kind, fn) {
  const set = handlers.get(kind);
  if (set) set.delete(fn);
}

// onState calls fn(connected) whenever the stream connects or drops.
export function onState(fn) { stateHandlers.add(fn); }

// isConnected reports whether the stream is open.
export function isConnected() { return connected; }

export const events = { start, stop, on, off, onState, isConnected };
export default events;
