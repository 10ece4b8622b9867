// views/alerts.js: the alert feed. Live alerts from the event stream on
// top, then the audit log (GET /v1/alerts) one page at a time, newest
// first, searchable; each alert with its severity, the rule that fired,
// what happened and what to do. watch(ctx), started by the shell, keeps
// the nav badge at the number of alerts not yet seen.
import { h, replace, clear, fmtTime } from '../dom.js';

const PAGE = 50; // alerts a page shows
const LIVE_MAX = 20; // live alerts kept above the page

const severityText = { critical: 'Critical', warning: 'Warning', info: 'Info' };
const actionText = { refuse: 'refused', flag: 'flagged', allow: 'allowed' };

// The unseen count, shared by the badge and the view.
let unseen = 0;
let badgeCtx = null;
let viewOpen = null; // the mounted view's hook for live alerts

// liveCounts counts the live alert events that set the badge: an answer
// to a request sent before one of them is older than its count.
let liveCounts = 0;

function showBadge(n) {
  unseen = Math.max(0, n | 0);
  if (badgeCtx) badgeCtx.setBadge('alerts', unseen);
}

// showAnswered sets the badge from the answer to a request sent when
// liveCounts was at, unless a live event set it since: the answer may
// have been computed before that event (the page holds its requests
// until the daemon is proved, and the events meanwhile, so their order
// is not the daemon's).
function showAnswered(at, n) {
  if (liveCounts === at) showBadge(n);
}

// watch keeps the alerts badge of the nav current in every view: the
// unseen count from the daemon, then each live alert event's count.
export function watch(ctx) {
  if (badgeCtx) return;
  badgeCtx = ctx;
  const at = liveCounts;
  ctx.api.get('/v1/alerts?limit=0').then((r) => showAnswered(at, r.unseen), () => {});
  ctx.events.on('alert', (ev) => {
    if (ev.replayed) return;
    if (typeof ev.unseen === 'number') {
      liveCounts++;
      showBadge(ev.unseen);
    }
    if (viewOpen) viewOpen(ev);
  });
}

// alertItem draws one alert record (an AlertRecord, or the alert of an
// event with its remedy).
function alertItem(a, remedy, opts) {
  const d = a.decision || {};
  const f = a.facts || {};
  const sev = d.severity || 'warning';
  const what = [actionText[d.action] || d.action || 'noticed', f.protection || '', f.kind || 'channel']
    .filter(Boolean).join(' ');
  const peer = f.peer_jid ? (f.direction === 'outgoing' ? ' to ' : ' from ') + f.peer_jid : '';
  const count = a.summary ? ' — ' + a.count + ' more since ' + fmtTime(a.since) : '';
  return h('li', {
    class: 'card alert sev-' + sev + (opts.unseen ? ' unseen' : '') + (opts.live ? ' live' : ''),
    dataset: { id: a.id || '', rule: d.rule || '', severity: sev },
  },
  h('div', { class: 'row' },
    h('span', { class: 'sev sev-' + sev }, severityText[sev] || sev),
    opts.unseen ? h('span', { class: 'new-mark' }, 'new') : null,
    h('span', { class: 'muted' }, fmtTime(a.time))),
  h('p', { class: 'alert-what' }, what, peer, count),
  d.message ? h('p', { class: 'alert-message' }, d.message) : null,
  remedy ? h('p', { class: 'alert-remedy' }, h('strong', null, 'What to do: '), remedy) : null,
  h('p', { class: 'muted' }, 'Rule ', h('code', null, d.rule || '?'),
    typeof d.index === 'number' ? ' (#' + d.index + ' in securejingle policy check)' : ''),
  d.detail ? h('details', null, h('summary', null, 'Technical detail'), h('p', { class: 'mono' }, d.detail)) : null);
}

// mount draws the feed; opening it marks every alert seen.
export function mount(el, ctx) {
  let alive = true;
  let query = '';
  let cursors = []; // the before values of the pages above the current one
  let before = '';
  let loading = 0;
  const liveList = h('ul', { class: 'cards live-alerts', 'aria-live': 'polite' });
  const list = h('ul', { class: 'cards alert-list' });
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading alerts…');
  const search = h('input', { type: 'search', id: 'alert-search', name: 'q', maxlength: '200', placeholder: 'rule, contact or text', autocomplete: 'off' });
  const newer = h('button', { type: 'button', class: 'alerts-newer', disabled: true, onclick: () => { before = cursors.pop() || ''; load(); } }, 'Newer');
  const older = h('button', { type: 'button', class: 'alerts-older', disabled: true, onclick: () => { cursors.push(before); before = older.dataset.next; load(); } }, 'Older');
  const form = h('form', { class: 'row', role: 'search', onsubmit: (e) => { e.preventDefault(); query = search.value.trim(); cursors = []; before = ''; load(); } },
    h('label', { for: 'alert-search' }, 'Search the audit log'), search, h('button', { type: 'submit' }, 'Search'),
    h('button', { type: 'button', onclick: () => { search.value = ''; query = ''; cursors = []; before = ''; load(); } }, 'Clear'));
  replace(el,
    h('h1', null, 'Alerts'),
    h('p', { class: 'muted' }, 'What the channel policy refused or flagged, and tampering the end-to-end checks caught. Newest first.'),
    liveList, form, status, list, h('div', { class: 'actions' }, newer, older));

  async function markSeen(id) {
    try {
      const at = liveCounts;
      const r = await ctx.api.post('/v1/alerts/seen', id ? { id } : {});
      showAnswered(at, r.unseen);
    } catch (_) { /* the badge stays; the next visit tries again */ }
  }

  async function load() {
    const seq = ++loading;
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (query) params.set('q', query);
    if (before) params.set('before', before);
    status.textContent = query ? 'Searching…' : 'Loading alerts…';
    let r;
    try {
      r = await ctx.api.get('/v1/alerts?' + params);
    } catch (e) {
      if (alive && seq === loading) replace(status, h('span', { class: 'error', role: 'alert' }, 'Could not read the alerts: ' + e.message));
      return;
    }
    if (!alive || seq !== loading) return;
    const alerts = r.alerts || [];
    replace(list, alerts.map((a) => alertItem(a, a.remedy, { unseen: a.unseen })));
    if (alerts.length) {
      const n = alerts.length + (alerts.length === 1 ? ' alert' : ' alerts');
      status.textContent = (query ? n + ' matching “' + query + '”' : 'The newest ' + n) + (r.more ? '; press Older for more' : '') +
        (cursors.length ? ' (older page ' + cursors.length + ')' : '') + '.';
    } else if (r.more) {
      status.textContent = 'No match in the part of the log read so far: press Older to search further back.';
    } else {
      status.textContent = query ? 'No alert matches “' + query + '”.' : 'No alerts. Nothing was refused or flagged.';
    }
    older.disabled = !r.more;
    older.dataset.next = r.next || '';
    newer.disabled = cursors.length === 0;
    el.dataset.loaded = String(Number(el.dataset.loaded || 0) + 1);
    if (!before && !query) markSeen(alerts.length ? alerts[0].id : '');
  }

  let seenTimer = null;
  viewOpen = (ev) => {
    if (!alive || !ev.alert) return;
    liveList.prepend(alertItem(ev.alert, ev.remedy, { unseen: true, live: true }));
    while (liveList.children.length > LIVE_MAX) liveList.lastChild.remove();
    // The person is looking: mark it seen, once a burst is over.
    if (seenTimer) clearTimeout(seenTimer);
    const id = ev.alert.id;
    seenTimer = setTimeout(() => { seenTimer = null; markSeen(id); }, 300);
  };
  load();
  return () => {
    alive = false;
    viewOpen = null;
    if (seenTimer) clearTimeout(seenTimer);
    clear(liveList);
  };
}
