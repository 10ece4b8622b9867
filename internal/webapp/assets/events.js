// events.js: the daemon's event stream (GET /api/v1/events, Server-Sent
// Events) shared by all views. events.on(kind, fn) calls fn(event) for
// each event of that kind ("*" for all); events.off(kind, fn) stops.
// Once the stream has been open, a break is final (review rvweb5 F1):
// the daemon may have stopped and another local user may hold its port
// now, so the page neither reconnects nor sends any request but one
// GET /api/session, which tells a session the daemon ended (401) from a
// lost daemon; either way the page stops (sj-logged-out or sj-lost).

import api from './api.js';

const handlers = new Map(); // kind -> Set of functions
const stateHandlers = new Set();
let source = null;
let retry = null;
let connected = false;
let wasOpen = false;
let lost = false;

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

// start opens the stream (once).
export function start() {
  if (source || lost) return;
  source = new EventSource(api.href('/v1/events'), { withCredentials: true });
  source.onopen = () => { wasOpen = true; setConnected(true); };
  source.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch (_) { return; }
    if (ev && typeof ev.kind === 'string') dispatch(ev);
  };
  source.onerror = () => {
    setConnected(false);
    if (wasOpen) {
      // No reconnect to whoever holds the port now.
      source.close();
      source = null;
      lost = true;
      checkLost();
      return;
    }
    if (source.readyState === EventSource.CLOSED) {
      source = null;
      if (!retry) retry = setTimeout(() => { retry = null; reopen(); }, 3000);
    }
  };
}

// reopen is called when the stream closed for good before it ever
// opened: as after a break, the page stops (checkLost).
function reopen() {
  lost = true;
  checkLost();
}

// checkLost asks once whether the session ended (401: the daemon ended
// it, and says why) and then stops every request of the page.
async function checkLost() {
  let res = null;
  try {
    res = await fetch(api.href('/api/session'), { credentials: 'same-origin' });
  } catch (_) { /* the daemon is away */ }
  api.halt();
  if (res && res.status === 401) {
    const j = await res.json().catch(() => null);
    window.dispatchEvent(new CustomEvent('sj-logged-out', { detail: {
      message: j && typeof j.error === 'string' ? j.error : 'the session ended',
      reason: j && typeof j.reason === 'string' ? j.reason : '',
    } }));
    return;
  }
  window.dispatchEvent(new CustomEvent('sj-lost'));
}

// stop closes the stream.
export function stop() {
  if (retry) { clearTimeout(retry); retry = null; }
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
