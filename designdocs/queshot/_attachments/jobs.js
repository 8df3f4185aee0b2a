// The job lists: a tab per state (waiting and scheduled apart), each a page
// of the jobs_by_state or jobs_by_queue view ([queue,] state, since), due
// first for waiting jobs and newest first for the rest; a search by job id
// or by a field of data (the jobs_by_data view); and bulk requeue and delete
// of a selection, or of every failed job of a queue, through the same rules
// as Fauxton: the `requeue` handler, and _bulk_docs deletes, each judged by
// validate_doc_update, each refusal listed with its reason.
'use strict';

const PAGE_SIZE = 25;
const BULK_PAGE = 200; // rows read per step of "requeue all failed"
const BULK_PARALLEL = 4; // requeue handler calls at once
const STATE_LABELS = { inactive: 'waiting', active: 'running' };

// Tabs from the design doc's own states: a state added to context.json gets one.
const TABS = STATES.flatMap((state) => state === 'inactive'
  ? [{ id: 'waiting', state, label: 'waiting', due: 'now', ascending: true },
    { id: 'scheduled', state, label: 'scheduled', due: 'later', ascending: true }]
  : [{ id: STATE_LABELS[state] || state, state, label: STATE_LABELS[state] || state, ascending: false }]);

const list = {
  tab: TABS[0],
  starts: [null], // where each page seen so far starts: {key, id}, null for the first
  page: 0,
  rows: [],
  search: null, // {field, value} or null
  selected: new Map(), // id -> {id, rev, state}
  reads: 0, // page reads started: only the latest one's answer is shown
};

// The view and key range of a tab for the queue filter, read as paged.
function tabQuery(tab) {
  const path = shared.queue ? shared.queues.get(shared.queue) : null;
  const view = path ? 'jobs_by_queue' : 'jobs_by_state';
  const prefix = path ? [path, tab.state] : [tab.state];
  const now = Date.now();
  let low = [...prefix];
  let high = [...prefix, {}];
  if (tab.due === 'now') high = [...prefix, now];
  if (tab.due === 'later') low = [...prefix, now + 1];
  return tab.ascending
    ? { view, startkey: low, endkey: high }
    : { view, startkey: high, endkey: low, descending: true };
}

async function readPage() {
  if (list.search) {
    const { field, value } = list.search;
    const keys = [[field, value]];
    const number = Number(value);
    if (value.trim() !== '' && !Number.isNaN(number)) keys.push([field, number]);
    if (value === 'true' || value === 'false') keys.push([field, value === 'true']);
    const answer = await query(WATCH_PATH + '/_view/jobs_by_data', { keys, limit: PAGE_SIZE + 1 });
    return answer.rows;
  }
  const { view, ...range } = tabQuery(list.tab);
  const start = list.starts[list.page];
  const params = { ...range, limit: PAGE_SIZE + 1, reduce: false };
  if (start) Object.assign(params, { startkey: start.key, startkey_docid: start.id });
  return (await query(WATCH_PATH + '/_view/' + view, params)).rows;
}

async function refreshJobs() {
  const read = ++list.reads;
  const rows = await readPage();
  if (read !== list.reads) return; // the user moved on meanwhile
  list.rows = rows.slice(0, PAGE_SIZE);
  const more = rows.length > PAGE_SIZE;
  if (more && !list.search) list.starts[list.page + 1] = { key: rows[PAGE_SIZE].key, id: rows[PAGE_SIZE].id };
  else list.starts.length = list.page + 1;
  renderJobs(more);
}

function openList() {
  list.starts = [null];
  list.page = 0;
  list.selected.clear();
  refreshJobs().catch(showListError);
}

function showListError(error) {
  if (error.status !== 401) $('bulk-message').textContent = 'cannot read the jobs: ' + error.message;
}

// The columns that tell most about a job in each state.
function describe(row, now) {
  const v = row.value || {};
  const since = typeof v.since === 'number' ? v.since : row.key[row.key.length - 1];
  const state = v.state;
  if (state === 'inactive') {
    return [since > now ? 'runs ' + when(since) : 'due ' + age(now - since) + ' ago',
      'priority ' + (v.priority || 0) + ', attempts ' + v.attempts + '/' + (v.max_attempts || '-')];
  }
  if (state === 'active') {
    const lease = typeof v.lease_expires_at === 'number' ? v.lease_expires_at - now : null;
    return ['started ' + age(now - since) + ' ago',
      (v.worker_id || '-') + ' · lease ' + (lease === null ? '-' : lease > 0 ? age(lease) + ' left' : 'over') +
      ' · ' + (typeof v.progress === 'number' ? v.progress : 0) + '%'];
  }
  // stored text in a <bdi> of its own: a bidi override in it stops there
  const detail = state === 'failed'
    ? el('span', {}, el('bdi', {}, v.error || ''), ' (attempts ' + v.attempts + '/' + (v.max_attempts || '-') + ')')
    : '';
  return [(STATE_LABELS[state] || state) + ' ' + age(now - since) + ' ago', detail];
}

function renderJobs(more) {
  const now = Date.now();
  for (const tab of TABS) {
    const button = document.querySelector('#tabs button[data-tab="' + tab.id + '"]');
    button.classList.toggle('current', !list.search && tab === list.tab);
  }
  const body = list.rows.map((row) => {
    const v = row.value || {};
    const [since, detail] = describe(row, now);
    const box = el('input', { type: 'checkbox', checked: list.selected.has(row.id), data: { id: row.id } });
    return el('tr', { data: { id: row.id, state: v.state || '' } },
      el('td', {}, box),
      el('td', {}, el('a', { href: '#job=' + encodeURIComponent(row.id), className: 'open', data: { id: row.id } },
        el('code', {}, row.id))),
      el('td', {}, queueText(v.queues)),
      el('td', { className: 'state-' + v.state }, since),
      el('td', {}, detail),
      el('td', {}, el('a', { href: fauxtonUrl(row.id), className: 'fauxton', target: '_blank' }, 'Fauxton')));
  });
  const what = list.search ? 'no job with data.' + list.search.field + ' = ' + list.search.value
    : 'no ' + list.tab.label + ' jobs' + (shared.queue ? ' in ' + shared.queue : '');
  replaceRows($('jobs'), headRow([''], ['job'], ['queue'], ['when'], ['detail'], ['']), body, what);
  Object.assign($('jobs').dataset, { tab: list.search ? 'search' : list.tab.id, queue: shared.queue, page: list.page });
  $('page-newer').disabled = list.page === 0 || !!list.search;
  $('page-older').disabled = !more || !!list.search;
  $('page-number').textContent = list.search ? 'search results' : 'page ' + (list.page + 1);
  const path = shared.queue ? shared.queues.get(shared.queue) : null;
  const pause = path ? pauseOf(path) : null;
  $('list-paused').hidden = !pause;
  if (pause) $('list-paused').textContent = 'queue ' + queueText(pause.queue) + ' is paused: no worker claims its jobs';
  renderBulk();
}

function renderBulk() {
  const n = list.selected.size;
  $('bulk-requeue').textContent = 'Requeue selected (' + n + ')';
  $('bulk-delete').textContent = 'Delete selected (' + n + ')';
  $('bulk-requeue').disabled = $('bulk-delete').disabled = n === 0;
  const failed = failedCount();
  $('requeue-all').hidden = list.search || list.tab.state !== 'failed';
  $('requeue-all').textContent = 'Requeue all ' + failed + ' failed' + (shared.queue ? ' of ' + shared.queue : '');
  $('requeue-all').disabled = failed === 0;
}

function failedCount() {
  let total = 0;
  for (const [name, counts] of shared.counts) {
    if (!shared.queue || name === shared.queue) total += counts.failed || 0;
  }
  return total;
}

// -- bulk actions ---------------------------------------------------------------------

function reportBulk(done, verb, refusals) {
  const message = $('bulk-message');
  message.className = refusals.length ? 'message' : 'message ok';
  message.textContent = verb + ' ' + done + ' job(s)' + (refusals.length ? ', ' + refusals.length + ' refused:' : '');
  $('bulk-refusals').replaceChildren(...refusals.map(({ id, reason }) =>
    el('li', { data: { id } }, el('code', {}, id), ': ' + reason)));
  list.selected.clear();
  for (const box of document.querySelectorAll('#jobs input[type=checkbox]')) box.checked = false;
  renderBulk();
  scheduleRefresh();
}

// Requeue ids through the handler, a few at a time; returns the refusals.
async function requeueAll(ids, progress) {
  const refusals = [];
  let next = 0;
  let done = 0;
  async function lane() {
    while (next < ids.length) {
      const id = ids[next++];
      try {
        await requeueOne(id);
        done += 1;
      } catch (error) {
        refusals.push({ id, reason: error.message });
      }
      progress(done, refusals.length);
    }
  }
  await Promise.all(Array.from({ length: BULK_PARALLEL }, lane));
  return { done, refusals };
}

async function requeueSelected() {
  const ids = [...list.selected.keys()];
  if (!ids.length || !confirm('Requeue ' + ids.length + ' job(s)?')) return;
  const { done, refusals } = await requeueAll(ids, (n) => { $('bulk-message').textContent = 'requeued ' + n + '/' + ids.length; });
  reportBulk(done, 'requeued', refusals);
}

// Every job failed when asked, paged by key (the jobs requeued leave the
// range, so each step reads from the start again; those refused are skipped).
async function requeueFailed() {
  const count = failedCount();
  const where = shared.queue ? ' of ' + shared.queue : ' of all queues';
  if (!count || !confirm('Requeue all ' + count + ' failed job(s)' + where + '?')) return;
  const { view, startkey, endkey } = tabQuery({ state: 'failed', ascending: true });
  const until = [...endkey.slice(0, -1), Date.now()];
  let done = 0;
  const refusals = [];
  let start = null;
  for (;;) {
    const params = { startkey: start ? start.key : startkey, endkey: until, limit: BULK_PAGE, reduce: false };
    if (start) params.startkey_docid = start.id;
    const rows = (await query(WATCH_PATH + '/_view/' + view, params)).rows
      .filter((row) => !refusals.some((r) => r.id === row.id));
    if (!rows.length) break;
    const step = await requeueAll(rows.map((row) => row.id), (n) => {
      $('bulk-message').textContent = 'requeued ' + (done + n) + '/' + count;
    });
    done += step.done;
    refusals.push(...step.refusals);
    if (step.refusals.length) start = { key: rows[rows.length - 1].key, id: rows[rows.length - 1].id };
  }
  reportBulk(done, 'requeued', refusals);
}

// Deletes are plain document writes (_bulk_docs), against the revision listed:
// a job changed since is refused, not deleted.
async function deleteSelected() {
  const jobs = [...list.selected.values()];
  if (!jobs.length || !confirm('Delete ' + jobs.length + ' job(s)? This cannot be undone.')) return;
  let results;
  try {
    results = await request('POST', dbUrl('_bulk_docs'),
      { docs: jobs.map((j) => ({ _id: j.id, _rev: j.rev, _deleted: true })) });
  } catch (error) {
    reportBulk(0, 'deleted', jobs.map((j) => ({ id: j.id, reason: error.message })));
    return;
  }
  const refusals = results.filter((r) => r.error).map((r) => ({ id: r.id, reason: r.reason || r.error }));
  reportBulk(results.length - refusals.length, 'deleted', refusals);
}

// -- wiring ---------------------------------------------------------------------------

function search(text) {
  const equals = text.indexOf('=');
  if (equals > 0) {
    list.search = { field: text.slice(0, equals).trim(), value: text.slice(equals + 1).trim() };
    list.selected.clear();
    refreshJobs().catch(showListError);
    return;
  }
  showJob(text).catch(() => {});
}

function startJobs() {
  $('tabs').replaceChildren(...TABS.map((tab) => el('button', { type: 'button', data: { tab: tab.id } }, tab.label)));
  $('tabs').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-tab]');
    if (!button) return;
    list.tab = TABS.find((tab) => tab.id === button.dataset.tab);
    list.search = null;
    openList();
  });
  $('page-older').addEventListener('click', () => { list.page += 1; refreshJobs().catch(showListError); });
  $('page-newer').addEventListener('click', () => { list.page -= 1; refreshJobs().catch(showListError); });
  $('jobs').addEventListener('click', (event) => {
    const open = event.target.closest('a.open');
    if (open) {
      event.preventDefault();
      showJob(open.dataset.id).catch(() => {});
    }
  });
  $('jobs').addEventListener('change', (event) => {
    const id = event.target.dataset.id;
    const row = list.rows.find((r) => r.id === id);
    if (!row) return;
    if (event.target.checked) list.selected.set(id, { id, rev: row.value.rev, state: row.value.state });
    else list.selected.delete(id);
    renderBulk();
  });
  $('search').addEventListener('submit', (event) => {
    event.preventDefault();
    search(event.target.elements.namedItem('q').value.trim());
  });
  $('bulk-requeue').addEventListener('click', () => requeueSelected().catch(showListError));
  $('bulk-delete').addEventListener('click', () => deleteSelected().catch(showListError));
  $('requeue-all').addEventListener('click', () => requeueFailed().catch(showListError));
}
