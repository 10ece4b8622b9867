// trust.js: how the app shows the trust state of a contact's account key,
// shared by every view (contacts, verify, chat, call).
import { h } from './dom.js';

// States of api.Peer.trust, with what the person sees.
const states = {
  unknown: { cls: 'new', icon: '○', label: 'new', help: 'No key pinned yet: the first message or call pins it (TOFU).' },
  tofu: { cls: 'tofu', icon: '◐', label: 'TOFU', help: 'Key pinned on first use, not verified: compare the SAS or scan the QR code.' },
  verified: { cls: 'verified', icon: '✔', label: 'verified', help: 'You verified this account key.' },
  changed: { cls: 'changed', icon: '⚠', label: 'KEY CHANGED', help: 'The account presented another key: nothing is sent to it until you verify or accept it.' },
  distrusted: { cls: 'distrusted', icon: '✖', label: 'distrusted', help: 'You distrusted this account: its devices are not used.' },
};

// trustInfo returns {cls, icon, label, help} for a trust state.
export function trustInfo(trust) {
  return states[trust] || { cls: 'new', icon: '?', label: String(trust || 'unknown'), help: 'Unknown trust state.' };
}

// shield returns the badge of a trust state ("verified by sas" etc).
export function shield(trust, method) {
  const s = trustInfo(trust);
  const text = s.label + (trust === 'verified' && method ? ' (' + method + ')' : '');
  return h('span', { class: 'shield ' + s.cls, title: s.help, dataset: { trust: trust || 'unknown' } },
    h('span', { 'aria-hidden': 'true' }, s.icon), ' ', text);
}

// uncertifiedDevices returns the devices of a peer that are not certified
// by the account key the trust record accepts: known devices not
// accepted, and online resources that advertise a device the account's
// device list does not hold. Each is {id, resource}.
export function uncertifiedDevices(peer) {
  const out = [];
  const accepted = new Set();
  for (const d of peer.devices || []) {
    if (d.accepted) accepted.add(d.id);
    else out.push({ id: d.id, resource: '' });
  }
  for (const r of peer.resources || []) {
    if (!r.device || accepted.has(r.device)) continue;
    const known = out.find((x) => x.id === r.device);
    if (known) known.resource = r.resource;
    else out.push({ id: r.device, resource: r.resource });
  }
  return out;
}

// peerWarnings returns the warnings about a peer: [{level, title, text}],
// level "bad" (key change) or "warn" (uncertified device).
export function peerWarnings(peer) {
  const out = [];
  if (peer.trust === 'changed') {
    out.push({
      level: 'bad', kind: 'key-changed',
      title: 'The account key of ' + peer.jid + ' changed',
      text: 'Someone may be impersonating this contact, or they reinstalled. Nothing is sent to the new key until you verify it with them (SAS or QR code) or accept it.',
    });
  }
  if (peer.trust !== 'distrusted') {
    for (const d of uncertifiedDevices(peer)) {
      out.push({
        level: 'warn', kind: 'uncertified',
        title: 'Device ' + d.id + (d.resource ? ' ("' + d.resource + '")' : '') + ' of ' + peer.jid + ' is not certified',
        text: 'It is not on the account\'s signed device list (or is signed by another key): messages are not encrypted to it and nothing from it is accepted. If the contact just added a device, it is used once they certify it (securejingle devices add on that device); otherwise someone else may be using their account.',
      });
    }
  }
  return out;
}

// banner builds a warning banner; action is an optional node.
export function banner(w, action) {
  return h('div', { class: 'banner ' + w.level, role: w.level === 'bad' ? 'alert' : 'status', dataset: { warning: w.kind } },
    h('strong', null, (w.level === 'bad' ? '⚠ ' : '') + w.title), h('span', null, w.text), action ? h('div', { class: 'actions' }, action) : null);
}
