// The queshot dashboard's frame: jobs per queue and state (with pause and
// resume), kept current from the database's _changes feed. The job lists
// (jobs.js, bulk.js), the job panel (panel.js), the Busy view (busy.js), the
// limits (limits.js), the schedules (schedules.js) and the chart (chart.js)
// are panels of their own;
// this file starts them and tells them when to redraw.
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

// The counts table's columns: waiting (due now) and scheduled (due later)
// apart, though both are stored as `inactive`.
const COLUMNS = STATES.flatMap((state) => (state === 'inactive' ? ['inactive', 'scheduled'] : [state]));
const COLUMN_LABELS = { ...STATE_LABELS, scheduled: 'scheduled' };

// Jobs per queue path and state (the stats view, group_level 2), then how many
// of each queue's waiting jobs are due later: [path, 'inactive', dueAt] keys
// after now, one reduce per queue, all in one request (CouchDB's multi-query).
async function readCounts() {
  const stats = await query(DDOC_PATH + '/_view/stats', { group_level: 2 });
  const now = Date.now();
  const waiting = stats.rows.filter((row) => Array.isArray(row.key) && row.key[1] === 'inactive');
  const ranges = waiting.map((row) => ({ startkey: [row.key[0], 'inactive', now + 1], endkey: [row.key[0], 'inactive', {}] }));
  let later = [];
  if (ranges.length) {
    try {
      later = (await request('POST', dbUrl(DDOC_PATH + '/_view/stats/queries'), { queries: ranges })).results
        .map((result) => (result.rows[0] ? result.rows[0].value : 0));
    } catch (error) {
      if (error.status === 401) throw error;
      later = await scheduledByReading(waiting, now);
    }
  }
  const scheduled = waiting.map((row, i) => ({ key: [row.key[0], 'scheduled'], value: later[i] }));
  return [...stats.rows.map((row) => {
    const i = waiting.indexOf(row);
    return i < 0 ? row : { key: row.key, value: row.value - later[i] };
  }), ...scheduled];
}

// A server without multi-queries (pouchdb-server): the scheduled jobs' rows,
// counted per queue here (a few thousand at most on a stand-in).
async function scheduledByReading(waiting, now) {
  const rows = (await query(WATCH_PATH + '/_view/jobs_by_state',
    { startkey: ['inactive', now + 1], endkey: ['inactive', {}], reduce: false })).rows;
  const per = new Map();
  for (const row of rows) {
    const name = queueText((row.value || {}).queues);
    per.set(name, (per.get(name) || 0) + 1);
  }
  return waiting.map((row) => Math.min(row.value, per.get(queueText(row.key[0])) || 0));
}

function renderCounts(rows) {
  const queues = new Map();
  const zero = () => Object.fromEntries(COLUMNS.map((s) => [s, 0]));
  const totals = zero();
  shared.queues = new Map();
  for (const row of rows) {
    const [key, state] = Array.isArray(row.key) ? row.key : [row.key, null];
    const name = queueText(key);
    const path = QUESHOT_MODEL.queuePath(key); // null: the jobs' `queues` is no queue
    if (path) shared.queues.set(name, path);
    if (!queues.has(name)) queues.set(name, zero());
    queues.get(name)[state] = (queues.get(name)[state] || 0) + row.value;
    totals[state] = (totals[state] || 0) + row.value;
  }
  for (const pause of shared.pauses) shared.queues.set(queueText(pause.queue), pause.queue);
  shared.counts = queues;
  const line = (name, counts, className) => {
    const cells = COLUMNS.map((state) => el('td', {
      className: 'num' + (counts[state] ? ' state-' + state : ''),
      data: { queue: name, state },
    }, counts[state]));
    const total = COLUMNS.reduce((sum, state) => sum + counts[state], 0);
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
  const body = names.map((name) => line(name, queues.get(name) || zero()));
  if (body.length) body.push(line('total', totals, 'total'));
  replaceRows($('counts'), headRow(['queue'], ...COLUMNS.map((s) => [COLUMN_LABELS[s] || s, 'num']), ['total', 'num'], ['']),
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

// -- keeping it current ----------------------------------------------------------------

async function refresh() {
  try {
    const [counts, workers, running, ddoc, schedules, limits] = await Promise.all([
      readCounts(),
      query('_all_docs', { startkey: WORKER_PREFIX, endkey: WORKER_PREFIX + '\ufff0', include_docs: true }),
      readRunning(),
      request('GET', dbUrl(DDOC_PATH)),
      query('_all_docs', { startkey: SCHEDULE_PREFIX, endkey: SCHEDULE_PREFIX + '\ufff0', include_docs: true }),
      readLimits(),
    ]);
    const pauses = ddoc && Array.isArray(ddoc[PAUSE_FIELD]) ? ddoc[PAUSE_FIELD] : [];
    shared.pauses = pauses.filter((p) => p && Array.isArray(p.queue) && QUESHOT_MODEL.queuePath(p.queue));
    // Each panel on its own: one that cannot show what is stored leaves the others be.
    panel('counts', () => renderCounts(counts));
    panel('workers', () => renderWorkers(workers.rows, running.rows));
    panel('schedules', () => renderSchedules(schedules.rows));
    panel('limits', () => renderLimits(limits, workers.rows));
    await Promise.all([refreshJobs(), refreshChart().catch((error) => panelFailed('chart', error))]);
    if (wantedJob) await showJob(wantedJob);
    $('updated').textContent = 'updated ' + clock(Date.now());
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
  const read = refresh();
  watchIndexing(read);
  read.finally(() => setTimeout(() => {
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
  $('utc').checked = shownZone() === 'UTC';
  $('utc').addEventListener('change', (event) => {
    localStorage.setItem(UTC_KEY, String(event.target.checked));
    scheduleRefresh();
  });
  startJobs();
  startPanel();
  startBusy();
  startSchedules();
  startChart();
  const linked = /^#job=(.+)$/.exec(location.hash);
  if (linked) showJob(decodeURIComponent(linked[1])).catch(() => {});
  watchChanges();
  scheduleRefresh();
  setInterval(scheduleRefresh, PERIODIC_REFRESH_MS);
}

start();
