// views/verify.js: verify a contact's account key (#/verify?jid=...):
// compare the SAS and mark verified, show our QR code, or scan theirs
// with the camera. Every decision goes to POST /v1/trust with the key it
// is about, so a key that changed meanwhile is never verified by mistake.
import { h, replace, clear } from '../dom.js';
import { shield, peerWarnings, banner } from '../trust.js';

const refreshOn = ['peer', 'key-changed', 'distrusted', 'trust'];
// scanInterval is the pause between two decoded camera frames, ms.
const scanInterval = 150;

let jsQRLoaded = null;
function loadJsQR() {
  // The vendored UMD build sets self.jsQR when loaded as a module.
  if (!jsQRLoaded) jsQRLoaded = import('../vendor/jsQR.js').then(() => self.jsQR);
  return jsQRLoaded;
}

// mount draws the verification page of ctx.params.get('jid').
export function mount(el, ctx) {
  const jid = ctx.params.get('jid') || '';
  let alive = true;
  let scanner = null;
  let pending = null;
  const msg = h('div', { class: 'result', role: 'status', 'aria-live': 'polite' });

  if (!jid) {
    replace(el, h('h1', null, 'Verify a contact'),
      h('p', null, 'Choose a contact to verify in the ', h('a', { href: '#/contacts' }, 'contact list'), '.'));
    return () => {};
  }
  replace(el, h('h1', null, 'Verify ', jid), h('p', { class: 'muted' }, 'Loading…'));

  function say(level, text) {
    replace(msg, h('p', { class: level === 'bad' ? 'error' : level === 'ok' ? 'banner ok' : '' }, text));
  }

  async function trust(action, key, method) {
    const body = { jid, action };
    if (key) body.key = key;
    if (method) body.method = method;
    const res = await ctx.api.post('/v1/trust', body);
    return res;
  }

  async function load() {
    let info, own;
    try {
      [info, own] = await Promise.all([ctx.api.get('/v1/verify?jid=' + encodeURIComponent(jid)), ownQR()]);
    } catch (e) {
      if (alive) replace(el, h('h1', null, 'Verify ', jid), h('p', { class: 'error', role: 'alert' }, 'Could not load ' + jid + ': ' + e.message));
      return;
    }
    if (!alive) return;
    draw(info, own);
  }

  async function ownQR() {
    const acct = ctx.session.account;
    const v = await ctx.api.get('/v1/verify?jid=' + encodeURIComponent(acct));
    return v;
  }

  function draw(info, own) {
    const changed = info.trust === 'changed' && info.pending_key;
    // While the key changed, the SAS and the action are about the new key.
    const key = changed ? info.pending_key : info.key;
    const sas = changed ? info.pending_sas : info.sas;
    const fp = changed ? info.pending_fingerprint_blocks : info.fingerprint_blocks;
    const warnings = peerWarnings({ jid, trust: info.trust, devices: [] }).map((w) => banner(w));

    const markVerified = h('button', {
      type: 'button', class: 'primary', id: 'mark-verified',
      onclick: async () => {
        markVerified.disabled = true;
        try {
          const r = await trust('verify', key, 'sas');
          say('ok', jid + ' is verified (' + r.method + '). ');
          await load();
        } catch (e) {
          markVerified.disabled = false;
          say('bad', 'Not verified: ' + e.message);
        }
      },
    }, changed ? 'The numbers match: verify the NEW key' : 'The numbers match: mark verified');
    const distrust = h('button', {
      type: 'button', class: 'danger',
      onclick: async () => {
        try {
          await trust('distrust');
          say('bad', jid + ' is distrusted: its devices are no longer used.');
          await load();
        } catch (e) { say('bad', 'Could not distrust: ' + e.message); }
      },
    }, 'They do not match: distrust');
    const accept = changed ? h('button', {
      type: 'button',
      onclick: async () => {
        try {
          await trust('accept', info.pending_key);
          say('', 'The new key is accepted without verification (TOFU).');
          await load();
        } catch (e) { say('bad', 'Could not accept: ' + e.message); }
      },
    }, 'Accept the new key without verifying') : null;

    const scanArea = h('div', { class: 'scan-area' });
    const scanButton = h('button', { type: 'button', id: 'scan-qr', onclick: () => startScan(scanArea, scanButton) }, 'Scan their QR code with the camera');
    const ownImg = own && own.qr ? h('img', { src: ctx.api.href('/api/qr?uri=' + encodeURIComponent(own.qr)), alt: 'QR code of your account key (' + own.jid + ')', id: 'own-qr' }) : null;

    replace(el,
      h('h1', null, 'Verify ', jid, ' ', shield(info.trust, info.method)),
      warnings,
      h('section', { 'aria-labelledby': 'sas-h' },
        h('h2', { id: 'sas-h' }, '1. Compare the numbers'),
        h('p', null, 'Call or meet ', jid, ' and compare these numbers; they see the same ones on their side if each of you holds the other\'s real key.'),
        h('p', { class: 'sas', id: 'sas' }, sas || '—'),
        h('dl', { class: 'kv' },
          h('dt', null, changed ? 'New account key' : 'Account key'), h('dd', { class: 'fp', id: 'fingerprint' }, fp || ''),
          changed ? [h('dt', null, 'Old key'), h('dd', { class: 'fp muted' }, info.fingerprint_blocks)] : null),
        h('div', { class: 'actions' }, markVerified, distrust, accept)),
      h('section', { 'aria-labelledby': 'qr-h' },
        h('h2', { id: 'qr-h' }, '2. Or use QR codes'),
        h('div', { class: 'row' },
          h('div', { class: 'qr' }, h('p', null, 'Your code, for them to scan:'), ownImg),
          h('div', null, h('p', null, 'Their code:'), scanButton, scanArea))),
      msg);
    el.dataset.trust = info.trust;
  }

  async function startScan(area, button) {
    stopScan();
    button.disabled = true;
    let jsQR;
    try {
      jsQR = await loadJsQR();
    } catch (e) {
      button.disabled = false;
      say('bad', 'The QR reader failed to load: ' + e.message);
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
    } catch (e) {
      button.disabled = false;
      say('bad', 'No camera (' + e.message + '): allow camera access for this page, or compare the numbers instead.');
      return;
    }
    if (!alive) { stream.getTracks().forEach((t) => t.stop()); return; }
    const video = h('video', { class: 'scan', autoplay: true, muted: true, playsinline: true, 'aria-label': 'Camera picture' });
    video.srcObject = stream;
    const stop = h('button', { type: 'button', onclick: () => { stopScan(); button.disabled = false; } }, 'Stop the camera');
    replace(area, video, h('p', { class: 'muted' }, 'Hold their code in front of the camera.'), stop);
    const canvas = document.createElement('canvas');
    const g = canvas.getContext('2d', { willReadFrequently: true });
    const s = { stream, timer: null, done: false };
    scanner = s;
    const tick = async () => {
      if (s.done) return;
      if (video.readyState >= 2 && video.videoWidth > 0) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        g.drawImage(video, 0, 0);
        const img = g.getImageData(0, 0, canvas.width, canvas.height);
        const code = jsQR(img.data, img.width, img.height, { inversionAttempts: 'attemptBoth' });
        if (code && code.data) {
          stopScan();
          clear(area);
          button.disabled = false;
          await scanned(code.data);
          return;
        }
      }
      s.timer = setTimeout(tick, scanInterval);
    };
    tick();
  }

  function stopScan() {
    if (!scanner) return;
    scanner.done = true;
    if (scanner.timer) clearTimeout(scanner.timer);
    scanner.stream.getTracks().forEach((t) => t.stop());
    scanner = null;
  }

  async function scanned(uri) {
    let k;
    try {
      k = await ctx.api.post('/api/verify-uri', { uri });
    } catch (e) {
      say('bad', e.message);
      return;
    }
    if (k.jid !== jid) {
      say('bad', 'This code is for ' + k.jid + ', not ' + jid + ': scan ' + jid + '\'s code.');
      return;
    }
    try {
      const r = await trust('verify', k.key, 'qr');
      say('ok', jid + ' is verified (' + r.method + '): the scanned key is theirs.');
      await load();
    } catch (e) {
      say('bad', 'Not verified: ' + e.message);
    }
  }

  function soon() {
    if (pending || scanner) return;
    pending = setTimeout(() => { pending = null; load(); }, 150);
  }
  for (const k of refreshOn) ctx.events.on(k, soon);
  load();
  return () => {
    alive = false;
    stopScan();
    if (pending) clearTimeout(pending);
    for (const k of refreshOn) ctx.events.off(k, soon);
  };
}
