// views/devices.js: the own account's devices (the signed device list):
// put this device on it, revoke another.
import { h, replace } from '../dom.js';

const refreshOn = ['peer', 'connected', 'warning'];

// mount draws the device list and keeps it current.
export function mount(el, ctx) {
  let alive = true;
  let pending = null;
  const msg = h('div', { role: 'status', 'aria-live': 'polite' });
  replace(el, h('h1', null, 'My devices'), h('p', { class: 'muted' }, 'Loading…'));

  function say(bad, text) { replace(msg, h('p', { class: bad ? 'error' : 'banner ok' }, text)); }

  async function change(body, done) {
    try {
      const info = await ctx.api.post('/v1/devices', body);
      say(false, done);
      draw(info);
    } catch (e) {
      say(true, e.message);
    }
  }

  function removeButton(d) {
    const b = h('button', { type: 'button', class: 'danger', dataset: { remove: d.id } }, 'Remove');
    // Two steps, in place: a revoked device stops working everywhere.
    b.addEventListener('click', () => {
      if (b.dataset.armed !== 'yes') {
        b.dataset.armed = 'yes';
        b.textContent = d.this ? 'Really remove THIS device?' : 'Really remove device ' + d.id + '?';
        return;
      }
      b.disabled = true;
      change({ action: 'remove', device: d.id }, 'Device ' + d.id + ' is removed from the list: contacts stop using it.');
    });
    b.addEventListener('blur', () => {
      if (b.dataset.armed === 'yes' && !b.disabled) { b.dataset.armed = ''; b.textContent = 'Remove'; }
    });
    return b;
  }

  function draw(info) {
    if (!alive) return;
    const warn = !info.certified ? h('div', { class: 'banner warn', role: 'status', dataset: { warning: 'this-uncertified' } },
      h('strong', null, 'This device is not on your device list'),
      h('span', null, 'Your contacts do not encrypt to it and refuse what it sends. Add it (this signs a new list with your account key).'),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'primary', id: 'add-device', onclick: (e) => { e.target.disabled = true; change({ action: 'add' }, 'This device is on the list now.'); } }, 'Add this device'))) : null;
    replace(el,
      h('h1', null, 'My devices'),
      warn,
      h('dl', { class: 'kv' },
        h('dt', null, 'Account'), h('dd', null, info.account),
        h('dt', null, 'Account key'), h('dd', { class: 'fp' }, info.fingerprint),
        h('dt', null, 'List version'), h('dd', null, String(info.version))),
      (info.devices || []).length ? h('table', { class: 'stack' },
        h('thead', null, h('tr', null, h('th', null, 'ID'), h('th', null, 'Device key'), h('th', null, ''))),
        h('tbody', null, info.devices.map((d) => h('tr', { dataset: { device: d.id } },
          h('td', { class: 'mono', 'data-label': 'ID' }, String(d.id), d.this ? ' (this device)' : ''),
          h('td', { class: 'mono', 'data-label': 'Device key' }, d.device_key),
          h('td', null, removeButton(d)))))) : h('p', { class: 'muted' }, 'No device list yet.'),
      msg);
    el.dataset.loaded = String(Number(el.dataset.loaded || 0) + 1);
  }

  async function load() {
    try {
      draw(await ctx.api.get('/v1/devices'));
    } catch (e) {
      if (alive) replace(el, h('h1', null, 'My devices'), h('p', { class: 'error', role: 'alert' }, 'Could not load the devices: ' + e.message));
    }
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
