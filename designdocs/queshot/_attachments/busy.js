// The Busy view: each worker (its status document: queues, concurrency,
// version, started at, last seen) and under it the jobs it is running, with
// their progress and runtime (the running tab's rows, matched by worker id).
// A status document says which jobs its worker holds in `jobs`; one without a
// readable list shows "-", and the running jobs found for it.
'use strict';

const BUSY_JOBS_READ = 500; // running jobs read per refresh

function readRunning() {
  return query(WATCH_PATH + '/_view/jobs_by_state', {
    startkey: ['active'], endkey: ['active', {}], reduce: false, limit: BUSY_JOBS_READ,
  });
}

function workerGone(w, now) { // the rule of queshot/jobs.py's worker_gone
  const lease = typeof w.lease_seconds === 'number' && w.lease_seconds > 0 ? w.lease_seconds : DEFAULT_LEASE_SECONDS;
  const seen = typeof w.last_seen === 'number' && Number.isFinite(w.last_seen) ? w.last_seen : 0;
  return now - seen > GONE_AFTER_LEASES * lease * 1000;
}

// A worker is busy while it holds a job, or if it finished one within the
// status write interval it states before its last write (a worker of short
// jobs holds none at most instants); `finished`: the runs ended there.
function isBusy(w, jobs) {
  if (jobs.length) return true;
  return [w.last_finished_at, w.last_seen, w.status_every_ms].every((x) => typeof x === 'number') &&
    w.last_seen - w.last_finished_at <= w.status_every_ms;
}

function finishedText(w) {
  return typeof w.finished === 'number' ? ', ' + w.finished + ' done' : '';
}

function heldCount(w) {
  if (Array.isArray(w.jobs)) return String(w.jobs.length);
  return w.jobs === undefined || w.jobs === null ? '-' : notA('a list', w.jobs);
}

function runningRow(row, now) {
  const v = row.value || {};
  const since = typeof v.since === 'number' ? v.since : null;
  return el('tr', { className: 'busy-job', data: { job: row.id } },
    el('td', { colSpan: 2 }, el('a', { href: '#job=' + encodeURIComponent(row.id), className: 'open', data: { id: row.id } },
      el('code', {}, row.id))),
    el('td', {}, el('bdi', {}, queueText(v.queues))),
    el('td', {}, progressBar(v.progress)),
    el('td', { colSpan: 3 }, since === null ? '-' : 'running for ' + age(now - since)));
}

function renderWorkers(statusRows, runningRows) {
  const now = Date.now();
  const byWorker = new Map();
  for (const row of runningRows) {
    const id = (row.value || {}).worker_id;
    if (!byWorker.has(id)) byWorker.set(id, []);
    byWorker.get(id).push(row);
  }
  const body = statusRows.filter((row) => row.doc).flatMap((row) => {
    const w = row.doc;
    const gone = workerGone(w, now);
    const paused = w.paused === true || queuePaths(w.queues).every((path) => pauseOf(path));
    const jobs = byWorker.get(w.worker_id) || [];
    return [el('tr', { className: 'worker' + (gone ? ' gone' : ''), data: { worker: shown(w.name) || row.id } },
      el('td', {}, el('bdi', {}, shown(w.name))),
      el('td', {}, el('bdi', {}, shown(w.host) || '-'), ':', el('bdi', {}, shown(w.pid) || '-')),
      el('td', {}, el('bdi', {}, queueText(w.queues))),
      el('td', { className: 'num' }, heldCount(w) + '/' + (shown(w.concurrency) || '-') + finishedText(w)),
      el('td', {}, shown(w.version) || '-', w.started_at === undefined ? '' : ', started ' + when(w.started_at)),
      el('td', {}, ago(w.last_seen || 0)),
      el('td', {}, gone ? 'gone' : paused ? 'paused' : isBusy(w, jobs) ? 'busy' : 'idle')),
    ...jobs.map((job) => runningRow(job, now))];
  });
  replaceRows($('workers'),
    headRow(['name'], ['host:pid'], ['queues'], ['jobs', 'num'], ['version, started'], ['last seen'], ['status']),
    body, 'no workers');
}

function startBusy() {
  $('workers').addEventListener('click', (event) => {
    const open = event.target.closest('a.open');
    if (open) {
      event.preventDefault();
      showJob(open.dataset.id).catch(() => {});
    }
  });
}
