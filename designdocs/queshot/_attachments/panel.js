// One job in a side panel over the page (the list stays where it was): its
// fields, task call and result, every attempt's error (the document keeps
// `errors`), data and log, and what can be done to it: Requeue a finished
// job, Cancel a waiting or running one, Run now a scheduled one, Delete.
'use strict';

let openJob = null; // the job document shown, as read (its _rev guards the writes)
let wantedJob = null; // the id the panel is to show: the last one asked for
let jobReads = 0; // only the latest read renders: a refresh's older one may answer last

function closeJob() {
  openJob = null;
  wantedJob = null;
  jobReads++; // a read still in flight (a refresh's) must not open it again
  $('job').hidden = true;
  history.replaceState(null, '', location.pathname);
}

async function showJob(id) {
  wantedJob = id;
  const read = ++jobReads;
  let doc;
  try {
    doc = await request('GET', docUrl(id));
  } catch (error) {
    if (read !== jobReads) return;
    if (error.status === 404) {
      closeJob();
      setStatus('no job ' + id, 'down');
      return;
    }
    throw error;
  }
  if (read !== jobReads) return;
  // a message about the job (requeued, refused) holds until the job moves on
  if (!openJob || openJob._id !== doc._id || openJob.state !== doc.state) $('job-message').textContent = '';
  openJob = doc;
  history.replaceState(null, '', '#job=' + encodeURIComponent(id));
  $('job').hidden = false;
  $('job-id').textContent = doc._id;
  $('job-fauxton').href = fauxtonUrl(doc._id);
  renderFields(doc);
  renderErrors(doc);
  $('job-data').textContent = JSON.stringify(doc.data, null, 2);
  $('job-task-part').hidden = typeof doc.task !== 'string';
  $('job-data-part').hidden = typeof doc.task === 'string' && (doc.data === null || doc.data === undefined);
  $('job-task').textContent = typeof doc.task === 'string' ? callText(doc) : '';
  $('job-result-part').hidden = !('result' in doc);
  $('job-result').textContent = 'result' in doc ? JSON.stringify(doc.result, null, 2) : '';
  const log = Array.isArray(doc.log) ? doc.log : [];
  $('job-log').replaceChildren(...log.map((line) => el('li', {}, line && typeof line === 'object'
    ? (dateOf(line.at) ? clock(line.at) : notA('a time', line.at)) + '  ' + shown(line.msg)
    : shown(line))));
  if (!log.length) $('job-log').append(el('li', { className: 'status' }, 'no lines yet'));
  const label = stateLabel(doc.state, QUESHOT_MODEL.dueAt(doc));
  $('requeue').hidden = !ACTIONS.requeue.fits(doc.state);
  $('cancel').hidden = !(ACTIONS.cancel.fits(doc.state) && typeof doc.cancel_requested_at !== 'number');
  $('run-now').hidden = label !== 'scheduled';
}

function renderFields(doc) {
  const fields = [
    ['state', stateLabel(doc.state, QUESHOT_MODEL.dueAt(doc)) + (doc.state === 'inactive' ? ' (stored: inactive)' : '')],
    ['queue', queueText(doc.queues)],
    ['priority', shown(doc.priority || 0)],
    ['attempts', shown(doc.attempts || 0) + ' of ' + (shown(doc.max_attempts) || '-')],
    ['stalls', shown(doc.stalls || 0)],
    ['progress', progressBar(doc.progress)],
    ['worker', shown(doc.worker_id) || '-'],
    ['lease until', when(doc.lease_expires_at)],
    ['run at', when(doc.run_at)],
    ['created', when(doc.created_at)],
    // placed by its arrival: its producer's clock was off (model.js's dueAt)
    ...(doc.arrived_at === undefined ? [] : [['in line from', when(doc.arrived_at)]]),
    ['claimed', when(doc.claimed_at)],
    ['completed', when(doc.completed_at)],
    ['failed', when(doc.failed_at)],
    ['cancelled', when(doc.cancelled_at)],
    ['cancel asked', when(doc.cancel_requested_at)],
  ];
  if (Array.isArray(doc.depends_on) && doc.depends_on.length) {
    const waiting = Array.isArray(doc.waiting_for) ? doc.waiting_for : [];
    fields.push(['depends on', counted(doc.depends_on.length, 'job') +
      (waiting.length ? ', waiting for ' + waiting.map(shown).join(', ') : ', none left to wait for')]);
  }
  $('job-fields').replaceChildren(...fields.flatMap(([name, value]) => [
    el('dt', {}, name),
    el('dd', { className: name === 'state' ? 'state-' + doc.state : '' }, value),
  ]));
}

// Every kept error, latest first; a document without `errors` shows `error`.
function renderErrors(doc) {
  const kept = Array.isArray(doc.errors) && doc.errors.length ? [...doc.errors].reverse()
    : doc.error && typeof doc.error === 'object' ? [doc.error] : [];
  $('job-error').replaceChildren(...kept.map((error) => {
    if (!error || typeof error !== 'object') return el('pre', {}, notA('an error', error));
    const head = (shown(error.type) || 'Error') + ' (attempt ' + (shown(error.attempt) || '?') + '): ' + shown(error.message);
    const at = typeof error.at === 'number' ? '  ' + clock(error.at) : '';
    return error.traceback
      ? el('details', {}, el('summary', {}, el('bdi', {}, head), at), el('pre', {}, shown(error.traceback)))
      : el('pre', {}, head + at);
  }));
  if (!kept.length) $('job-error').append(el('p', { className: 'status' }, 'none'));
  const first = $('job-error').querySelector('details');
  if (first) first.open = true;
}

// -- acting on it --------------------------------------------------------------------------

async function onOpenJob(verb, call, confirmText) {
  if (!openJob) return;
  if (confirmText && !confirm(confirmText)) return;
  const message = $('job-message');
  const id = openJob._id;
  let answer;
  try {
    answer = await call(openJob);
  } catch (error) {
    message.className = 'message';
    message.textContent = error.status === 409
      ? 'refused: ' + error.message + ' (shown again: look and retry)'
      : 'refused: ' + error.message;
    await showJob(id);
    return;
  }
  if (verb === 'deleted') {
    closeJob();
    $('bulk-message').className = 'message ok';
    $('bulk-message').textContent = 'deleted ' + id;
  } else {
    await showJob(id);
    message.className = 'message ok';
    message.textContent = typeof verb === 'function' ? verb(answer) : verb;
  }
  scheduleRefresh();
}

function startPanel() {
  $('job-close').addEventListener('click', closeJob);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !$('job').hidden && !$('confirm-many').open) closeJob();
  });
  $('requeue').addEventListener('click', () => onOpenJob('requeued', (doc) => handlerCall('requeue', doc._id)));
  // a waiting job ends at once, a running one is asked to stop
  $('cancel').addEventListener('click', () => onOpenJob(
    (answer) => (answer && answer.state === 'active' ? 'asked to stop' : 'cancelled'),
    (doc) => handlerCall('cancel', doc._id), 'Cancel this job?'));
  // a plain edit of run_at, judged by validate_doc_update as a Fauxton edit is
  $('run-now').addEventListener('click', () => onOpenJob('due now',
    (doc) => request('PUT', docUrl(doc._id), { ...doc, run_at: Date.now() })));
  $('delete').addEventListener('click', () => onOpenJob('deleted',
    (doc) => request('DELETE', docUrl(doc._id) + '?rev=' + encodeURIComponent(doc._rev)),
    'Delete this job? This cannot be undone.'));
}
