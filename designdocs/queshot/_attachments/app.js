// The queshot dashboard's frame: jobs per queue and state (with pause and
// resume), the workers, one job's detail with a requeue button, kept current
// from the database's _changes feed. The job lists (jobs.js) and the chart
// (chart.js) are panels of their own; this file starts them and tells them
// when to redraw.
'use strict';

const CHANGES_TIMEOUT_MS = 25000; // CouchDB ends a quiet longpoll after this...
const CHANGES_ABORT_MS = 35000; // ...pouchdb-server does not: give up and re-issue
const HEARTBEAT_MS = 10000;
const MIN_REFRESH_GAP_MS = 500; // busy queues change constantly: redraw at most this often
const PERIODIC_REFRESH_MS = 15000; // ages, and workers going quiet, change without _changes

// What the panels share: the queues known (text -> path), which are paused,
// and the queue the lists and the chart are narrowed to ('' for all).
const shared = { queues: new Map(), pauses: [], counts: new Map(), queue: '' };

function samePath(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// The pause holding back a queue path: its own, or one of a queue above it
// (the rule of lib/job.js's pauseOf, which the server enforces).
function pauseOf(path) {
  if (!Array.isArray(path)) return null;
  return shared.pauses.find((p) => Array.isArray(p.queue) && p.queue.length <= path.length &&
    p.queue.every((name, i) => name === path[i])) || null;
}

// -- the queues ------------------------------------------------------------------------

function renderCounts(rows) {
  const queues = new Map();
  const totals = Object.fromEntries(STATES.map((s) => [s, 0]));
  shared.queues = new Map();
  for (const row of rows) {
    const [key, state] = Array.isArray(row.key) ? row.key : [row.key, null];
    const name = queueText(key);
    const path = QUESHOT_MODEL.queuePath(key); // null: the jobs' `queues` is no queue
    if (path) shared.queues.set(name, path);
    if (!queues.has(name)) queues.set(name, Object.fromEntries(STATES.map((s) => [s, 0])));
    queues.get(name)[state] = (queues.get(name)[state] || 0) + row.value;
    totals[state] = (totals[state] || 0) + row.value;
  }
  for (const pause of shared.pauses) shared.queues.set(queueText(pause.queue), pause.queue);
  shared.counts = queues;
  const line = (name, counts, className) => {
    const cells = STATES.map((state) => el('td', {
      className: 'num' + (counts[state] ? ' state-' + state : ''),
      data: { queue: name, state },
    }, counts[state]));
    const total = STATES.reduce((sum, state) => sum + counts[state], 0);
    const path = shared.queues.get(name);
    const pause = path ? pauseOf(path) : null;
    const control = path ? el('button', {
      type: 'button', className: 'pause', data: { queue: name, paused: pause ? 'true' : 'false' },
      title: pause ? 'let its jobs be claimed again' : 'claim none of its jobs, on every worker',
    }, pause && samePath(pause.queue, path) ? 'Resume' : pause ? 'Paused above' : 'Pause') : '';
    if (pause && !samePath(pause.queue, path)) control.disabled = true;
    return el('tr', { className: (className || '') + (pause ? ' paused' : ''), data: { queue: name } },
      el('th', {}, el('bdi', {}, name), pause ? el('span', { className: 'badge' }, 'paused') : ''), ...cells,
      el('td', { className: 'num', data: { queue: name, state: 'total' } }, total), el('td', {}, control));
  };
  const names = [...new Set([...queues.keys(), ...shared.pauses.map((p) => queueText(p.queue))])].sort();
  const empty = Object.fromEntries(STATES.map((s) => [s, 0]));
  const body = names.map((name) => line(name, queues.get(name) || empty));
  if (body.length) body.push(line('total', totals, 'total'));
  replaceRows($('counts'), headRow(['queue'], ...STATES.map((s) => [s, 'num']), ['total', 'num'], ['']),
    body, 'no jobs yet');
  renderQueueFilter();
}

function renderQueueFilter() {
  const select = $('queue-filter');
  const options = [el('option', { value: '' }, 'all queues'),
    ...[...shared.queues.keys()].sort().map((name) => el('option', { value: name }, name))];
  if (shared.queue && !shared.queues.has(shared.queue)) shared.queue = '';
  select.replaceChildren(...options);
  select.value = shared.queue;
}

// Pausing writes the design document through its `pause` handler, so only a
// database or server admin may; a refusal shows CouchDB's reason.
async function setPaused(name, paused) {
  const message = $('queues-message');
  message.className = 'message';
  message.textContent = '';
  try {
    await request('POST', dbUrl(DDOC_PATH + '/_update/pause/' + DDOC_PATH),
      { queue: shared.queues.get(name), paused });
  } catch (error) {
    message.textContent = 'not ' + (paused ? 'paused' : 'resumed') + ': ' + error.message +
      (error.status === 401 || error.status === 403 ? ' (pausing needs a database or server admin)' : '');
    return;
  }
  message.className = 'message ok';
  message.textContent = 'queue ' + name + (paused ? ' paused' : ' resumed');
  scheduleRefresh();
}

// -- the workers ------------------------------------------------------------------------

function renderWorkers(rows) {
  const now = Date.now();
  const body = rows.filter((row) => row.doc).map((row) => {
    const w = row.doc;
    // the rule of queshot/jobs.py's worker_gone
    const lease = typeof w.lease_seconds === 'number' && w.lease_seconds > 0
      ? w.lease_seconds : DEFAULT_LEASE_SECONDS;
    const seen = typeof w.last_seen === 'number' && Number.isFinite(w.last_seen) ? w.last_seen : 0;
    const gone = now - seen > GONE_AFTER_LEASES * lease * 1000;
    const jobs = Array.isArray(w.jobs) ? String(w.jobs.length) : notA('a list', w.jobs);
    const paused = w.paused === true || queuePaths(w.queues).every((path) => pauseOf(path));
    return el('tr', { className: gone ? 'gone' : '', data: { worker: shown(w.name) || row.id } },
      el('td', {}, shown(w.name)),
      el('td', {}, el('bdi', {}, shown(w.host) || '-'), ':', el('bdi', {}, shown(w.pid) || '-')),
      el('td', {}, queueText(w.queues)),
      el('td', { className: 'num' }, jobs + '/' + (shown(w.concurrency) || '-')),
      el('td', {}, ago(w.last_seen || 0)),
      el('td', {}, gone ? 'gone' : paused ? 'paused' : 'alive'));
  });
  replaceRows($('workers'),
    headRow(['name'], ['host:pid'], ['queue'], ['jobs', 'num'], ['last seen'], ['status']),
    body, 'no workers');
}

// -- the schedules ------------------------------------------------------------------------

// Schedule documents as they are (`queshot schedules` also says when each runs next).
function renderSchedules(rows) {
  const body = rows.filter((row) => row.doc).map((row) => {
    const s = row.doc;
    const when = typeof s.cron === 'string' ? s.cron : 'every ' + shown(s.every) + ' s';
    const what = typeof s.task === 'string' ? s.task : JSON.stringify(s.data === undefined ? null : s.data);
    return el('tr', { className: s.enabled === false ? 'gone' : '', data: { schedule: row.id } },
      el('td', {}, el('a', { href: fauxtonUrl(row.id) }, row.id.slice(SCHEDULE_PREFIX.length))),
      el('td', {}, when + (s.timezone ? ' (' + shown(s.timezone) + ')' : '')),
      el('td', {}, queueText(s.queue)),
      el('td', {}, what),
      el('td', {}, s.enabled === false ? 'paused' : 'enabled'));
  });
  replaceRows($('schedules'), headRow(['name'], ['when'], ['queue'], ['runs'], ['status']),
    body, 'no schedules');
}

// -- one job ---------------------------------------------------------------------------

let openJob = null; // the job document shown, as read (its _rev guards the requeue)
let wantedJob = null; // the id the panel is to show: the last one asked for
let jobReads = 0; // only the latest read renders: a refresh's older one may answer last

async function showJob(id) {
  wantedJob = id;
  const read = ++jobReads;
  let doc;
  try {
    doc = await request('GET', docUrl(id));
  } catch (error) {
    if (read !== jobReads) return;
    if (error.status === 404) {
      openJob = null;
      wantedJob = null;
      $('job').hidden = true;
      setStatus('no job ' + id, 'down');
      return;
    }
    throw error;
  }
  if (read !== jobReads) return;
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
    ['state', shown(doc.state)],
    ['queue', queueText(doc.queues)],
    ['priority', shown(doc.priority || 0)],
    ['attempts', shown(doc.attempts || 0) + ' of ' + (shown(doc.max_attempts) || '-')],
    ['stalls', shown(doc.stalls || 0)],
    ['progress', (typeof doc.progress === 'number' ? doc.progress : 0) + '%'],
    ['worker', shown(doc.worker_id) || '-'],
    ['lease until', when(doc.lease_expires_at)],
    ['run at', when(doc.run_at)],
    ['created', when(doc.created_at)],
    ['claimed', when(doc.claimed_at)],
    ['completed', when(doc.completed_at)],
    ['failed', when(doc.failed_at)],
    ['cancelled', when(doc.cancelled_at)],
    ['cancel asked', when(doc.cancel_requested_at)],
  ];
  if (Array.isArray(doc.depends_on) && doc.depends_on.length) {
    const waiting = Array.isArray(doc.waiting_for) ? doc.waiting_for : [];
    fields.push(['depends on', doc.depends_on.length + ' job(s)' +
      (waiting.length ? ', waiting for ' + waiting.map(shown).join(', ') : ', none left to wait for')]);
  }
  $('job-fields').replaceChildren(...fields.flatMap(([name, value]) => [
    el('dt', {}, name),
    el('dd', { className: name === 'state' ? 'state-' + value : '' }, value),
  ]));
  const error = doc.error;
  $('job-error').textContent = error && typeof error === 'object'
    ? (shown(error.type) || 'Error') + ' (attempt ' + (shown(error.attempt) || '?') + '): ' +
      shown(error.message) + (error.traceback ? '\n\n' + shown(error.traceback) : '')
    : 'none';
  $('job-data').textContent = JSON.stringify(doc.data, null, 2);
  $('job-task-part').hidden = typeof doc.task !== 'string';
  $('job-data-part').hidden = typeof doc.task === 'string' && (doc.data === null || doc.data === undefined);
  $('job-task').textContent = typeof doc.task === 'string'
    ? doc.task + '(' + [
      ...(Array.isArray(doc.args) ? doc.args : []).map((a) => JSON.stringify(a)),
      ...Object.entries(isPlainObject(doc.kwargs) ? doc.kwargs : {}).map(([k, v]) => k + '=' + JSON.stringify(v)),
    ].join(', ') + ')'
    : '';
  $('job-result-part').hidden = !('result' in doc);
  $('job-result').textContent = 'result' in doc ? JSON.stringify(doc.result, null, 2) : '';
  const log = Array.isArray(doc.log) ? doc.log : [];
  $('job-log').replaceChildren(...log.map((line) => el('li', {}, line && typeof line === 'object'
    ? (dateOf(line.at) ? dateOf(line.at).toLocaleTimeString() : notA('a time', line.at)) + '  ' + shown(line.msg)
    : shown(line))));
  $('requeue').hidden = !QUESHOT.FINISHED_STATES.includes(doc.state);
  $('cancel').hidden = !(doc.state === 'inactive' ||
    (doc.state === 'active' && typeof doc.cancel_requested_at !== 'number'));
}

// A cancel goes through the design doc's `cancel` handler, as `queshot cancel`
// does: a waiting job ends at once, a running one is asked to stop.
async function cancel() {
  if (!openJob) return;
  const message = $('job-message');
  const id = openJob._id;
  let answer;
  try {
    answer = await request('POST', dbUrl(DDOC_PATH + '/_update/cancel/' + encodeURIComponent(id)), {});
  } catch (error) {
    message.className = 'message';
    message.textContent = 'refused: ' + error.message;
    await showJob(id);
    return;
  }
  await showJob(id);
  message.className = 'message ok';
  message.textContent = answer && answer.state === 'active' ? 'asked to stop' : 'cancelled';
  scheduleRefresh();
}

// A requeue goes through the design doc's `requeue` handler, as `queshot
// requeue` does; validate_doc_update decides who may.
async function requeue() {
  if (!openJob) return;
  const message = $('job-message');
  const id = openJob._id;
  try {
    await requeueOne(id);
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

function requeueOne(id) {
  return request('POST', dbUrl(DDOC_PATH + '/_update/requeue/' + encodeURIComponent(id)), {});
}

// -- keeping it current ----------------------------------------------------------------

async function refresh() {
  try {
    const [stats, workers, ddoc, schedules] = await Promise.all([
      query(DDOC_PATH + '/_view/stats', { group_level: 2 }),
      query('_all_docs', { startkey: WORKER_PREFIX, endkey: WORKER_PREFIX + '\ufff0', include_docs: true }),
      request('GET', dbUrl(DDOC_PATH)),
      query('_all_docs', { startkey: SCHEDULE_PREFIX, endkey: SCHEDULE_PREFIX + '\ufff0', include_docs: true }),
    ]);
    const pauses = ddoc && Array.isArray(ddoc[PAUSE_FIELD]) ? ddoc[PAUSE_FIELD] : [];
    shared.pauses = pauses.filter((p) => p && Array.isArray(p.queue) && QUESHOT_MODEL.queuePath(p.queue));
    // Each panel on its own: one that cannot show what is stored leaves the others be.
    panel('counts', () => renderCounts(stats.rows));
    panel('workers', () => renderWorkers(workers.rows));
    panel('schedules', () => renderSchedules(schedules.rows));
    await Promise.all([refreshJobs(), refreshChart().catch((error) => panelFailed('chart', error))]);
    if (wantedJob) await showJob(wantedJob);
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    if (!feedDown && !loggedIn) setStatus('live', 'live');
  } catch (error) {
    if (error.status !== 401) setStatus('cannot read the queue: ' + error.message, 'down');
  }
}

function panel(name, render) {
  try {
    render();
  } catch (error) {
    panelFailed(name, error);
  }
}

function panelFailed(name, error) {
  $(name).replaceChildren(el('p', { className: 'message' }, 'cannot show the ' + name + ': ' + error.message));
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
  $('counts').addEventListener('click', (event) => {
    const button = event.target.closest('button.pause');
    if (button) setPaused(button.dataset.queue, button.dataset.paused !== 'true');
  });
  $('queue-filter').addEventListener('change', (event) => {
    shared.queue = event.target.value;
    openList();
    refreshChart();
  });
  $('requeue').addEventListener('click', requeue);
  $('cancel').addEventListener('click', cancel);
  $('job-close').addEventListener('click', () => {
    openJob = null;
    wantedJob = null;
    $('job').hidden = true;
    history.replaceState(null, '', location.pathname);
  });
  startJobs();
  startChart();
  const linked = /^#job=(.+)$/.exec(location.hash);
  if (linked) showJob(decodeURIComponent(linked[1])).catch(() => {});
  watchChanges();
  scheduleRefresh();
  setInterval(scheduleRefresh, PERIODIC_REFRESH_MS);
}

start();
