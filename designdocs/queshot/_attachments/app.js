// The queshot dashboard: jobs per queue and state, failed jobs, one job's
// detail with a requeue button, and the live workers, kept current from the
// database's _changes feed. Served as attachments of _design/queshot, so
// every URL is derived from the page's own path: it works under any database
// name (and behind a proxy prefix). No inline script (CouchDB's attachment
// CSP), no framework, no build step. This file is a Jinja template when
// pushed: it must not contain Jinja's opening brace pairs.
'use strict';

const { STATES, WORKER_PREFIX, GONE_AFTER_LEASES, DEFAULT_LEASE_SECONDS } = QUESHOT; // defaults.js
const CHANGES_TIMEOUT_MS = 25000; // CouchDB ends a quiet longpoll after this...
const CHANGES_ABORT_MS = 35000; // ...pouchdb-server does not: give up and re-issue
const HEARTBEAT_MS = 10000;
const MIN_REFRESH_GAP_MS = 500; // busy queues change constantly: redraw at most this often
const PERIODIC_REFRESH_MS = 15000; // ages, and workers going quiet, change without _changes
const FAILED_SHOWN = 50;
const JSON_PARAMS = new Set(['key', 'startkey', 'endkey']);

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

function queueText(queues) {
  return Array.isArray(queues) ? queues.join('/') : String(queues);
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

// -- the panels --------------------------------------------------------------------

function renderCounts(rows) {
  const queues = new Map();
  const totals = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const row of rows) {
    const [path, state] = row.key;
    const name = queueText(path);
    if (!queues.has(name)) queues.set(name, Object.fromEntries(STATES.map((s) => [s, 0])));
    queues.get(name)[state] = (queues.get(name)[state] || 0) + row.value;
    totals[state] = (totals[state] || 0) + row.value;
  }
  const line = (name, counts, className) => {
    const cells = STATES.map((state) => el('td', {
      className: 'num' + (counts[state] ? ' state-' + state : ''),
      data: { queue: name, state },
    }, counts[state]));
    const total = STATES.reduce((sum, state) => sum + counts[state], 0);
    return el('tr', { className: className || '' }, el('th', {}, name), ...cells,
      el('td', { className: 'num', data: { queue: name, state: 'total' } }, total));
  };
  const body = [...queues.keys()].sort().map((name) => line(name, queues.get(name)));
  if (body.length) body.push(line('total', totals, 'total'));
  replaceRows($('counts'), headRow(['queue'], ...STATES.map((s) => [s, 'num']), ['total', 'num']),
    body, 'no jobs yet');
}

function renderFailed(rows) {
  const now = Date.now();
  const body = rows.map((row) => el('tr', { className: 'clickable', data: { id: row.id } },
    el('td', {}, el('code', {}, row.id)),
    el('td', {}, queueText(row.value.queues)),
    el('td', {}, age(now - row.key[1]) + ' ago'),
    el('td', { className: 'num' }, row.value.attempts + '/' + (row.value.max_attempts || '-')),
    el('td', { className: 'state-failed' }, row.value.error || '')));
  replaceRows($('failed'), headRow(['job'], ['queue'], ['failed'], ['attempts', 'num'], ['error']),
    body, 'no failed jobs');
}

function renderWorkers(rows) {
  const now = Date.now();
  const body = rows.filter((row) => row.doc).map((row) => {
    const w = row.doc;
    const lease = typeof w.lease_seconds === 'number' ? w.lease_seconds : DEFAULT_LEASE_SECONDS;
    const gone = now - (w.last_seen || 0) > GONE_AFTER_LEASES * lease * 1000;
    const jobs = Array.isArray(w.jobs) ? w.jobs : [];
    return el('tr', { className: gone ? 'gone' : '', data: { worker: w.name || row.id } },
      el('td', {}, w.name || ''),
      el('td', {}, (w.host || '-') + ':' + (w.pid || '-')),
      el('td', {}, queueText(w.queues)),
      el('td', { className: 'num' }, jobs.length + '/' + (w.concurrency || '-')),
      el('td', {}, age(now - (w.last_seen || 0)) + ' ago'),
      el('td', {}, gone ? 'gone' : w.paused ? 'paused' : 'alive'));
  });
  replaceRows($('workers'),
    headRow(['name'], ['host:pid'], ['queue'], ['jobs', 'num'], ['last seen'], ['status']),
    body, 'no workers');
}

// -- one job ---------------------------------------------------------------------------

let openJob = null; // the job document shown, as read (its _rev guards the requeue)

async function showJob(id) {
  let doc;
  try {
    doc = await request('GET', docUrl(id));
  } catch (error) {
    if (error.status === 404) {
      openJob = null;
      $('job').hidden = true;
      setStatus('no job ' + id, 'down');
      return;
    }
    throw error;
  }
  // a message about the job (requeued, refused) holds until the job moves on
  if (!openJob || openJob._id !== doc._id || openJob.state !== doc.state) {
    $('job-message').textContent = '';
  }
  openJob = doc;
  history.replaceState(null, '', '#job=' + encodeURIComponent(id));
  $('job').hidden = false;
  $('job-id').textContent = doc._id;
  $('job-fauxton').href = fauxtonUrl(doc._id);
  const fields = [
    ['state', doc.state],
    ['queue', queueText(doc.queues)],
    ['priority', doc.priority || 0],
    ['attempts', (doc.attempts || 0) + ' of ' + (doc.max_attempts || '-')],
    ['stalls', String(doc.stalls || 0)],
    ['progress', (typeof doc.progress === 'number' ? doc.progress : 0) + '%'],
    ['worker', doc.worker_id || '-'],
    ['lease until', when(doc.lease_expires_at)],
    ['run at', when(doc.run_at)],
    ['created', when(doc.created_at)],
    ['claimed', when(doc.claimed_at)],
    ['completed', when(doc.completed_at)],
    ['failed', when(doc.failed_at)],
  ];
  $('job-fields').replaceChildren(...fields.flatMap(([name, value]) => [
    el('dt', {}, name),
    el('dd', { className: name === 'state' ? 'state-' + value : '' }, value),
  ]));
  const error = doc.error;
  $('job-error').textContent = error && typeof error === 'object'
    ? (error.type || 'Error') + ' (attempt ' + (error.attempt || '?') + '): ' + error.message +
      (error.traceback ? '\n\n' + error.traceback : '')
    : 'none';
  $('job-data').textContent = JSON.stringify(doc.data, null, 2);
  const log = Array.isArray(doc.log) ? doc.log : [];
  $('job-log').replaceChildren(...log.map((line) => el('li', {},
    line && typeof line === 'object' ? new Date(line.at).toLocaleTimeString() + '  ' + line.msg : line)));
  $('requeue').hidden = doc.state !== 'failed';
}

// A requeue goes through the design doc's `requeue` handler, as `queshot
// requeue` does; validate_doc_update decides who may.
async function requeue() {
  if (!openJob) return;
  const message = $('job-message');
  const id = openJob._id;
  try {
    await request('POST', dbUrl('_design/queshot/_update/requeue/' + encodeURIComponent(id)), {});
  } catch (error) {
    message.className = 'message';
    message.textContent = error.status === 409
      ? 'the job changed meanwhile: shown again, look and retry'
      : 'refused: ' + error.message;
    if (error.status === 409) await showJob(id);
    return;
  }
  await showJob(id);
  message.className = 'message ok';
  message.textContent = 'requeued';
  scheduleRefresh();
}

// -- keeping it current ----------------------------------------------------------------

async function refresh() {
  try {
    const [stats, failed, workers] = await Promise.all([
      request('GET', dbUrl('_design/queshot/_view/stats', { group_level: 2 })),
      request('GET', dbUrl('_design/queshot/_view/jobs_by_state', {
        startkey: ['failed', {}], endkey: ['failed'], descending: true, limit: FAILED_SHOWN,
      })),
      request('GET', dbUrl('_all_docs', {
        startkey: WORKER_PREFIX, endkey: WORKER_PREFIX + '\ufff0', include_docs: true,
      })),
    ]);
    renderCounts(stats.rows);
    renderFailed(failed.rows);
    renderWorkers(workers.rows);
    if (openJob) await showJob(openJob._id);
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    if (!feedDown && !loggedIn) setStatus('live', 'live');
  } catch (error) {
    if (error.status !== 401) setStatus('cannot read the queue: ' + error.message, 'down');
  }
}

let refreshing = false;
let refreshAgain = false;

function scheduleRefresh() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  refresh().finally(() => setTimeout(() => {
    refreshing = false;
    if (refreshAgain) {
      refreshAgain = false;
      scheduleRefresh();
    }
  }, MIN_REFRESH_GAP_MS));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let feedDown = false;

// Longpoll loop: each answer carries last_seq, the `since` of the next request.
async function watchChanges() {
  let since = 'now';
  for (;;) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), CHANGES_ABORT_MS);
    try {
      const feed = await request('GET', dbUrl('_changes', {
        feed: 'longpoll', since, timeout: CHANGES_TIMEOUT_MS, heartbeat: HEARTBEAT_MS,
      }), undefined, abort.signal);
      since = feed.last_seq;
      feedDown = false;
      setStatus('live', 'live');
      if (feed.results.length) scheduleRefresh();
    } catch (error) {
      if (error.name === 'AbortError') continue;
      if (error.status === 401) {
        await askToLogIn();
      } else {
        feedDown = true;
        setStatus('lost the changes feed (' + error.message + '); retrying', 'down');
        await sleep(2000);
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

function start() {
  $('db-name').textContent = DB_NAME;
  $('fauxton').href = fauxtonUrl(null);
  $('login').addEventListener('submit', logIn);
  $('open-job').addEventListener('submit', (event) => {
    event.preventDefault();
    showJob(event.target.elements.namedItem('id').value.trim()).catch(() => {});
  });
  $('failed').addEventListener('click', (event) => {
    const row = event.target.closest('tr[data-id]');
    if (row) showJob(row.dataset.id).catch(() => {});
  });
  $('requeue').addEventListener('click', requeue);
  $('job-close').addEventListener('click', () => {
    openJob = null;
    $('job').hidden = true;
    history.replaceState(null, '', location.pathname);
  });
  const linked = /^#job=(.+)$/.exec(location.hash);
  if (linked) showJob(decodeURIComponent(linked[1])).catch(() => {});
  watchChanges();
  scheduleRefresh();
  setInterval(scheduleRefresh, PERIODIC_REFRESH_MS);
}

start();
