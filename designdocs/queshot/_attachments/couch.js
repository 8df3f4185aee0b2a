// The dashboard's shared ground: where the database is (derived from the
// page's own path, so it works under any database name and behind a proxy
// prefix, or named by `?db=`), talking to CouchDB, logging in, and small DOM and time helpers.
// Loaded first; the other scripts use its names. No inline script (CouchDB's
// attachment CSP), no framework, no build step. Every attachment is a Jinja
// template when pushed: none may contain Jinja's opening brace pairs.
'use strict';

const { STATES, WORKER_PREFIX, SCHEDULE_PREFIX, GONE_AFTER_LEASES, DEFAULT_LEASE_SECONDS, PAUSE_FIELD } = QUESHOT;
const JSON_PARAMS = new Set(['key', 'keys', 'startkey', 'endkey']);
const DDOC_PATH = '_design/queshot';
// Listings, search and the chart read views indexed only when read (see protocol.py).
const WATCH_PATH = '_design/queshot-watch';

// Served from a public app database (`queshot push --dashboard-db`), the page
// reads the job database named by `?db=` with the user's session; else its own.
const OWN_DB_PATH = location.pathname.slice(0, location.pathname.indexOf('/_design/'));
const ROOT_PATH = OWN_DB_PATH.slice(0, OWN_DB_PATH.lastIndexOf('/') + 1);
const JOB_DB = new URLSearchParams(location.search).get('db');
const DB_PATH = JOB_DB ? ROOT_PATH + encodeURIComponent(JOB_DB) : OWN_DB_PATH;
const DB_NAME = decodeURIComponent(DB_PATH.slice(ROOT_PATH.length));

const $ = (id) => document.getElementById(id);

// -- talking to CouchDB ----------------------------------------------------------

class CouchError extends Error {
  constructor(status, body) {
    super((body && (body.reason || body.error)) || 'HTTP ' + status);
    this.status = status;
  }
}

function dbUrl(path, params = {}) {
  const query = Object.entries(params).map(([name, value]) =>
    name + '=' + encodeURIComponent(JSON_PARAMS.has(name) ? JSON.stringify(value) : String(value)));
  return DB_PATH + '/' + path + (query.length ? '?' + query.join('&') : '');
}

// A view or _all_docs query: in the URL, or in a POST body (CouchDB 2.2+ and
// pouchdb-server take it there) when the URL would be too long for CouchDB,
// which refuses a request line over about 8 KB (a key is what a job held).
const MAX_QUERY_URL = 2000;

function query(path, params, signal) {
  const url = dbUrl(path, params);
  if (url.length <= MAX_QUERY_URL) return request('GET', url, undefined, signal);
  return request('POST', dbUrl(path), params, signal);
}

function docUrl(id) {
  return dbUrl(encodeURIComponent(id));
}

async function request(method, url, body, signal) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(url, {
    method,
    headers,
    signal,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data;
  try {
    data = text.trim() ? JSON.parse(text) : null;
  } catch (error) {
    data = { reason: text };
  }
  if (!response.ok) {
    // CouchDB sends no WWW-Authenticate, so the browser never prompts: we do.
    if (response.status === 401 && !url.endsWith('/_session')) askToLogIn();
    throw new CouchError(response.status, data);
  }
  return data;
}

// -- logging in -----------------------------------------------------------------------

let loggedIn = null; // while the login form shows: a promise kept once the user logs in
let onLoggedIn = () => {};

function askToLogIn() {
  if (!loggedIn) {
    $('login').hidden = false;
    document.body.classList.add('logged-out');
    setStatus('not logged in', 'down');
    loggedIn = new Promise((resolve) => { onLoggedIn = resolve; });
  }
  return loggedIn;
}

async function logIn(event) {
  event.preventDefault();
  const form = event.target;
  const field = (name) => form.elements.namedItem(name);
  try {
    await request('POST', ROOT_PATH + '_session', {
      name: field('name').value,
      password: field('password').value,
    });
  } catch (error) {
    $('login-message').textContent = error.message;
    return;
  }
  field('password').value = '';
  $('login-message').textContent = '';
  $('login').hidden = true;
  document.body.classList.remove('logged-out');
  loggedIn = null;
  onLoggedIn();
  scheduleRefresh();
}

// -- small helpers -------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { data, ...rest } = props;
  Object.assign(node, rest);
  Object.assign(node.dataset, data || {});
  for (const child of children) {
    node.append(child instanceof Node ? child : String(child === null || child === undefined ? '' : child));
  }
  return node;
}

function age(ms) {
  if (!Number.isFinite(ms)) return '?';
  let seconds = Math.max(0, Math.floor(ms / 1000));
  const units = [['d', 86400, 'h', 3600], ['h', 3600, 'm', 60], ['m', 60, 's', 1]];
  for (const [big, bigSize, small, smallSize] of units) {
    if (seconds >= bigSize) {
      const rest = Math.floor((seconds % bigSize) / smallSize);
      return Math.floor(seconds / bigSize) + big + (rest ? ' ' + rest + small : '');
    }
  }
  return seconds + 's';
}

// A stored value that is not what its field should hold, shown as such (as
// `queshot show` does): "<not a time: 1e+308>".
function notA(what, value) {
  let shown = typeof value === 'string' ? value : JSON.stringify(value);
  if (shown === undefined) shown = String(value);
  return '<not ' + what + ': ' + (shown.length > 60 ? shown.slice(0, 60) + '...' : shown) + '>';
}

function isPlainObject(x) {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

// "1 job", "3 jobs": a count with its noun, no "job(s)".
function counted(n, noun) {
  return n + ' ' + noun + (n === 1 ? '' : 's');
}

// Any stored value as text: a string as it is, anything else as JSON.
function shown(value) {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  return JSON.stringify(value);
}

// An epoch-ms time a Date can hold, else null.
function dateOf(ms) {
  if (typeof ms !== 'number') return null;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? null : date;
}

// Times show with their zone: the browser's own, or UTC when the header's
// toggle says so (kept in localStorage); a schedule's in its own zone.
const UTC_KEY = 'queshot.utc';
const clockFormats = new Map();

function shownZone() {
  return localStorage.getItem(UTC_KEY) === 'true' ? 'UTC' : undefined;
}

// "2026-12-06 07:40:12 GMT+1" in `zone` (the shown one by default).
function clock(ms, zone = shownZone()) {
  zone = zone || undefined; // null (a zone this browser does not know): the page's own
  const date = dateOf(ms);
  if (!date) return notA('a time', ms);
  const name = zone || '';
  if (!clockFormats.has(name)) {
    clockFormats.set(name, new Intl.DateTimeFormat('en-GB', {
      timeZone: zone, hourCycle: 'h23', timeZoneName: 'short',
      year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
    }));
  }
  const parts = Object.fromEntries(clockFormats.get(name).formatToParts(date).map((p) => [p.type, p.value]));
  return parts.year + '-' + parts.month + '-' + parts.day + ' ' + parts.hour + ':' + parts.minute + ':' +
    parts.second + ' ' + parts.timeZoneName;
}

function when(ms) {
  if (ms === null || ms === undefined) return '-';
  if (!dateOf(ms)) return notA('a time', ms);
  const delta = ms - Date.now();
  return clock(ms) + ' (' + (delta > 0 ? 'in ' + age(delta) : age(-delta) + ' ago') + ')';
}

// How long ago a time was: "12m 5s ago".
function ago(ms) {
  return dateOf(ms) ? age(Date.now() - ms) + ' ago' : notA('a time', ms);
}

// The queue paths of a `queues` field: a name or a path, one queue (by the
// server's own queuePath, QUESHOT_MODEL), or a worker's several queues in
// order, a list of paths ([['high'], ['default']]); null for each that is
// not a queue (the rule of queshot/jobs.py's worker_queue_paths).
function queuePaths(queues) {
  if (Array.isArray(queues) && queues.length && queues.every(Array.isArray)) {
    return queues.map(QUESHOT_MODEL.queuePath);
  }
  return [QUESHOT_MODEL.queuePath(queues)];
}

// As people read them: "email/welcome", or "high, default".
function queueText(queues) {
  const paths = queuePaths(queues);
  if (paths.some((path) => path === null)) return notA('a queue', queues);
  return paths.map((path) => path.join('/')).join(', ');
}

function setStatus(text, kind) {
  $('status').textContent = text;
  $('status').className = 'status ' + (kind || '');
}

function fauxtonUrl(docId) {
  return ROOT_PATH + '_utils/#database/' + encodeURIComponent(DB_NAME) + '/' +
    (docId ? encodeURIComponent(docId) : '_all_docs');
}

function replaceRows(table, head, rows, empty) {
  table.replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
  if (!rows.length) {
    table.tBodies[0].append(el('tr', {}, el('td', { className: 'empty', colSpan: head.cells.length }, empty)));
  }
}

function headRow(...names) {
  return el('tr', {}, ...names.map(([name, className]) => el('th', { className: className || '' }, name)));
}

// -- one vocabulary ------------------------------------------------------------------

// What people call each state; `inactive` is the stored name of both waiting
// (due now) and scheduled (due later: delayed, or waiting to retry).
const STATE_LABELS = { inactive: 'waiting', active: 'running' };

function stateLabel(state, dueAt) {
  if (state === 'inactive' && typeof dueAt === 'number' && dueAt > Date.now()) return 'scheduled';
  return STATE_LABELS[state] || shown(state);
}

// A value in one short line: the start of its JSON.
function preview(value, max = 120) {
  let text = typeof value === 'string' ? value : JSON.stringify(value);
  if (text === undefined) text = String(value);
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

// A task call as written: add(2, b=3).
function callText(doc) {
  const args = Array.isArray(doc.args) ? doc.args.map((a) => JSON.stringify(a)) : [];
  const kwargs = Object.entries(isPlainObject(doc.kwargs) ? doc.kwargs : {})
    .map(([k, v]) => k + '=' + JSON.stringify(v));
  return doc.task + '(' + [...args, ...kwargs].join(', ') + ')';
}

// An error as "Type: message" (the exception class first, as Python prints it).
function errorText(error) {
  if (!error || typeof error !== 'object') return '';
  return (shown(error.type) || 'Error') + ': ' + shown(error.message);
}

// A progress bar with its number: a stored value that is no number shows as 0.
function progressBar(value) {
  const n = typeof value === 'number' && Number.isFinite(value) ? Math.max(0, Math.min(100, value)) : 0;
  return el('span', { className: 'progress' },
    el('progress', { max: 100, value: n }), el('span', { className: 'num' }, Math.round(n) + '%'));
}
