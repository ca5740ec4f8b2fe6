// hookwire console: a small script over the admin JSON API, which stays the contract.
// Everything shown is built with DOM calls and text nodes (never HTML from data), and
// the only change it makes is the API's dead-letter replay.
'use strict';

const TOKEN_KEY = 'hookwire.adminToken';
const REFRESH_MS = 5000;
const STATUS_COLOURS = {
  processed: '#2da44e', ignored: '#8c959f', rejected: '#bf8700', retrying: '#d4a72c',
  dead: '#cf222e', processing: '#0969da',
};
let refreshTimer = null;
// Each render's number: a page whose requests answer after the operator moved on
// must not replace the page they moved to.
let generation = 0;

class SignedOut extends Error {}
class ApiFailure extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

async function api(path, options = {}) {
  const headers = { Accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method: options.method || 'GET', headers, cache: 'no-store',
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  // 401: no token; 403: a token the API refuses (changed, or mistyped).
  if (response.status === 401 || response.status === 403) throw new SignedOut((body && body.error) || 'sign in');
  if (!response.ok) throw new ApiFailure(response.status, (body && body.error) || response.statusText);
  return body;
}

function when(iso) {
  if (!iso) return '—';
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? iso : at.toLocaleString();
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function table(headings, rows, caption) {
  return el('div', { class: 'scroll' },
    el('table', {},
      caption ? el('caption', { class: 'muted', text: caption }) : null,
      el('thead', {}, el('tr', {}, headings.map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows.map((cells) => el('tr', {}, cells.map((c) => el('td', {}, c)))))));
}

function fields(pairs) {
  return el('dl', { class: 'fields' },
    pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [el('dt', { text: k }), el('dd', {}, v ?? '—')]));
}

/** Replaces the page, unless the operator has moved on since render `mine` began. */
function show(mine, ...nodes) {
  if (mine !== generation) return false;
  const view = document.getElementById('view');
  view.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined));
  return true;
}

function failure(error) {
  return el('p', { class: 'error', role: 'alert', text: `Could not load: ${error.message}` });
}

// ---- routing ------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = hash.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

function go(path, params) {
  const query = params ? new URLSearchParams([...params].filter(([, v]) => v !== '')).toString() : '';
  const target = `#${query ? `${path}?${query}` : path}`;
  // The same filters again: no hashchange, so render here (the data may have moved).
  if (location.hash === target) render();
  else location.hash = target;
}

async function render() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
  generation += 1;
  const mine = generation;
  const { parts, params } = route();
  const section = parts[0] || 'overview';
  for (const link of document.querySelectorAll('nav a')) {
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  try {
    if (section === 'overview') await overview(mine);
    else if (section === 'events' && parts[1]) await oneEvent(mine, parts[1]);
    else if (section === 'events') await events(mine, params);
    else if (section === 'dead-letters') await deadLetters(mine, params);
    else if (section === 'payments' && parts[1]) await onePayment(mine, parts[1]);
    else if (section === 'payments') await payments(mine, params);
    else show(mine, el('h1', { text: 'Not found' }), el('p', {}, el('a', { href: '#/', text: 'Overview' })));
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof SignedOut) signIn('');
    else show(mine, el('h1', { text: 'Could not load this page' }), failure(error));
  }
  // Keyboard and screen-reader users land on the new page's heading.
  const heading = mine === generation ? document.querySelector('#view h1') : null;
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

// ---- sign-in ------------------------------------------------------------------

function signIn(message) {
  clearTimeout(refreshTimer);
  generation += 1;
  document.getElementById('nav').hidden = true;
  document.getElementById('view').replaceChildren();
  document.getElementById('sign-in').hidden = false;
  document.getElementById('sign-in-error').textContent = message;
  document.getElementById('token').focus();
}

async function start() {
  document.getElementById('sign-in').hidden = true;
  document.getElementById('nav').hidden = false;
  window.addEventListener('hashchange', render);
  await render();
}

async function boot() {
  document.getElementById('sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = document.getElementById('token');
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = '';
    try {
      await api('/healthz');
      await start();
    } catch (error) {
      sessionStorage.removeItem(TOKEN_KEY);
      signIn(error instanceof SignedOut ? 'That token was refused.' : `Could not reach the API: ${error.message}`);
    }
  });
  document.getElementById('sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    window.removeEventListener('hashchange', render);
    signIn('Signed out.');
  });
  try {
    // Without ADMIN_TOKEN (loopback only) the API answers as it is: no sign-in.
    // `/healthz` checks the token and needs no database: the console works (dead
    // letters, queues) while the database is away.
    await api('/healthz');
    await start();
  } catch (error) {
    signIn(error instanceof SignedOut ? '' : `Could not reach the API: ${error.message}`);
  }
}

// ---- overview -----------------------------------------------------------------

function chart(minutes) {
  const statuses = Object.keys(STATUS_COLOURS);
  const totals = minutes.map((m) => Object.values(m.counts).reduce((a, b) => a + b, 0));
  const peak = Math.max(1, ...totals);
  const all = totals.reduce((a, b) => a + b, 0);
  const width = 600, height = 150, bar = width / minutes.length;
  const root = svg('svg', {
    viewBox: `0 0 ${width} ${height}`, role: 'img', preserveAspectRatio: 'none',
    'aria-label': `${all} events in the last ${minutes.length} minutes; at most ${peak} in one minute`,
  });
  minutes.forEach((m, i) => {
    let y = height;
    for (const status of statuses) {
      const n = m.counts[status] || 0;
      if (!n) continue;
      const h = (n / peak) * (height - 4);
      y -= h;
      const rect = svg('rect', { x: i * bar + 0.5, y, width: Math.max(bar - 1, 1), height: h, fill: STATUS_COLOURS[status] });
      rect.append(svg('title', {}));
      rect.firstChild.textContent = `${new Date(m.minute).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}: ${n} ${status}`;
      root.append(rect);
    }
  });
  const legend = el('div', { class: 'legend' }, statuses.map((s) => {
    const swatch = el('span', { class: 'swatch', 'aria-hidden': 'true' });
    swatch.style.background = STATUS_COLOURS[s];
    return el('span', {}, swatch, s);
  }));
  const axis = el('div', { class: 'axis muted', 'aria-hidden': 'true' },
    el('span', { text: `${minutes.length} min ago` }), el('span', { text: `peak ${peak}/min` }), el('span', { text: 'now' }));
  const figures = minutes.filter((m) => Object.keys(m.counts).length).map((m) => [
    new Date(m.minute).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }),
    Object.entries(m.counts).map(([k, v]) => `${v} ${k}`).join(', ')]);
  const readable = el('div', { class: 'sr-only' }, table(['Minute', 'Events'], figures, 'Events per minute'));
  return el('div', { class: 'chart' }, root, readable, axis, legend,
    el('p', { class: 'muted', id: 'events-last-hour', text: `${all} events received in the last hour` }));
}

function card(label, value, id) {
  return el('div', { class: 'card' }, el('div', { class: 'muted', text: label }), el('div', { class: 'figure', id, text: value }));
}

function counts(title, object) {
  const rows = Object.entries(object || {}).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)]);
  return el('div', {}, el('h2', { text: title }), rows.length ? table(['Name', 'Count'], rows) : el('p', { class: 'muted', text: 'none' }));
}

/** A route the page can do without (503 while its store is away): `null` then. */
async function optional(path) {
  try {
    return await api(path);
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 503) return null;
    throw error;
  }
}

async function overviewContent() {
  const [overview, stats] = await Promise.all([api('/overview'), optional('/webhook-stats')]);
  const queues = overview.queues || [];
  const dead = queues.filter((q) => q.kind === 'dead');
  const noDatabase = el('p', { class: 'error', role: 'alert', text: 'The database is not reachable from the gateway: events and payments cannot be shown.' });
  return [
    el('p', { class: 'muted', text: `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.` }),
    el('div', { class: 'cards' },
      stats ? [card('Webhooks', String(stats.totalWebhooks), 'total-webhooks'), card('Payments', String(stats.totalPayments), 'total-payments')] : null,
      dead.map((q) => card(`Dead letters: ${q.provider}`, q.messages ?? '?', `dead-${q.provider}`))),
    el('h2', { text: 'Events per minute, by outcome' }),
    overview.eventsPerMinute ? chart(overview.eventsPerMinute) : noDatabase,
    el('h2', { text: 'Queues' }),
    overview.brokerReachable
      ? table(['Queue', 'Kind', 'Messages', 'Consumers', 'Oldest waiting'], queues.map((q) => [
        q.queue, q.kind, q.messages ?? 'absent', q.consumers ?? '—',
        // A work queue's age is an upper bound (see the README): "at most".
        q.oldestAgeSeconds === null ? '—' : `${q.ageIsEstimate ? '≤ ' : ''}${duration(q.oldestAgeSeconds)}`,
      ]))
      : el('p', { class: 'error', role: 'alert', text: 'The broker is not reachable from the gateway.' }),
    stats ? [counts('Events by name', stats.eventCounts), counts('Events by status', stats.statusCounts), counts('Payments', stats.paymentStats)] : null,
  ];
}

async function overview(mine) {
  const body = el('div', { id: 'overview-body' }, ...(await overviewContent()));
  const stale = el('p', { class: 'error', role: 'status', id: 'overview-stale' });
  if (!show(mine, el('h1', { text: 'Overview' }), stale, body)) return;
  // One refresh after the other (never two at once), while this page is shown.
  const refresh = async () => {
    try {
      const fresh = await overviewContent();
      if (mine !== generation) return;
      body.replaceChildren(...fresh.flat().filter((n) => n !== null));
      stale.textContent = '';
    } catch (error) {
      if (mine !== generation) return;
      if (error instanceof SignedOut) { signIn(''); return; }
      stale.textContent = `Not refreshed at ${new Date().toLocaleTimeString()}: ${error.message}. The figures below are older.`;
    }
    if (mine === generation) refreshTimer = setTimeout(refresh, REFRESH_MS);
  };
  refreshTimer = setTimeout(refresh, REFRESH_MS);
}

// ---- events -------------------------------------------------------------------

function control(label, id, input) {
  input.id = id;
  input.name = id;
  return el('div', {}, el('label', { for: id, text: label }), input);
}

function select(options, value) {
  return el('select', {}, options.map(([v, text]) => el('option', { value: v, selected: v === value, text })));
}

function localInput(iso) {
  const input = el('input', { type: 'datetime-local' });
  if (iso) {
    const at = new Date(iso);
    if (!Number.isNaN(at.getTime())) input.value = new Date(at.getTime() - at.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }
  return input;
}

async function events(mine, params) {
  const form = el('form', { class: 'filters', role: 'search' },
    control('Search', 'q', el('input', { type: 'search', value: params.get('q') || '', placeholder: 'paymentId, eventId, itemId, accountId or HW-…' })),
    control('Provider', 'provider', select([['', 'any'], ['livetip', 'LiveTip'], ['pluggy', 'Pluggy']], params.get('provider') || '')),
    control('Event', 'event', el('input', { type: 'text', value: params.get('event') || '', placeholder: 'payment_confirmed' })),
    control('Status', 'status', select([['', 'any'], ...['processed', 'ignored', 'retrying', 'dead', 'rejected', 'processing'].map((s) => [s, s])], params.get('status') || '')),
    control('From (local time)', 'since', localInput(params.get('since'))),
    control('Until (local time)', 'until', localInput(params.get('until'))),
    el('div', {}, el('button', { type: 'submit', class: 'primary', text: 'Find events' })));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const next = new URLSearchParams();
    for (const name of ['q', 'provider', 'event', 'status']) next.set(name, String(data.get(name) || '').trim());
    for (const name of ['since', 'until']) {
      const value = String(data.get(name) || '');
      next.set(name, value ? new Date(value).toISOString() : '');
    }
    go('/events', next);
  });
  const query = new URLSearchParams([...params].filter(([, v]) => v !== ''));
  query.set('limit', '25');
  const listing = await api(`/events?${query}`);
  const rows = listing.events.map((e) => [
    when(e.receivedAt), e.provider, e.event, e.status, String(e.attempts),
    el('a', { href: `#/events/${encodeURIComponent(e.id)}`, text: e.providerEventId || e.id }),
  ]);
  const pager = el('div', { class: 'pager' },
    params.get('cursor') ? el('button', { type: 'button', text: 'First page', onclick: () => { params.delete('cursor'); go('/events', params); } }) : null,
    listing.nextCursor ? el('button', { type: 'button', text: 'Next page', onclick: () => { params.set('cursor', listing.nextCursor); go('/events', params); } }) : null);
  show(mine, el('h1', { text: 'Events' }), form,
    rows.length ? table(['Received', 'Provider', 'Event', 'Status', 'Attempts', 'Id'], rows, `${listing.count} ${listing.count === 1 ? 'event' : 'events'} on this page, newest first`)
      : el('p', { class: 'muted', text: 'No event matches.' }),
    pager);
}

function payload(p) {
  if (p.encoding !== 'text') return [el('p', { class: 'muted', text: 'Not UTF-8; base64:' }), el('pre', { text: p.body })];
  let pretty = p.body;
  try { pretty = JSON.stringify(JSON.parse(p.body), null, 2); } catch (_) { /* shown as received */ }
  return [el('pre', { id: 'payload-pretty', text: pretty }),
    el('details', {}, el('summary', { text: 'Raw, as received' }), el('pre', { text: p.body }))];
}

function touched(t) {
  const nodes = [];
  if (t.livetipPaymentId) nodes.push(fields([['LiveTip paymentId', t.livetipPaymentId]]));
  if (t.payment) {
    nodes.push(fields([
      ['Payment', el('a', { href: `#/payments/${encodeURIComponent(t.payment.id)}`, id: 'touched-payment', text: t.payment.id })],
      ['Status', t.payment.status], ['Amount', `${t.payment.amount} ${t.payment.currency}`], ['User', t.payment.userName],
    ]));
  }
  if (t.itemId) {
    nodes.push(fields([['Pluggy item', t.itemId], ['Item status', t.item ? `${t.item.status} / ${t.item.executionStatus ?? '—'}` : 'not recorded'],
      ['Synced', when(t.item && t.item.syncedAt)]]));
    if (t.accounts && t.accounts.length) {
      nodes.push(table(['Account', 'Name', 'Sync', 'Transactions'], t.accounts.map((a) => [a.id, a.name ?? '—', a.syncStatus ?? '—', String(a.transactions)])));
    }
  }
  return nodes.length ? nodes : [el('p', { class: 'muted', text: 'Nothing recorded.' })];
}

async function oneEvent(mine, key) {
  const e = await api(`/events/${encodeURIComponent(key)}`);
  const steps = [{ at: e.receivedAt, text: 'received by the gateway' }];
  for (const log of e.logs) steps.push({ at: log.timestamp, text: `${log.type}: ${log.status}${log.event ? ` (${log.event})` : ''}` });
  if (e.processedAt) steps.push({ at: e.processedAt, text: `settled: ${e.status}` });
  steps.sort((a, b) => new Date(a.at) - new Date(b.at));
  show(mine,
    el('h1', { text: `${e.provider} ${e.event}` }),
    e.traceUrl ? el('p', {}, el('a', { href: e.traceUrl, target: '_blank', rel: 'noopener noreferrer', id: 'open-trace', text: 'Open trace' })) : null,
    fields([
      ['Status', e.status], ['Attempts', String(e.attempts)], ['Duplicates', String(e.duplicates)],
      ['Provider id', e.providerEventId], ['Pluggy item', e.itemId ?? undefined], ['Pluggy account', e.accountId ?? undefined],
      ['Received', when(e.receivedAt)], ['Processed', when(e.processedAt)],
      ['Last error', e.lastError ? el('span', { class: 'error', text: e.lastError }) : '—'],
      ['Our id', e.id], ['Request id', e.requestId], ['Trace id', e.traceId],
    ]),
    el('h2', { text: 'Timeline' }),
    el('ol', { class: 'timeline' }, steps.map((s) => el('li', {}, el('time', { datetime: s.at, text: when(s.at) }), ` — ${s.text}`))),
    el('h2', { text: 'What it touched' }), ...touched(e.touched || {}),
    el('h2', { text: 'Payload' }), ...payload(e.payload));
}

// ---- dead letters -------------------------------------------------------------

function confirmReplay(text) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = 'cancel';
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

async function replay(filter, describe) {
  const dry = await api('/dead-letters/replay', { method: 'POST', body: { ...filter, dryRun: true } });
  const status = document.getElementById('replay-status');
  if (dry.replayed === 0) {
    status.textContent = 'Nothing to replay: no dead letter matches.';
    return;
  }
  if (!(await confirmReplay(`${dry.replayed} dead letter(s) ${describe} will go back to their work queue, attempts reset.`))) {
    status.textContent = 'Replay cancelled.';
    return;
  }
  const done = await api('/dead-letters/replay', { method: 'POST', body: filter });
  generation += 1;
  await deadLetters(generation, route().params, `Replayed ${done.replayed} dead letter(s).`);
}

async function deadLetters(mine, params, message) {
  const provider = params.get('provider') || '';
  const event = params.get('event') || '';
  const query = new URLSearchParams({ limit: '200' });
  if (provider) query.set('provider', provider);
  const listing = await api(`/dead-letters?${query}`);
  const letters = listing.deadLetters.filter((l) => !event || l.event === event);
  const form = el('form', { class: 'filters' },
    control('Provider', 'provider', select([['', 'any'], ['livetip', 'LiveTip'], ['pluggy', 'Pluggy']], provider)),
    control('Event', 'event', el('input', { type: 'text', value: event })),
    el('div', {}, el('button', { type: 'submit', text: 'Filter' })));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(form);
    go('/dead-letters', new URLSearchParams({ provider: String(data.get('provider') || ''), event: String(data.get('event') || '').trim() }));
  });
  // Created empty and filled after it is on the page, so screen readers announce it.
  const status = el('p', { id: 'replay-status', role: 'status' });
  if (message) setTimeout(() => { status.textContent = message; }, 50);
  const filter = {};
  if (provider) filter.provider = provider;
  if (event) filter.event = event;
  const narrowed = provider || event;
  const replayAll = el('button', {
    type: 'button', class: 'primary', id: 'replay-matching',
    text: narrowed ? 'Replay all that match…' : 'Replay every dead letter…',
    onclick: () => replay(narrowed ? filter : { all: true }, narrowed ? 'matching this filter' : 'of every provider').catch(report),
  });
  const rows = letters.map((l) => [
    l.provider, l.event, l.reason, l.class, String(l.attempts), when(l.deadAt),
    l.requestId ? el('a', { href: `#/events/${encodeURIComponent(l.requestId)}`, text: 'open' }) : '—',
    l.requestId ? el('button', { type: 'button', text: 'Replay', 'aria-label': `Replay the ${l.event} dead letter of ${when(l.deadAt)}`,
      onclick: () => replay({ requestId: l.requestId }, 'of this request').catch(report) }) : '—',
  ]);
  show(mine, el('h1', { text: 'Dead letters' }), form,
    status,
    rows.length ? [table(['Provider', 'Event', 'Reason', 'Class', 'Attempts', 'Dead since', 'Its event', 'Replay'], rows,
      `${rows.length} shown (at most 200 per provider; a replay takes every one that matches)`), el('p', {}, replayAll)]
      : el('p', { class: 'muted', id: 'no-dead-letters', text: 'No dead letters.' }));
}

function report(error) {
  if (error instanceof SignedOut) { signIn(''); return; }
  const status = document.getElementById('replay-status');
  if (status) status.textContent = `Replay failed: ${error.message}`;
}

// ---- payments -----------------------------------------------------------------

async function payments(mine, params) {
  const status = params.get('status') || '';
  const form = el('form', { class: 'filters' },
    control('Status', 'status', select([['', 'any'], ...['pending', 'completed', 'failed', 'cancelled', 'underpaid'].map((s) => [s, s])], status)),
    el('div', {}, el('button', { type: 'submit', text: 'Filter' })));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    go('/payments', new URLSearchParams({ status: String(new FormData(form).get('status') || '') }));
  });
  let listing;
  try {
    listing = await api(`/payments?limit=100${status ? `&status=${encodeURIComponent(status)}` : ''}`);
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 400) { show(mine, el('h1', { text: 'Payments' }), form, failure(error)); return; }
    throw error;
  }
  const rows = listing.payments.map((p) => [
    el('a', { href: `#/payments/${encodeURIComponent(p.id)}`, text: p.id }), p.userName, `${p.amount} ${p.currency}`, p.status, when(p.createdAt),
  ]);
  show(mine, el('h1', { text: 'Payments' }), form,
    rows.length ? table(['Payment', 'User', 'Amount', 'Status', 'Created'], rows, `${listing.count} payments, newest first`)
      : el('p', { class: 'muted', text: 'No payment matches.' }));
}

async function onePayment(mine, id) {
  const [p, moved] = await Promise.all([api(`/payments/${encodeURIComponent(id)}`), api(`/events?q=${encodeURIComponent(id)}&limit=50`)]);
  show(mine, el('h1', { text: `Payment ${p.id}` }),
    fields([
      ['Status', el('span', { id: 'payment-status', text: p.status })], ['Amount', `${p.amount} ${p.currency}`],
      ['Received', p.receivedAmount ? `${p.receivedAmount} ${p.receivedCurrency}` : undefined],
      ['User', p.userName], ['LiveTip paymentId', p.livetipPaymentId], ['Matched by', p.matchedBy],
      ['Created', when(p.createdAt)], ['Paid', when(p.paidAt)],
    ]),
    el('h2', { text: 'Events that moved it' }),
    moved.events.length
      ? table(['Received', 'Event', 'Status', 'Id'], moved.events.map((e) => [when(e.receivedAt), e.event, e.status,
        el('a', { href: `#/events/${encodeURIComponent(e.id)}`, text: e.providerEventId || e.id })]))
      : el('p', { class: 'muted', text: 'No event names this payment yet.' }));
}

boot();
