// views/files.js: file transfers. Send files to a contact by the picker
// or by dropping them (each is uploaded to the daemon, which offers it
// end-to-end encrypted); every transfer with a progress bar, rate and
// ETA; incoming offers to accept or decline; completed files to
// download; failures with the daemon's explanation and, where it can go
// on, a resume button.
import { h, replace, fmtTime } from '../dom.js';
import { shield } from '../trust.js';

const stateText = {
  uploading: 'uploading to your daemon',
  offered: 'offered: waiting for the receiver to accept',
  pending: 'waiting for you to accept or decline',
  connecting: 'accepted: connecting',
  transferring: 'transferring',
  verifying: 'all bytes in: checking the hash',
  completed: 'completed: the receiver verified every file’s hash',
  failed: 'failed',
  cancelled: 'cancelled',
  declined: 'declined',
};
const ended = new Set(['completed', 'failed', 'cancelled', 'declined']);

// fmtBytes formats a byte count (1000-based, as the command line does).
export function fmtBytes(n) {
  n = Number(n) || 0;
  if (n < 1000) return n + ' B';
  const units = ['kB', 'MB', 'GB', 'TB'];
  let i = -1;
  do { n /= 1000; i++; } while (n >= 1000 && i < units.length - 1);
  return n.toFixed(n < 10 ? 1 : 0) + ' ' + units[i];
}

// fmtETA formats the seconds left, "--:--" when unknown.
function fmtETA(s) {
  if (!isFinite(s) || s < 0) return '--:--';
  s = Math.ceil(s);
  const m = Math.floor(s / 60);
  return m >= 60 ? Math.floor(m / 60) + 'h' + String(m % 60).padStart(2, '0') : m + ':' + String(s % 60).padStart(2, '0');
}

function progressOf(done, total, rate, active) {
  const pct = total > 0 ? Math.floor((done * 100) / total) : (done > 0 ? 100 : 0);
  const eta = rate > 0 ? (total - done) / rate : Infinity;
  return h('div', { class: 'progress-row' },
    h('progress', { max: String(total || 1), value: String(Math.min(done, total || 1)), 'aria-label': pct + ' percent' }),
    h('span', { class: 'pct' }, pct + '%'), ' ',
    h('span', { class: 'muted' }, fmtBytes(done) + ' / ' + fmtBytes(total) +
      (active ? ' · ' + fmtBytes(rate) + '/s · ETA ' + fmtETA(eta) : '')));
}

// mount draws the send form and the transfer list and keeps them current.
export function mount(el, ctx) {
  let alive = true;
  const transfers = new Map(); // id -> TransferInfo
  const uploads = new Map(); // local key -> {name, peer, loaded, total, start, error}
  let uploadSeq = 0;

  const peerSelect = h('select', { id: 'files-peer', name: 'peer' }, h('option', { value: '' }, 'Loading contacts…'));
  const picker = h('input', { type: 'file', id: 'files-picker', multiple: true });
  const sendStatus = h('div', { class: 'send-status', role: 'status' });
  const drop = h('div', { class: 'dropzone', tabindex: '-1' }, 'Or drop files here.');
  const list = h('ul', { class: 'cards transfers', 'aria-live': 'polite' });
  const sendBtn = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const form = h('form', { class: 'send-files', onsubmit: (e) => { e.preventDefault(); sendFiles(picker.files); } },
    h('div', { class: 'row' }, h('label', { for: 'files-peer' }, 'To'), peerSelect),
    h('div', { class: 'row' }, h('label', { for: 'files-picker' }, 'Files'), picker, sendBtn),
    drop, sendStatus);
  const pre = ctx.params.get('jid') || '';
  replace(el, h('h1', null, 'Files'),
    h('p', { class: 'muted' }, 'Files go end-to-end encrypted to a certified device of the contact, never in cleartext. Received files are saved in the daemon’s download directory.'),
    form, h('h2', null, 'Transfers'), list);

  for (const ev of ['dragenter', 'dragover']) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add('over'); });
  }
  for (const ev of ['dragleave', 'drop']) drop.addEventListener(ev, () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); if (e.dataTransfer) sendFiles(e.dataTransfer.files); });

  async function loadPeers() {
    let peers = [];
    try { peers = (await ctx.api.get('/v1/peers')).peers || []; } catch (e) {
      replace(peerSelect, h('option', { value: '' }, 'Could not load the contacts'));
      return;
    }
    if (!alive) return;
    const contacts = peers.filter((p) => !p.self);
    replace(peerSelect, h('option', { value: '' }, 'Choose a contact'),
      contacts.map((p) => h('option', { value: p.jid, selected: p.jid === pre }, p.jid + ' (' + p.trust + ')')));
  }

  function sendFiles(files) {
    const peer = peerSelect.value;
    if (!peer) {
      replace(sendStatus, h('p', { class: 'error', role: 'alert' }, 'Choose the contact to send to first.'));
      peerSelect.focus();
      return;
    }
    if (!files || !files.length) {
      replace(sendStatus, h('p', { class: 'error', role: 'alert' }, 'Choose one or more files first.'));
      return;
    }
    replace(sendStatus);
    for (const f of Array.from(files)) upload(peer, f);
    picker.value = '';
  }

  async function upload(peer, file) {
    const key = 'u' + (++uploadSeq);
    const u = { key, name: file.name, peer, loaded: 0, total: file.size, start: Date.now(), error: '' };
    uploads.set(key, u);
    draw();
    const q = new URLSearchParams({ peer, name: file.name });
    try {
      // The body is the file's bytes; the slice only retypes it.
      const t = await ctx.api.upload('/v1/files/upload?' + q, file.slice(0, file.size, 'application/octet-stream'),
        (loaded, total) => { u.loaded = loaded; u.total = total; drawSoon(); });
      uploads.delete(key);
      // A file event may have brought a newer state already.
      if (t && t.id && !transfers.has(t.id)) transfers.set(t.id, t);
    } catch (e) {
      u.error = e.message;
    }
    if (alive) draw();
  }

  function uploadItem(u) {
    const secs = (Date.now() - u.start) / 1000;
    const rate = secs > 0 ? u.loaded / secs : 0;
    return h('li', { class: 'card transfer uploading' + (u.error ? ' bad' : ''), dataset: { upload: u.key } },
      h('h3', null, '↑ ', h('span', { class: 'fname' }, u.name), ' to ', u.peer),
      u.error
        ? h('p', { class: 'error', role: 'alert' }, 'Not sent: ' + u.error)
        : [h('p', { class: 'state' }, u.loaded < u.total ? stateText.uploading : 'handing it to the daemon (hashing)…'),
          progressOf(u.loaded, u.total, rate, u.loaded < u.total)],
      u.error ? h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => { uploads.delete(u.key); draw(); } }, 'Dismiss')) : null);
  }

  function act(t, action, body) {
    return async () => {
      try {
        const r = await ctx.api.post('/v1/files/' + encodeURIComponent(t.id) + '/' + action, body);
        transfers.set(r.id, r);
      } catch (e) {
        t.actionError = action + ': ' + e.message;
      }
      if (alive) draw();
    };
  }

  function transferItem(t) {
    const out = t.direction === 'outgoing';
    const active = t.state === 'transferring' || t.state === 'connecting' || t.state === 'verifying';
    const files = (t.files || []).map((f, i) => h('li', { class: 'file', dataset: { state: f.state || '' } },
      h('span', { class: 'fname' }, f.name), ' ', h('span', { class: 'muted' }, fmtBytes(f.size)),
      f.hash ? h('span', { class: 'mono muted hash' }, ' ' + f.hash.slice(0, 23) + '…') : null, ' ',
      !out && f.state === 'completed'
        ? h('a', { class: 'button download', href: ctx.api.href('/v1/files/' + encodeURIComponent(t.id) + '/content' + (i ? '?file=' + i : '')), download: f.name }, 'Download')
        : null));
    const actions = [];
    if (!out && t.state === 'pending') {
      actions.push(h('button', { type: 'button', class: 'primary accept', onclick: act(t, 'accept', {}) }, 'Accept'),
        h('button', { type: 'button', class: 'decline', onclick: act(t, 'decline') }, 'Decline'));
    } else if (!ended.has(t.state)) {
      actions.push(h('button', { type: 'button', class: 'cancel', onclick: act(t, 'cancel') }, 'Cancel'));
    } else if (t.state === 'failed') {
      actions.push(h('button', { type: 'button', class: 'resume', onclick: act(t, 'resume') }, 'Resume'));
    }
    const bad = t.state === 'failed' || t.state === 'declined';
    return h('li', { class: 'card transfer' + (bad ? ' bad' : ''), dataset: { id: t.id, state: t.state, direction: t.direction } },
      h('h3', null, out ? '↑ to ' : '↓ from ', t.peer, ' ', shield(t.trust, t.verified ? 'verified' : '')),
      h('ul', { class: 'files' }, files),
      h('p', { class: 'state' }, stateText[t.state] || t.state,
        t.transport ? h('span', { class: 'muted' }, ' · ' + t.transport) : null,
        t.resumed ? h('span', { class: 'muted' }, ' · resumed from ' + fmtBytes(t.resumed_from)) : null),
      progressOf(t.bytes_done || 0, t.bytes_total || 0, t.rate || 0, active),
      t.detail ? h('p', { class: bad ? 'error detail' : 'muted detail', role: bad ? 'alert' : null }, t.detail) : null,
      t.actionError ? h('p', { class: 'error action-error', role: 'alert' }, t.actionError) : null,
      h('p', { class: 'muted' }, 'Created ' + fmtTime(t.created) + (t.ended ? ', ended ' + fmtTime(t.ended) : '')),
      actions.length ? h('div', { class: 'actions' }, actions) : null);
  }

  function draw() {
    if (!alive) return;
    const ts = [...transfers.values()].sort((a, b) => String(b.created).localeCompare(String(a.created)));
    replace(list, [...uploads.values()].map(uploadItem), ts.map(transferItem),
      !uploads.size && !ts.length ? h('li', { class: 'muted' }, 'No transfers yet.') : null);
    el.dataset.drawn = String(Number(el.dataset.drawn || 0) + 1);
  }
  let drawTimer = null;
  function drawSoon() {
    if (drawTimer) return;
    drawTimer = setTimeout(() => { drawTimer = null; draw(); }, 100);
  }

  function onFile(ev) {
    if (!ev.file || !ev.file.id) return;
    transfers.set(ev.file.id, ev.file);
    drawSoon();
  }

  async function loadTransfers() {
    try {
      const r = await ctx.api.get('/v1/files');
      if (!alive) return;
      for (const t of r.transfers || []) if (!transfers.has(t.id)) transfers.set(t.id, t);
      el.dataset.loaded = String(Number(el.dataset.loaded || 0) + 1);
    } catch (e) {
      replace(sendStatus, h('p', { class: 'error', role: 'alert' }, 'Could not list the transfers: ' + e.message));
    }
    draw();
  }

  ctx.events.on('file', onFile);
  loadPeers();
  loadTransfers();
  return () => {
    alive = false;
    if (drawTimer) clearTimeout(drawTimer);
    ctx.events.off('file', onFile);
  };
}
