// views/contacts.js: every contact with its account identity, trust state
// and devices; a key change or an uncertified device is a banner on top.
import { h, replace, fmtTime } from '../dom.js';
import { shield, peerWarnings, banner } from '../trust.js';

const refreshOn = ['peer', 'key-changed', 'distrusted', 'trust', 'connected'];

function deviceRow(d) {
  let state;
  if (!d.accepted) state = h('span', { class: 'error' }, '⚠ not certified');
  else if (d.established) state = h('span', null, '✔ certified, session established');
  else if (d.session) state = h('span', null, '✔ certified, session pending');
  else state = h('span', null, '✔ certified');
  return h('tr', { dataset: { device: d.id } },
    h('td', { class: 'mono', 'data-label': 'ID' }, String(d.id)),
    h('td', { 'data-label': 'State' }, state),
    h('td', { class: 'mono', 'data-label': 'Device key' }, d.device_key || ''),
    h('td', { 'data-label': 'Certificate expires' }, d.cert_expires ? fmtTime(d.cert_expires) : ''));
}

function card(p, ctx) {
  const warnings = peerWarnings(p);
  const level = warnings.some((w) => w.level === 'bad') ? 'bad' : warnings.length ? 'warn' : '';
  const accepted = new Set((p.devices || []).filter((d) => d.accepted).map((d) => d.id));
  const online = (p.resources || []).map((r) => r.resource +
    (!r.device ? ' (no securejingle)' : accepted.has(r.device) ? '' : ' (⚠ device ' + r.device + ' not certified)'));
  return h('li', { class: 'card ' + level, dataset: { jid: p.jid } },
    h('h2', null, p.jid, ' ', shield(p.trust, p.method)),
    h('dl', { class: 'kv' },
      h('dt', null, 'Account key'), h('dd', { class: 'fp' }, p.fingerprint_blocks || 'none yet'),
      p.pending_fingerprint ? [h('dt', null, 'New key'), h('dd', { class: 'fp error' }, p.pending_fingerprint)] : null,
      p.verified_at ? [h('dt', null, 'Verified'), h('dd', null, fmtTime(p.verified_at))] : null,
      p.changed_at ? [h('dt', null, 'Changed'), h('dd', null, fmtTime(p.changed_at))] : null,
      h('dt', null, 'Online'), h('dd', null, online.length ? online.join(', ') : 'no')),
    (p.devices || []).length ? h('table', { class: 'stack' },
      h('caption', { class: 'muted' }, 'Devices'),
      h('thead', null, h('tr', null, h('th', null, 'ID'), h('th', null, 'State'), h('th', null, 'Device key'), h('th', null, 'Certificate expires'))),
      h('tbody', null, p.devices.map(deviceRow))) : h('p', { class: 'muted' }, 'No device known yet.'),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: p.trust === 'changed' || p.trust === 'tofu' || p.trust === 'unknown' ? 'primary' : '', onclick: () => ctx.navigate('verify', { jid: p.jid }) },
        p.trust === 'verified' ? 'Verification' : 'Verify'),
      h('button', { type: 'button', onclick: () => ctx.navigate('chat', { jid: p.jid }) }, 'Chat'),
      h('button', { type: 'button', onclick: () => ctx.navigate('call', { jid: p.jid }) }, 'Call')));
}

// mount draws the contact list and keeps it current.
export function mount(el, ctx) {
  let alive = true;
  let pending = null;
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading contacts…');
  replace(el, h('h1', null, 'Contacts'), status);

  async function load() {
    let peers;
    try {
      peers = (await ctx.api.get('/v1/peers')).peers || [];
    } catch (e) {
      if (alive) replace(status, h('span', { class: 'error' }, 'Could not load the contacts: ' + e.message));
      return;
    }
    if (!alive) return;
    const contacts = peers.filter((p) => !p.self);
    const warnings = [];
    for (const p of contacts) {
      for (const w of peerWarnings(p)) {
        warnings.push(banner(w, h('button', { type: 'button', class: w.level === 'bad' ? 'danger' : '', onclick: () => ctx.navigate('verify', { jid: p.jid }) },
          w.level === 'bad' ? 'Check the new key' : 'Open ' + p.jid)));
      }
    }
    replace(el,
      h('h1', null, 'Contacts'),
      h('div', { class: 'warnings' }, warnings),
      contacts.length
        ? h('ul', { class: 'cards' }, contacts.map((p) => card(p, ctx)))
        : h('p', { class: 'muted' }, 'No contacts yet. Contacts come from your roster: add them with your XMPP client, then they appear here.'));
    el.dataset.loaded = String(Number(el.dataset.loaded || 0) + 1);
  }

  function soon() {
    if (pending) return;
    pending = setTimeout(() => { pending = null; load(); }, 150);
  }
  for (const k of refreshOn) ctx.events.on(k, soon);
  load();
  return () => {
    alive = false;
    if (pending) clearTimeout(pending);
    for (const k of refreshOn) ctx.events.off(k, soon);
  };
}
