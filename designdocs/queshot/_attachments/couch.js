// The dashboard's shared ground: where the database is (derived from the
// page's own path, so it works under any database name and behind a proxy
// prefix), talking to CouchDB, logging in, and small DOM and time helpers.
// Loaded first; the other scripts use its names. No inline script (CouchDB's
// attachment CSP), no framework, no build step. Every attachment is a Jinja
// template when pushed: none may contain Jinja's opening brace pairs.
'use strict';

const { STATES, WORKER_PREFIX, SCHEDULE_PREFIX, GONE_AFTER_LEASES, DEFAULT_LEASE_SECONDS, PAUSE_FIELD } = QUESHOT;
const JSON_PARAMS = new Set(['key', 'keys', 'startkey', 'endkey']);
const DDOC_PATH = '_design/queshot';
// Listings, search and the chart read views indexed only when read (see protocol.py).
const WATCH_PATH = '_design/queshot-watch';

const DB_PATH = location.pathname.slice(0, location.pathname.indexOf('/_design/'));
const ROOT_PATH = DB_PATH.slice(0, DB_PATH.lastIndexOf('/') + 1);
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

function when(ms) {
  if (typeof ms !== 'number') return '-';
  const delta = ms - Date.now();
  const relative = delta > 0 ? 'in ' + age(delta) : age(-delta) + ' ago';
  return new Date(ms).toLocaleString() + ' (' + relative + ')';
}

// The queue paths of a `queues` field: a name, a path (['email', 'welcome']),
// or a worker's several queues in order, as a list of paths ([['high'], ['default']]).
function queuePaths(queues) {
  if (Array.isArray(queues) && queues.some(Array.isArray)) return queues;
  return [Array.isArray(queues) ? queues : [String(queues)]];
}

// As people read them: "email/welcome", or "high, default".
function queueText(queues) {
  return queuePaths(queues).map((path) => path.join('/')).join(', ');
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
