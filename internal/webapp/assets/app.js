// app.js: the shell of the web app. It logs in with the one-time token in
// the URL fragment, fetches the session (CSRF token, account), starts the
// event stream and routes "#/<view>?<params>" to the view module
// /views/<view>.js, whose mount(el, ctx) draws into the main element.
//
// ctx = {api, events, navigate, session, params, setBadge}:
//   api      api.js (get, post, upload, getBlob)
//   events   events.js (on, off, onState)
//   navigate navigate(view, params) changes the route
//   session  {account, csrf, leg_fingerprint} from GET /api/session
//   params   URLSearchParams of the route
//   setBadge setBadge(view, count) shows a count on a nav link (0 hides)

import { h, replace, clear } from './dom.js';
import api from './api.js';
import events from './events.js';
import { peerWarnings, banner } from './trust.js';

// views: every view module the router may load, in nav order; a route
// naming anything else is refused. nav: false keeps it out of the nav.
const views = [
  { name: 'contacts', label: 'Contacts' },
  { name: 'chat', label: 'Chat' },
  { name: 'call', label: 'Call' },
  { name: 'files', label: 'Files' },
  { name: 'alerts', label: 'Alerts' },
  { name: 'devices', label: 'My devices' },
  { name: 'verify', label: 'Verify', nav: false },
];
const defaultView = 'contacts';

let session = null;
let unmount = null;
let mountSeq = 0;
const badges = new Map();
let ringer = null;
let ringerStarted = false;

// registerRinger sets the incoming-call ringer (filled by the call view's
// module): fn(ctx) is called once when the session is up and may
// subscribe to events to ring in any view.
export function registerRinger(fn) {
  ringer = fn;
  startRinger();
}

function startRinger() {
  if (!ringer || !session || ringerStarted) return;
  ringerStarted = true;
  try { ringer(context(new URLSearchParams())); } catch (e) { console.error('ringer', e); }
}

// navigate goes to view with params (an object or URLSearchParams).
export function navigate(view, params) {
  const q = params ? new URLSearchParams(params).toString() : '';
  const target = '#/' + encodeURIComponent(view) + (q ? '?' + q : '');
  if (location.hash === target) route();
  else location.hash = target;
}

// setBadge shows count on the nav link of view (0 or less hides it).
export function setBadge(view, count) {
  badges.set(view, count);
  const b = document.querySelector('#nav [data-view="' + CSS.escape(view) + '"] .badge');
  if (!b) return;
  b.textContent = count > 0 ? String(count) : '';
  b.hidden = !(count > 0);
  b.setAttribute('aria-label', count > 0 ? count + ' new' : '');
}

// Warnings the person cannot miss: a changed key or an uncertified device
// of any contact shows as a banner above every view but the contact list
// (which shows them itself, in detail).
let bannerTimer = null;
let currentView = '';
async function refreshBanners() {
  const box = document.getElementById('banners');
  if (!session) return;
  let peers = [];
  try { peers = (await api.get('/v1/peers')).peers || []; } catch (_) { return; }
  const bad = [];
  let uncertified = 0;
  for (const p of peers) {
    if (p.self) continue;
    for (const w of peerWarnings(p)) {
      if (w.level === 'bad') bad.push([p, w]);
      else uncertified++;
    }
  }
  if (currentView === 'contacts') { clear(box); return; }
  replace(box,
    bad.map(([p, w]) => banner(w, h('a', { href: '#/verify?jid=' + encodeURIComponent(p.jid), class: 'button' }, 'Check the new key'))),
    uncertified ? banner({ level: 'warn', kind: 'uncertified', title: uncertified + (uncertified === 1 ? ' device is' : ' devices are') + ' not certified',
      text: 'Messages are not encrypted to uncertified devices. See the contact list for which ones.' },
    h('a', { href: '#/contacts', class: 'button' }, 'Open the contacts')) : null);
}
function bannersSoon() {
  if (bannerTimer) return;
  bannerTimer = setTimeout(() => { bannerTimer = null; refreshBanners(); }, 200);
}

function context(params) {
  return { api, events, navigate, session, params, setBadge };
}

function parseRoute() {
  const hash = location.hash.startsWith('#/') ? location.hash.slice(2) : '';
  const [path, query] = hash.split('?', 2);
  let name = defaultView;
  try { name = decodeURIComponent(path || defaultView); } catch (_) { /* keep default */ }
  return { name, params: new URLSearchParams(query || '') };
}

function drawNav(current) {
  const nav = document.getElementById('nav');
  replace(nav, h('ul', null, views.filter((v) => v.nav !== false).map((v) => {
    const count = badges.get(v.name) || 0;
    return h('li', null, h('a', {
      href: '#/' + v.name,
      dataset: { view: v.name },
      'aria-current': v.name === current ? 'page' : false,
    }, v.label, ' ', h('span', { class: 'badge', hidden: !(count > 0) }, count > 0 ? String(count) : '')));
  })));
}

function fatal(title, text) {
  if (unmount) { try { unmount(); } catch (_) { /* ignore */ } unmount = null; }
  const main = document.getElementById('main');
  replace(main, h('section', { class: 'fatal', role: 'alert' }, h('h1', null, title), h('p', null, text)));
}

async function route() {
  if (!session) return;
  const { name, params } = parseRoute();
  const v = views.find((x) => x.name === name);
  currentView = name;
  drawNav(name);
  refreshBanners();
  const main = document.getElementById('main');
  if (unmount) { try { unmount(); } catch (e) { console.error('unmount', e); } unmount = null; }
  clear(main);
  if (!v) {
    replace(main, h('p', { class: 'error', role: 'alert' }, 'There is no view "' + name + '". ', h('a', { href: '#/' + defaultView }, 'Go to the contacts')));
    return;
  }
  const seq = ++mountSeq;
  let mod;
  try {
    // Code, too, comes from the port only while the page trusts it
    // (api.ready); sj-lost or sj-logged-out says why it stopped.
    await api.ready();
  } catch (_) {
    return;
  }
  try {
    mod = await import('./views/' + v.name + '.js');
  } catch (e) {
    replace(main, h('p', { class: 'error', role: 'alert' }, 'The ' + v.label + ' view failed to load (' + e.message + '): reload the page.'));
    return;
  }
  if (seq !== mountSeq) return; // another route won meanwhile
  const el = h('section', { class: 'view view-' + v.name, 'aria-label': v.label });
  main.appendChild(el);
  try {
    const u = mod.mount(el, context(params));
    if (typeof u === 'function') unmount = u;
  } catch (e) {
    console.error('mount', e);
    replace(el, h('p', { class: 'error', role: 'alert' }, 'The ' + v.label + ' view failed: ' + e.message));
  }
  main.focus({ preventScroll: true });
}

// BASE_KEY names the session's base path in this origin's localStorage
// (its cookie's Path: no other port of this host can read it, and the
// browser sends the cookie under it only).
const BASE_KEY = 'securejingle-base';

let myBase = ''; // this tab's session base

function validBase(b) { return typeof b === 'string' && /^\/s\/[A-Za-z0-9_-]{43}$/.test(b); }

// login exchanges the one-time token of the fragment for a session cookie
// and records the session's base path.
async function login(token) {
  const res = await fetch('/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  if (res.ok) {
    const j = await res.json().catch(() => null);
    if (!j || !validBase(j.base)) throw new Error('login failed: the daemon gave no session path');
    localStorage.setItem(BASE_KEY, j.base);
    return;
  }
  let msg = 'login failed: HTTP ' + res.status;
  try { const j = await res.json(); if (j && j.error) msg = j.error; } catch (_) { /* not JSON */ }
  throw new Error(msg);
}

async function loadSession() {
  const base = localStorage.getItem(BASE_KEY);
  if (!validBase(base)) return null;
  api.setBase(base);
  myBase = base;
  const res = await fetch(api.href('/api/session'), { credentials: 'same-origin' });
  if (res.status === 401) {
    localStorage.removeItem(BASE_KEY);
    return null;
  }
  if (!res.ok) {
    let msg = 'HTTP ' + res.status;
    try { const j = await res.json(); if (j && j.error) msg = j.error; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return res.json();
}

async function boot() {
  const frag = location.hash;
  if (frag.startsWith('#token=')) {
    const token = frag.slice('#token='.length);
    // The token leaves the address bar (and the history) at once.
    history.replaceState(null, '', location.pathname + '#/' + defaultView);
    try {
      await login(token);
    } catch (e) {
      document.body.dataset.login = 'failed';
      fatal('Not logged in', e.message);
      return;
    }
  }
  let s;
  try {
    s = await loadSession();
  } catch (e) {
    fatal('The daemon did not answer', e.message + ': is `securejingle serve` running?');
    return;
  }
  if (!s) {
    document.body.dataset.login = 'none';
    fatal('Not logged in', 'Run `securejingle ui` and open the link it prints (each link works once, for 2 minutes).');
    return;
  }
  session = s;
  // Requests wait until the event stream is open and the daemon proved
  // itself behind it (api.js, events.js).
  api.setSession(s);
  document.body.dataset.login = 'ok';
  replace(document.getElementById('account'), s.account || '');
  document.getElementById('top').appendChild(h('button', { type: 'button', id: 'logout', onclick: logout }, 'Log out'));
  window.addEventListener('hashchange', route);
  window.addEventListener('sj-logged-out', (ev) => {
    // This tab's own logout, or a session already ended: a request
    // that was in flight when the session ended answers 401 too, and
    // must not turn "Logged out" into "Session ended".
    if (loggingOut || session === null) return;
    // Forget the base unless another tab logged in anew meanwhile.
    if (localStorage.getItem(BASE_KEY) === myBase) localStorage.removeItem(BASE_KEY);
    session = null;
    api.halt(api.ENDED);
    events.stop();
    const d = ev.detail || {};
    if (d.reason === 'link-reused') {
      document.body.dataset.login = 'reused';
      fatal('Session ended: your login link was used again', d.message);
      return;
    }
    document.body.dataset.login = 'ended';
    fatal('Session ended', 'Your session expired or was closed: run `securejingle ui` again and open the new link.');
  });
  window.addEventListener('sj-lost', () => {
    session = null;
    api.halt();
    events.stop();
    document.body.dataset.login = 'lost';
    const b = document.getElementById('logout');
    if (b) b.remove();
    fatal('Connection to the daemon lost', 'Connection to the daemon lost: run `securejingle ui` for a new link. '
      + 'Do not reload this page: whoever holds the port now may not be your daemon.');
  });
  for (const k of ['peer', 'key-changed', 'distrusted', 'trust']) events.on(k, bannersSoon);
  events.start();
  startRinger();
  // Every view's module is loaded as soon as the daemon proved itself
  // (api.ready), not when the view is first shown: a later route then
  // loads no code from the port. The call view's module rings incoming
  // calls in every view (registerRinger); the alerts badge counts unseen
  // alerts in every view (views/alerts.js).
  api.ready().then(() => {
    for (const v of views) {
      if (v.name === 'alerts') {
        import('./views/alerts.js').then((m) => m.watch(context(new URLSearchParams())))
          .catch((e) => console.error('alerts module', e));
      } else {
        import('./views/' + v.name + '.js').catch((e) => console.error(v.name + ' module', e));
      }
    }
  }, () => { /* the page stopped: sj-lost or sj-logged-out says why */ });
  await route();
}

// loggingOut is set while this tab logs itself out (see logout).
let loggingOut = false;

// logout ends this tab's session on the daemon (its event stream and
// every request of it end too) and forgets its base path.
async function logout() {
  loggingOut = true;
  // Hang up this page's call first (the daemon would too, once the
  // session ends): the contact sees a hang-up, not a connection lost.
  try {
    await (await import('./views/call.js')).hangUp(context(new URLSearchParams()));
  } catch (e) {
    console.error('hang up before logout', e);
  }
  try {
    await api.post('/logout');
  } catch (e) {
    if (e.status !== 401) {
      loggingOut = false;
      fatal('Not logged out', e.message + ': try again, or restart the daemon to end every session.');
      return;
    }
  }
  if (localStorage.getItem(BASE_KEY) === myBase) localStorage.removeItem(BASE_KEY);
  session = null;
  api.halt(api.ENDED);
  events.stop();
  document.body.dataset.login = 'out';
  const b = document.getElementById('logout');
  if (b) b.remove();
  fatal('Logged out', 'This session is over. Run `securejingle ui` and open the link it prints to log in again.');
}

// A login link opened in a tab that already shows the app changes the
// fragment only; start over so that boot() sees the token.
window.addEventListener('hashchange', () => {
  if (location.hash.startsWith('#token=')) location.reload();
});

boot();
