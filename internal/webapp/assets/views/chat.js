// views/chat.js: conversations. The list of contacts and conversations,
// and one conversation (route #/chat?jid=JID): the history from the
// daemon (GET /v1/messages, paged), live messages from the event stream,
// the delivery state of what you sent, and every message that did not
// come end-to-end encrypted (or that the policy refused) marked so it
// cannot pass for a secure one. Bodies are text, never HTML.
import { h, replace, clear, fmtTime } from '../dom.js';
import { shield } from '../trust.js';

const PAGE = 50; // messages a page of the history brings
const MAX_SHOWN = 600; // messages kept in the page at most
const MAX_SEND = 16384; // bytes a message may have (api.MaxChatBody)

const refreshListOn = ['chat', 'chat-sent', 'peer', 'trust', 'key-changed', 'distrusted'];

// deliveryText says how far a message sent from here got.
function deliveryText(m) {
  const got = (m.devices || []).filter((d) => d.delivered);
  switch (m.state) {
    case 'delivered':
      return { cls: 'ok', text: '✔✔ delivered to ' + (got.length === 1 ? 'device ' + got[0].device : got.length + ' devices') +
        (got[0] && got[0].time ? ' at ' + fmtTime(got[0].time) : '') };
    case 'not-delivered':
      return { cls: 'bad', text: '✖ not delivered: the server returned an error for it (send it again later)' };
    case 'sent':
      return { cls: 'muted', text: '✔ sent: handed to the server, no device has confirmed it yet' };
  }
  return null;
}

function messageItem(m, peer) {
  const out = m.direction === 'outgoing';
  const who = out ? (m.carbon ? 'You (another device)' : 'You') : peer;
  const classes = ['msg', out ? 'out' : 'in'];
  if (m.unencrypted) classes.push('unencrypted');
  if (m.refused) classes.push('refused');
  const marks = [];
  if (m.refused) {
    marks.push(h('p', { class: 'mark bad', role: 'note' },
      h('strong', null, '⚠ Refused, not part of the conversation. '),
      'This message came without end-to-end encryption although your conversation with ', peer,
      ' is encrypted: it may be a downgrade attempt or text injected by the server. Do not trust it; see the alert.'));
  } else if (m.unencrypted) {
    marks.push(h('p', { class: 'mark warn', role: 'note' },
      h('strong', null, '⚠ NOT ENCRYPTED. '),
      out ? 'Shown as sent by another login of your account without encryption: if you did not send it, it is forged.'
        : 'The server could read or forge this message.'));
  }
  const body = h('p', { class: 'body' }, m.body);
  const cut = m.truncated ? h('p', { class: 'muted cut' }, 'Message cut: it was ' + m.size + ' bytes; the first ' + new TextEncoder().encode(m.body).length + ' are shown.') : null;
  const del = out && !m.carbon ? deliveryText(m) : null;
  return h('li', { class: classes.join(' '), dataset: { id: m.id, direction: m.direction, state: m.state || '' } },
    h('div', { class: 'meta' },
      h('span', { class: 'who' }, who), ' ',
      h('time', { class: 'muted', datetime: m.time || '' }, fmtTime(m.time)), ' ',
      m.encrypted ? h('span', { class: 'lock', title: 'end-to-end encrypted' }, '✔ encrypted') : null),
    marks, body, cut,
    del ? h('p', { class: 'delivery ' + del.cls }, del.text) : null);
}

// mount draws the conversation list and, with a jid parameter, one
// conversation.
export function mount(el, ctx) {
  let alive = true;
  const peer = ctx.params.get('jid') || '';
  const listBox = h('nav', { class: 'conv-list', 'aria-label': 'Conversations' }, h('p', { class: 'muted' }, 'Loading…'));
  const pane = h('div', { class: 'conv-pane' });
  replace(el, h('h1', null, 'Chat'), h('div', { class: 'chat-layout' }, listBox, pane));

  // The conversation list: contacts and whoever wrote, newest first.
  let listTimer = null;
  async function loadList() {
    let peers = [];
    let convs = [];
    try {
      [peers, convs] = await Promise.all([
        ctx.api.get('/v1/peers').then((r) => r.peers || []),
        ctx.api.get('/v1/conversations').then((r) => r.conversations || []),
      ]);
    } catch (e) {
      if (alive) replace(listBox, h('p', { class: 'error' }, 'Could not load the conversations: ' + e.message));
      return;
    }
    if (!alive) return;
    const byJID = new Map(peers.filter((p) => !p.self).map((p) => [p.jid, p]));
    const rows = convs.map((c) => ({ jid: c.peer, conv: c, peer: byJID.get(c.peer) }));
    for (const [jid, p] of byJID) if (!rows.some((r) => r.jid === jid)) rows.push({ jid, peer: p });
    replace(listBox, rows.length ? h('ul', null, rows.map((r) => h('li', { dataset: { jid: r.jid } },
      h('a', { href: '#/chat?jid=' + encodeURIComponent(r.jid), 'aria-current': r.jid === peer ? 'page' : false },
        h('span', { class: 'conv-jid' }, r.jid), ' ',
        r.peer ? shield(r.peer.trust, r.peer.method) : h('span', { class: 'shield new' }, 'not a contact'),
        r.conv && r.conv.warnings ? h('span', { class: 'badge', title: 'unencrypted or refused messages' }, '⚠ ' + r.conv.warnings) : null,
        r.conv ? h('span', { class: 'preview muted' }, (r.conv.last.direction === 'outgoing' ? 'You: ' : '') + r.conv.last.body) : null))))
      : h('p', { class: 'muted' }, 'No contacts yet.'));
  }
  function listSoon() {
    if (listTimer) return;
    listTimer = setTimeout(() => { listTimer = null; loadList(); }, 250);
  }
  for (const k of refreshListOn) ctx.events.on(k, listSoon);
  loadList();

  if (!peer) {
    replace(pane, h('p', { class: 'muted' }, 'Choose a conversation.'));
    return () => {
      alive = false;
      if (listTimer) clearTimeout(listTimer);
      for (const k of refreshListOn) ctx.events.off(k, listSoon);
    };
  }

  // One conversation.
  const msgs = new Map(); // id -> {m, el}
  const early = new Map(); // message id -> delivery state that came before the message
  const ol = h('ol', { class: 'messages', 'aria-live': 'polite', 'aria-label': 'Messages with ' + peer });
  const olderBtn = h('button', { type: 'button', class: 'load-older', hidden: true, onclick: () => loadOlder() }, 'Load older messages');
  const header = h('div', { class: 'conv-head' }, h('h2', null, peer));
  const input = h('textarea', { id: 'chat-input', rows: '3', maxlength: String(MAX_SEND * 4), 'aria-describedby': 'chat-hint' });
  const sendBtn = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const sendStatus = h('p', { class: 'send-status', role: 'status' });
  const form = h('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); send(); } },
    h('label', { for: 'chat-input' }, 'Message to ' + peer),
    input,
    h('p', { id: 'chat-hint', class: 'muted' }, 'Text only, end-to-end encrypted to ', peer, '’s certified devices; never sent in cleartext. Ctrl+Enter sends.'),
    h('div', { class: 'actions' }, sendBtn), sendStatus);
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); send(); } });
  replace(pane, header, olderBtn, ol, form);
  pane.dataset.peer = peer;

  let next = '';
  function atBottom() { return ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40; }
  function scrollDown() { ol.scrollTop = ol.scrollHeight; }

  // put adds or redraws a message; older ones go on top.
  function put(m, where) {
    const d = early.get(m.id);
    if (d) { m.state = d.state; m.devices = d.devices; early.delete(m.id); }
    const cur = msgs.get(m.id);
    const item = messageItem(m, peer);
    if (cur) {
      cur.el.replaceWith(item);
      cur.m = m;
      cur.el = item;
      return;
    }
    msgs.set(m.id, { m, el: item });
    if (where === 'top') ol.prepend(item);
    else ol.append(item);
    // A bounded page: the oldest go once too many are shown.
    while (msgs.size > MAX_SHOWN) {
      const first = ol.firstElementChild;
      msgs.delete(first.dataset.id);
      first.remove();
      olderBtn.hidden = true;
    }
  }

  async function loadPeer() {
    try {
      const p = ((await ctx.api.get('/v1/peers')).peers || []).find((x) => x.jid === peer);
      if (!alive) return;
      replace(header, h('h2', null, peer, ' ', p ? shield(p.trust, p.method) : h('span', { class: 'shield new' }, 'not a contact')),
        p && p.trust !== 'verified' ? h('p', { class: 'muted' }, 'Not verified: ', h('a', { href: '#/verify?jid=' + encodeURIComponent(peer) }, 'compare the safety numbers'), ' to be sure who you are writing to.') : null);
    } catch (_) { /* the header stays plain */ }
  }

  async function loadOlder(first) {
    const q = new URLSearchParams({ peer, limit: String(PAGE) });
    if (next) q.set('before', next);
    let r;
    try {
      r = await ctx.api.get('/v1/messages?' + q);
    } catch (e) {
      if (alive) replace(sendStatus, h('span', { class: 'error', role: 'alert' }, 'Could not load the messages: ' + e.message));
      return;
    }
    if (!alive) return;
    const list = r.messages || [];
    for (let i = list.length - 1; i >= 0; i--) if (!msgs.has(list[i].id)) put(list[i], 'top');
    next = r.next || '';
    olderBtn.hidden = !r.more || msgs.size >= MAX_SHOWN;
    if (first) {
      if (!list.length) ol.append(h('li', { class: 'muted empty' }, 'No messages yet.'));
      scrollDown();
      pane.dataset.loaded = String(Number(pane.dataset.loaded || 0) + 1);
    }
  }

  function live(m) {
    const empty = ol.querySelector('.empty');
    if (empty) empty.remove();
    const down = atBottom();
    put(m);
    if (down || m.direction === 'outgoing') scrollDown();
  }

  function onChat(ev) {
    if (ev.from !== peer) return;
    live({ id: ev.id, direction: 'incoming', peer, from: ev.from, device: ev.device, time: ev.time, body: ev.body || '',
      truncated: ev.truncated, size: ev.size, encrypted: !!ev.encrypted, unencrypted: !!ev.unencrypted, refused: !!ev.refused, detail: ev.detail });
  }
  function onSent(ev) {
    if (ev.to !== peer) return;
    live({ id: ev.id, direction: 'outgoing', peer, to: ev.to, time: ev.time, body: ev.body || '', truncated: ev.truncated, size: ev.size,
      encrypted: !!ev.encrypted, unencrypted: !!ev.unencrypted, carbon: true, detail: ev.detail });
  }
  function onDelivery(ev) {
    const d = ev.delivery;
    if (!d || !ev.message_id) return;
    const cur = msgs.get(ev.message_id);
    if (!cur) {
      early.set(ev.message_id, d);
      if (early.size > 64) early.delete(early.keys().next().value);
      return;
    }
    put(Object.assign({}, cur.m, { state: d.state, devices: d.devices || [] }));
  }

  async function send() {
    const body = input.value;
    if (!body.trim()) return;
    const n = new TextEncoder().encode(body).length;
    if (n > MAX_SEND) {
      replace(sendStatus, h('span', { class: 'error', role: 'alert' },
        'The message is ' + n + ' bytes; at most ' + MAX_SEND + ' bytes (16 KiB) go in one message: split it, or send it as a file.'));
      return;
    }
    sendBtn.disabled = true;
    replace(sendStatus, 'Sending…');
    try {
      const m = await ctx.api.post('/v1/chat', { to: peer, body });
      if (!alive) return;
      input.value = '';
      clear(sendStatus);
      live({ id: m.id, direction: 'outgoing', peer, to: peer, time: m.time, body, encrypted: true, state: m.state, devices: m.devices || [] });
    } catch (e) {
      if (alive) replace(sendStatus, h('span', { class: 'error', role: 'alert' }, 'Not sent: ' + e.message));
    } finally {
      sendBtn.disabled = false;
    }
  }

  ctx.events.on('chat', onChat);
  ctx.events.on('chat-sent', onSent);
  ctx.events.on('delivery', onDelivery);
  loadPeer();
  loadOlder(true);
  input.focus({ preventScroll: true });
  return () => {
    alive = false;
    if (listTimer) clearTimeout(listTimer);
    for (const k of refreshListOn) ctx.events.off(k, listSoon);
    ctx.events.off('chat', onChat);
    ctx.events.off('chat-sent', onSent);
    ctx.events.off('delivery', onDelivery);
  };
}
