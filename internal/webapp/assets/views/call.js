// views/call.js: calls from the browser. The page captures the microphone
// and camera and connects to its own daemon over loopback WebRTC; the
// daemon relays the media over the protected, bound session to the
// contact's daemon. The daemon's DTLS certificate on this local leg is
// the web session's: its fingerprint comes with the session
// (leg_fingerprint) and an answer with any other is refused (pinned).
//
// The module keeps the call (one at a time) across views, and rings
// incoming calls in every view through the shell's registerRinger.
import { h, replace, clear } from '../dom.js';
import { registerRinger } from '../app.js';
import { shield } from '../trust.js';

// Call states that are over.
const ENDED = 'ended';

// active is the call of this page: {id, peer, pc, local (MediaStream),
// remote (MediaStream), info (the daemon's CallInfo), muted, cameraOff,
// error}. null when there is none.
let active = null;
const listeners = new Set(); // redraws of mounted views
let ringing = new Map(); // id -> CallInfo of incoming calls that ring
let ringBox = null;
let shared = null; // {api, events, session, navigate} of the ringer

function changed() {
  for (const fn of [...listeners]) {
    try { fn(); } catch (e) { console.error('call view', e); }
  }
  drawRing();
}

// pinned returns the parsed leg_fingerprint: {hash, value} (value upper
// case hex with colons), or null.
function parseFingerprint(s) {
  const m = /^\s*(sha-256|sha-384|sha-512)\s+([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+)\s*$/.exec(s || '');
  return m ? { hash: m[1].toLowerCase(), value: m[2].toUpperCase() } : null;
}

// checkPinned throws unless every a=fingerprint of the daemon's answer is
// the session's pinned leg fingerprint (and there is one).
export function checkPinned(sdp, pinned) {
  const want = parseFingerprint(pinned);
  if (!want) throw new Error('this session has no pinned call certificate: reload the page (run `securejingle ui` again if that does not help)');
  const found = sdp.split(/\r?\n/).filter((l) => l.startsWith('a=fingerprint:')).map((l) => parseFingerprint(l.slice('a=fingerprint:'.length)));
  if (found.length === 0) throw new Error('the daemon\'s answer has no DTLS fingerprint: the call was not connected');
  for (const f of found) {
    if (!f || f.hash !== want.hash || f.value !== want.value) {
      throw new Error('the daemon answered with another DTLS certificate than this session pinned: someone may be intercepting the page\'s media. The call was not connected; reload the page and check `securejingle status`.');
    }
  }
}

// loopbackOnly keeps the candidates of an SDP that are on loopback
// addresses: the daemon takes no other (it is on this host).
function loopbackOnly(sdp) {
  return sdp.split(/(?<=\n)/).filter((l) => {
    if (!l.startsWith('a=candidate:')) return true;
    const f = l.trim().split(/\s+/);
    const addr = f[4] || '';
    return f[2] && f[2].toLowerCase() === 'udp' && (addr === '127.0.0.1' || addr === '::1') && f[7] === 'host';
  }).join('');
}

// gathered resolves once the connection has all its candidates (the
// local leg does not trickle: loopback gathering takes milliseconds).
function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== 'complete') return;
      pc.removeEventListener('icegatheringstatechange', done);
      resolve();
    };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, 5000); // what was gathered by then
  });
}

// startLeg captures the media, makes the local leg's offer and returns
// {pc, local, remote, offer}.
async function startLeg(media) {
  let local;
  try {
    local = await navigator.mediaDevices.getUserMedia({ audio: media.audio, video: media.video });
  } catch (e) {
    throw new Error('the browser gave no ' + (media.video ? 'microphone and camera' : 'microphone') + ' (' + e.message + '): allow them for this page, or check that one is connected');
  }
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
  const remote = new MediaStream();
  pc.addEventListener('track', (e) => {
    remote.addTrack(e.track);
    changed();
  });
  for (const t of local.getTracks()) pc.addTrack(t, local);
  if (!media.video) pc.addTransceiver('video', { direction: 'recvonly' });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  return { pc, local, remote, offer: loopbackOnly(pc.localDescription.sdp) };
}

function stopLeg(c) {
  if (!c) return;
  if (c.local) for (const t of c.local.getTracks()) t.stop();
  if (c.pc) c.pc.close();
}

// connect applies the daemon's answer once its fingerprint is the pinned
// one; otherwise the call is hung up.
async function connect(ctx, c, info) {
  c.info = info;
  try {
    checkPinned(info.local_answer || '', ctx.session.leg_fingerprint);
  } catch (e) {
    c.error = e.message;
    stopLeg(c);
    c.pc = null;
    ctx.api.post('/v1/calls/' + encodeURIComponent(info.id) + '/hangup', null).catch(() => {});
    changed();
    return;
  }
  c.pc.addEventListener('connectionstatechange', () => {
    if (c.pc && (c.pc.connectionState === 'failed' || c.pc.connectionState === 'closed')) changed();
  });
  await c.pc.setRemoteDescription({ type: 'answer', sdp: info.local_answer });
  changed();
}

// placeCall calls jid from this page.
export async function placeCall(ctx, jid, video) {
  if (active && !isOver(active)) throw new Error('a call is already in progress: hang it up first');
  const c = { id: '', peer: jid, muted: false, cameraOff: false, error: '', info: null, video };
  active = c;
  changed();
  try {
    Object.assign(c, await startLeg({ audio: true, video }));
    const info = await ctx.api.post('/v1/calls', { to: jid, local_offer: c.offer });
    c.id = info.id;
    // The call's events may have come before this answer named it (a
    // contact declining at once): apply the last one seen.
    const early = recent.get(c.id);
    if (early && early.state === ENDED) {
      c.info = early;
      stopLeg(c);
      c.pc = null;
      changed();
      return;
    }
    await connect(ctx, c, info);
    startPoll();
  } catch (e) {
    c.error = e.message;
    stopLeg(c);
    c.pc = null;
    changed();
  }
}

// answerCall answers the ringing call info from this page.
export async function answerCall(ctx, info, video) {
  if (active && !isOver(active)) throw new Error('a call is already in progress: hang it up first');
  ringing.delete(info.id);
  const c = { id: info.id, peer: info.peer, muted: false, cameraOff: false, error: '', info, video };
  active = c;
  changed();
  try {
    Object.assign(c, await startLeg({ audio: true, video }));
    const answered = await ctx.api.post('/v1/calls/' + encodeURIComponent(info.id) + '/answer', { local_offer: c.offer });
    await connect(ctx, c, answered);
  } catch (e) {
    c.error = e.message;
    stopLeg(c);
    c.pc = null;
    changed();
  }
}

function isOver(c) {
  return !!c.error || (c.info && c.info.state === ENDED);
}

// hangUp ends the active call.
export async function hangUp(ctx) {
  const c = active;
  if (!c) return;
  if (c.id && !isOver(c)) {
    try {
      c.info = await ctx.api.post('/v1/calls/' + encodeURIComponent(c.id) + '/hangup', null);
    } catch (e) {
      c.error = e.message;
    }
  }
  stopLeg(c);
  changed();
}

// A session that ends takes its call with it. The daemon hangs the call
// up (the session's lifetime bounds the local leg); the page stops the
// microphone and camera and closes its peer connection at once, and no
// longer rings.
window.addEventListener('sj-logged-out', () => {
  ringing.clear();
  const c = active;
  if (c) {
    stopLeg(c);
    c.pc = null;
    if (!isOver(c)) c.error = 'the session ended, and the call with it';
  }
  changed();
});

// tellMute asks the daemon to hold the medium back too (it stops
// forwarding it) and to tell the contact (XEP-0167 mute).
function tellMute(c, body) {
  if (!c.id || !shared) return;
  shared.api.post('/v1/calls/' + encodeURIComponent(c.id) + '/mute', body).then((info) => {
    if (active === c && info) { c.info = info; changed(); }
  }).catch((e) => { c.muteError = e.message; changed(); });
}

function setMuted(c, muted) {
  c.muted = muted;
  if (c.local) for (const t of c.local.getAudioTracks()) t.enabled = !muted;
  tellMute(c, { audio: muted });
  changed();
}

function setCameraOff(c, off) {
  c.cameraOff = off;
  if (c.local) for (const t of c.local.getVideoTracks()) t.enabled = !off;
  tellMute(c, { video: off });
  changed();
}

// peerMutedText says what the contact holds back ("" for nothing).
function peerMutedText(info) {
  const m = info.peer_muted || [];
  const what = [m.includes('audio') ? 'microphone' : '', m.includes('video') ? 'camera' : ''].filter(Boolean);
  return what.length ? 'The contact turned off their ' + what.join(' and ') + '.' : '';
}

// callStats returns what the browser's getStats() says of the active
// call: inbound audio and video (packets, frames decoded), the local
// leg's ICE round-trip time (s), the DTLS-SRTP cipher, and per kind
// what the contact's browser reports of the media this one sends
// (remote-inbound-rtp: the daemons relay RTCP reports end to end, so
// its round-trip time (s) spans browser → daemon → daemon → browser and
// back).
export async function callStats() {
  const out = { audio: { packets: 0, samples: 0 }, video: { packets: 0, framesDecoded: 0 }, rtt: null, srtpCipher: '', connection: '', remote: {} };
  const c = active;
  if (!c || !c.pc) return out;
  out.connection = c.pc.connectionState;
  const stats = await c.pc.getStats();
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      out.audio.packets += s.packetsReceived || 0;
      out.audio.samples += s.totalSamplesReceived || 0;
    } else if (s.type === 'inbound-rtp' && s.kind === 'video') {
      out.video.packets += s.packetsReceived || 0;
      out.video.framesDecoded += s.framesDecoded || 0;
    } else if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime !== undefined) {
      out.rtt = s.currentRoundTripTime;
    } else if (s.type === 'transport' && s.srtpCipher) {
      out.srtpCipher = s.srtpCipher;
    } else if (s.type === 'remote-inbound-rtp' && (s.kind === 'audio' || s.kind === 'video')) {
      out.remote[s.kind] = { rtt: s.roundTripTime ?? null, totalRtt: s.totalRoundTripTime || 0, rttCount: s.roundTripTimeMeasurements || 0, lost: s.packetsLost || 0 };
    }
  });
  return out;
}

// The counters of a call (relayed packets) are not in its events: the
// call is read again every few seconds while it runs.
let poll = null;
function pollCall() {
  const c = active;
  if (!c || !c.id || isOver(c) || !shared) {
    clearInterval(poll);
    poll = null;
    return;
  }
  shared.api.get('/v1/calls/' + encodeURIComponent(c.id)).then((info) => {
    if (active !== c || !info) return;
    c.info = info;
    if (info.state === ENDED) stopLeg(c);
    changed();
  }).catch(() => {});
}

function startPoll() {
  if (!poll) poll = setInterval(pollCall, 2000);
}

// onCallEvent follows the daemon's view of every call.
// recent keeps the last event of the last few calls, for a call whose
// events arrive before the page learns its id.
const recent = new Map();

function onCallEvent(ev) {
  const info = ev.call;
  if (!info) return;
  recent.delete(info.id);
  recent.set(info.id, info);
  if (recent.size > 16) recent.delete(recent.keys().next().value);
  if (info.direction === 'incoming' && info.state === 'ringing' && !(active && active.id === info.id)) {
    ringing.set(info.id, info);
  } else {
    ringing.delete(info.id);
  }
  if (active && active.id === info.id) {
    active.info = info;
    if (info.state === ENDED) stopLeg(active);
    else startPoll();
  }
  changed();
}

// The ringer: a dialog above every view while an incoming call rings.
function drawRing() {
  if (!shared) return;
  const calls = [...ringing.values()];
  if (calls.length === 0) {
    if (ringBox) { ringBox.remove(); ringBox = null; }
    return;
  }
  if (!ringBox) {
    ringBox = h('div', { class: 'ring', role: 'alertdialog', 'aria-label': 'Incoming call', 'aria-live': 'assertive' });
    document.body.appendChild(ringBox);
  }
  replace(ringBox, calls.map((info) => h('div', { class: 'ring-call', dataset: { call: info.id } },
    h('strong', null, 'Incoming ' + (info.media || []).join(' and ') + ' call'),
    h('p', null, info.peer, ' ', shield(info.trust, '')),
    info.verified ? null : h('p', { class: 'muted' }, 'You have not verified this contact: compare the SAS before you trust who is calling.'),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'primary', dataset: { action: 'accept' },
        onclick: () => { shared.navigate('call', { id: info.id }); answerCall(shared, info, (info.media || []).includes('video')); } },
      (info.media || []).includes('video') ? 'Accept with video' : 'Accept'),
      (info.media || []).includes('video') ? h('button', { type: 'button', dataset: { action: 'accept-audio' },
        onclick: () => { shared.navigate('call', { id: info.id }); answerCall(shared, info, false); } }, 'Accept audio only') : null,
      h('button', { type: 'button', class: 'danger', dataset: { action: 'decline' },
        onclick: () => {
          ringing.delete(info.id);
          changed();
          shared.api.post('/v1/calls/' + encodeURIComponent(info.id) + '/decline', null).catch((e) => console.error('decline', e));
        } }, 'Decline')))));
  const first = ringBox.querySelector('button');
  if (first && !ringBox.contains(document.activeElement)) first.focus();
}

registerRinger((ctx) => {
  shared = ctx;
  ctx.events.on('call', onCallEvent);
  ctx.api.get('/v1/calls').then((r) => {
    for (const c of (r && r.calls) || []) onCallEvent({ call: c });
  }).catch(() => {});
});

// Texts of the call view.
const bindingText = {
  pending: ['pending', 'The contact\'s DTLS certificate has not been checked yet.'],
  passed: ['✔ passed', 'The media connection presents the certificate the contact\'s certified device signaled end to end.'],
  failed: ['✖ FAILED', 'The media connection presented another certificate: the call was ended (someone may be intercepting it).'],
};

function videoEl(stream, muted, label, role) {
  const v = h('video', { autoplay: true, playsinline: true, class: 'call-video ' + role, dataset: { role }, 'aria-label': label });
  v.muted = muted;
  if (stream) v.srcObject = stream;
  return v;
}

function callPanel(ctx, c) {
  const info = c.info || {};
  const state = c.error ? 'failed' : info.state || 'starting';
  const [bind, bindHelp] = bindingText[info.binding] || bindingText.pending;
  const over = isOver(c);
  return h('div', { class: 'call', dataset: { state, call: c.id || '' } },
    h('h2', null, c.peer, ' ', shield(info.trust, '')),
    c.error ? h('p', { class: 'error', role: 'alert' }, c.error) : null,
    c.muteError ? h('p', { class: 'error', role: 'alert' }, 'Mute not told to the daemon: ' + c.muteError) : null,
    peerMutedText(info) ? h('p', { class: 'muted', role: 'status', dataset: { field: 'peer-muted' } }, peerMutedText(info)) : null,
    info.state === ENDED ? h('p', { class: info.end_reason === 'success' ? 'muted' : 'error', role: 'status' },
      'Call ended (' + (info.end_reason || '') + ')' + (info.detail ? ': ' + info.detail : '')) : null,
    h('dl', { class: 'kv' },
      h('dt', null, 'State'), h('dd', { dataset: { field: 'state' } }, state),
      h('dt', null, 'Contact'), h('dd', null, info.peer_full || c.peer),
      h('dt', null, 'Account key'), h('dd', { class: 'fp' }, info.account_fingerprint || 'not known yet'),
      h('dt', null, 'Verified'), h('dd', { dataset: { field: 'verified' } }, info.verified ? '✔ yes' : 'no: compare the SAS in Verify'),
      h('dt', null, 'Binding check'), h('dd', { dataset: { field: 'binding' }, title: bindHelp, class: info.binding === 'failed' ? 'error' : '' }, bind),
      h('dt', null, 'SRTP to the contact'), h('dd', { class: 'mono', dataset: { field: 'srtp' } }, info.srtp_profile || '—'),
      h('dt', null, 'SRTP browser ↔ daemon'), h('dd', { class: 'mono', dataset: { field: 'local-srtp' } }, info.local_srtp_profile || '—'),
      h('dt', null, 'Relayed'), h('dd', { dataset: { field: 'relayed' } }, (info.relayed_to_peer || 0) + ' packets out, ' + (info.relayed_to_local || 0) + ' in')),
    h('div', { class: 'call-media' },
      videoEl(c.remote, false, 'Video of ' + c.peer, 'remote'),
      c.video ? videoEl(c.local, true, 'Your camera', 'self') : null),
    h('div', { class: 'actions' },
      h('button', { type: 'button', dataset: { action: 'mute' }, disabled: over, 'aria-pressed': c.muted ? 'true' : 'false',
        onclick: () => setMuted(c, !c.muted) }, c.muted ? 'Unmute' : 'Mute'),
      c.video ? h('button', { type: 'button', dataset: { action: 'video' }, disabled: over, 'aria-pressed': c.cameraOff ? 'true' : 'false',
        onclick: () => setCameraOff(c, !c.cameraOff) }, c.cameraOff ? 'Camera on' : 'Camera off') : null,
      over ? h('button', { type: 'button', dataset: { action: 'close' }, onclick: () => { active = null; changed(); } }, 'Close')
        : h('button', { type: 'button', class: 'danger', dataset: { action: 'hangup' }, onclick: () => hangUp(ctx) }, 'Hang up')));
}

// contactList is the call button of every contact.
async function contactList(ctx, box, only) {
  let peers = [];
  try {
    peers = ((await ctx.api.get('/v1/peers')).peers || []).filter((p) => !p.self && (!only || p.jid === only));
  } catch (e) {
    replace(box, h('p', { class: 'error' }, 'Could not load the contacts: ' + e.message));
    return;
  }
  replace(box, peers.length ? h('ul', { class: 'cards' }, peers.map((p) => h('li', { class: 'card', dataset: { jid: p.jid } },
    h('h2', null, p.jid, ' ', shield(p.trust, p.method)),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'primary', dataset: { action: 'call-video' }, onclick: () => placeCall(ctx, p.jid, true) }, 'Video call'),
      h('button', { type: 'button', dataset: { action: 'call-audio' }, onclick: () => placeCall(ctx, p.jid, false) }, 'Audio call')))))
    : h('p', { class: 'muted' }, 'No contacts to call yet.'));
}

// mount draws the call in progress, or the contacts to call.
export function mount(el, ctx) {
  const list = h('div', { class: 'call-contacts' });
  const panel = h('div', { class: 'call-panel' });
  let drawn = null; // the call the panel shows, redrawn on change
  function draw() {
    if (active) {
      // Keep the video elements of a live call: only the rest is redrawn.
      if (drawn !== active) { clear(panel); drawn = active; }
      const fresh = callPanel(ctx, active);
      const old = panel.firstChild;
      if (old) {
        const oldMedia = old.querySelector('.call-media');
        const newMedia = fresh.querySelector('.call-media');
        if (oldMedia && newMedia && oldMedia.childElementCount === newMedia.childElementCount) newMedia.replaceWith(oldMedia);
        panel.replaceChild(fresh, old);
      } else {
        panel.appendChild(fresh);
      }
      for (const [role, stream] of [['remote', active.remote], ['self', active.local]]) {
        const v = panel.querySelector('video[data-role="' + role + '"]');
        if (v && stream && v.srcObject !== stream) v.srcObject = stream;
      }
      list.hidden = true;
    } else {
      clear(panel);
      drawn = null;
      list.hidden = false;
    }
  }
  replace(el, h('h1', null, 'Call'), panel, list);
  contactList(ctx, list, ctx.params.get('jid'));
  listeners.add(draw);
  draw();
  return () => listeners.delete(draw);
}
