// The job lists: a tab per state (waiting and scheduled apart), each with its
// count, a page of the jobs_by_state or jobs_by_queue view ([queue,] state,
// since), due first for waiting jobs and newest first for the rest, paged by
// view key both ways (first, previous, next, last: never by skipping rows);
// and a search by job id or by a field of data (the jobs_by_data view),
// limited by queue and state, paged and counted. Each row reads its job
// (include_docs) to summarise it: the task call or data, when, attempts, the
// error or the result. What is ticked is acted on by bulk.js.
'use strict';

const PAGE_SIZE = 25;
const SEARCH_CAP = 5000; // data-search rows read at most (the count says "or more")
const ID_SEARCH_CAP = 200; // jobs read at most for an id search

// Tabs from the design doc's own states: a state added to context.json gets one.
// `column`: its count in the counts table (shared.counts).
const TABS = STATES.flatMap((state) => state === 'inactive'
  ? [{ id: 'waiting', state, column: 'inactive', label: 'waiting', due: 'now', ascending: true },
    { id: 'scheduled', state, column: 'scheduled', label: 'scheduled', due: 'later', ascending: true }]
  : [{ id: STATE_LABELS[state] || state, state, column: state, label: STATE_LABELS[state] || state, ascending: false }]);

const list = {
  tab: TABS[0],
  page: 0,
  anchor: { dir: 'first' }, // how the page shown was read: first, last, after or before a row
  rows: [],
  search: null, // {text, field, value, state} or null
  found: [], // a search's rows, limited by queue and state
  capped: false, // the search read SEARCH_CAP rows: there may be more
  selected: new Map(), // id -> {id, rev, state}
  allMatching: false, // the whole tab or search is selected, not only ticked rows
  reads: 0, // page reads started: only the latest one's answer is shown
};

// -- counts ---------------------------------------------------------------------------

// A tab's count for the queue filter, from the counts table's last read.
function tabCount(tab) {
  let total = 0;
  for (const [name, counts] of shared.counts) {
    if (!shared.queue || name === shared.queue) total += counts[tab.column] || 0;
  }
  return total;
}

function pageCount(total) {
  return Math.max(1, Math.ceil(total / PAGE_SIZE));
}

// -- reading a tab --------------------------------------------------------------------

// The view and key range of a tab for the queue filter: `forward` reads it in
// its order, `backward` from its end.
function tabRange(tab) {
  const path = shared.queue ? shared.queues.get(shared.queue) : null;
  const view = path ? 'jobs_by_queue' : 'jobs_by_state';
  const prefix = path ? [path, tab.state] : [tab.state];
  const now = Date.now();
  const low = tab.due === 'later' ? [...prefix, now + 1] : [...prefix];
  const high = tab.due === 'now' ? [...prefix, now] : [...prefix, {}];
  return tab.ascending
    ? { view, forward: { startkey: low, endkey: high }, backward: { startkey: high, endkey: low, descending: true } }
    : { view, forward: { startkey: high, endkey: low, descending: true }, backward: { startkey: low, endkey: high } };
}

async function readTabPage() {
  const { view, forward, backward } = tabRange(list.tab);
  const anchor = list.anchor;
  const base = { reduce: false, include_docs: true };
  const path = WATCH_PATH + '/_view/' + view;
  if (anchor.dir === 'first' || anchor.dir === 'after') {
    const rows = await readFrom(path, { ...forward, ...base }, anchor, PAGE_SIZE + 1);
    return { rows: rows.slice(0, PAGE_SIZE), more: rows.length > PAGE_SIZE };
  }
  const size = anchor.dir === 'last'
    ? tabCount(list.tab) - PAGE_SIZE * (pageCount(tabCount(list.tab)) - 1) : PAGE_SIZE;
  const rows = await readFrom(path, { ...backward, ...base }, anchor, Math.max(1, size));
  return { rows: rows.reverse(), more: anchor.dir === 'before' };
}

// Up to `limit` rows of a range after the row `from` ({key, id}; none: from
// its start). The row itself is read too and dropped, rather than skipped:
// it may have left the view meanwhile (requeued, deleted), and a skip would
// then pass over the row after it.
async function readFrom(path, range, from, limit) {
  if (!from || from.key === undefined) return (await query(path, { ...range, limit })).rows;
  const rows = (await query(path, { ...range, startkey: from.key, startkey_docid: from.id, limit: limit + 1 })).rows;
  return rows.filter((row) => row.id !== from.id).slice(0, limit);
}

// -- searching --------------------------------------------------------------------------

// "to=ada@example.org": a field of data (the value also tried as a number and
// a boolean); anything else: a job id, or the start of one.
function parseSearch(text, state) {
  const equals = text.indexOf('=');
  if (equals > 0) return { text, field: text.slice(0, equals).trim(), value: text.slice(equals + 1).trim(), state };
  return { text, field: null, value: text, state };
}

async function searchRows(search) {
  if (search.field !== null) {
    const { field, value } = search;
    const values = [value];
    const number = Number(value);
    if (value !== '' && !Number.isNaN(number)) values.push(number);
    if (value === 'true' || value === 'false') values.push(value === 'true');
    // A state narrows the range read (the key ends with the stored state), so
    // that the cap counts only rows of that state.
    const stored = search.state ? TABS.find((tab) => tab.column === search.state).state : null;
    const rows = [];
    for (const v of values) {
      const start = stored === null ? [field, v] : [field, v, stored];
      const range = { startkey: start, endkey: [...start, {}], limit: SEARCH_CAP - rows.length };
      rows.push(...(await query(WATCH_PATH + '/_view/jobs_by_data', range)).rows);
      if (rows.length >= SEARCH_CAP) break;
    }
    list.capped = rows.length >= SEARCH_CAP;
    return rows.map((row) => ({ ...row, matched: 'data.' + field + ' = ' + JSON.stringify(row.key[1]) }));
  }
  const answer = await query('_all_docs', {
    startkey: search.value, endkey: search.value + '\ufff0', limit: ID_SEARCH_CAP, include_docs: true,
  });
  list.capped = answer.rows.length >= ID_SEARCH_CAP;
  // Jobs only: a limit's token has a `state` too, and is no job (model.js's isJob).
  return answer.rows.filter((row) => QUESHOT_MODEL.isJob(row.doc) && typeof row.doc.state === 'string')
    .map((row) => ({
      id: row.id, key: row.id, doc: row.doc,
      value: { rev: row.doc._rev, state: row.doc.state, queues: row.doc.queues, since: QUESHOT_MODEL.dueAt(row.doc) },
      matched: row.id === search.value ? 'id' : 'id starts with ' + JSON.stringify(search.value),
    }));
}

function rowColumn(row) {
  const v = row.value || {};
  return v.state === 'inactive' && typeof v.since === 'number' && v.since > Date.now() ? 'scheduled' : v.state;
}

function inQueue(row) {
  if (!shared.queue) return true;
  return samePath(QUESHOT_MODEL.queuePath((row.value || {}).queues), shared.queues.get(shared.queue));
}

async function readSearchPage() {
  const search = list.search;
  list.found = (await searchRows(search))
    .filter((row) => inQueue(row) && (!search.state || rowColumn(row) === search.state));
  const page = list.found.slice(list.page * PAGE_SIZE, (list.page + 1) * PAGE_SIZE);
  const missing = page.filter((row) => !row.doc).map((row) => row.id);
  if (missing.length) {
    const docs = new Map((await query('_all_docs', { keys: missing, include_docs: true })).rows
      .filter((row) => row.doc).map((row) => [row.id, row.doc]));
    for (const row of page) if (!row.doc) row.doc = docs.get(row.id) || null;
  }
  return { rows: page, more: (list.page + 1) * PAGE_SIZE < list.found.length };
}

// -- the page ---------------------------------------------------------------------------

async function refreshJobs() {
  const read = ++list.reads;
  const { rows, more } = list.search ? await readSearchPage() : await readTabPage();
  if (read !== list.reads) return; // the user moved on meanwhile
  if (!rows.length && list.page > 0 && !list.search) { // the jobs moved on: back to the start
    goToPage('first');
    return;
  }
  list.rows = rows;
  renderJobs(more);
}

function goToPage(where) {
  const total = list.search ? list.found.length : tabCount(list.tab);
  const pages = pageCount(total);
  if (where === 'first' || (where === 'newer' && list.page <= 1)) {
    list.page = 0;
    list.anchor = { dir: 'first' };
  } else if (where === 'last') {
    list.page = pages - 1;
    list.anchor = { dir: 'last' };
  } else if (where === 'older') {
    const last = list.rows[list.rows.length - 1];
    list.page += 1;
    list.anchor = { dir: 'after', key: last.key, id: last.id };
  } else {
    const first = list.rows[0];
    list.page -= 1;
    list.anchor = { dir: 'before', key: first.key, id: first.id };
  }
  refreshJobs().catch(showListError);
}

function openList() {
  list.page = 0;
  list.anchor = { dir: 'first' };
  clearSelection();
  refreshJobs().catch(showListError);
}

function showListError(error) {
  if (error.status !== 401) $('bulk-message').textContent = 'cannot read the jobs: ' + error.message;
}

// -- one row ------------------------------------------------------------------------------

function cell(content, className) {
  const node = el('td', { className: className || '' }, content);
  node.title = node.textContent;
  return node;
}

// When the job entered its state, as its tab reads it.
function whenText(row, now) {
  const v = row.value || {};
  const since = typeof v.since === 'number' ? v.since : null;
  const column = rowColumn(row);
  if (since === null) return stateLabel(v.state);
  if (column === 'scheduled') return 'runs ' + when(since);
  if (v.state === 'inactive') return 'due ' + age(now - since) + ' ago';
  if (v.state === 'active') return 'started ' + age(now - since) + ' ago';
  return stateLabel(v.state) + ' ' + age(now - since) + ' ago';
}

// What the job did or is doing: the error, the result, the progress.
function outcome(row, doc, now) {
  const v = row.value || {};
  if (v.state === 'failed' || (v.state === 'inactive' && v.error)) {
    return el('bdi', { className: 'state-failed' }, preview(errorText(doc.error) || v.error || ''));
  }
  if (v.state === 'complete' && 'result' in doc) return el('bdi', {}, '→ ' + preview(doc.result));
  if (v.state === 'active') {
    const lease = typeof v.lease_expires_at === 'number' ? v.lease_expires_at - now : null;
    return el('span', {}, progressBar(v.progress), ' ',
      el('bdi', {}, v.worker_id || '-'), ' · lease ' + (lease === null ? '-' : lease > 0 ? age(lease) + ' left' : 'over'));
  }
  if (v.state === 'blocked') {
    return 'waits for ' + (Array.isArray(doc.waiting_for) ? counted(doc.waiting_for.length, 'job') : '? jobs');
  }
  if (v.state === 'inactive') return 'priority ' + (v.priority || 0);
  return '';
}

function jobRow(row, now) {
  const v = row.value || {};
  const doc = row.doc || {};
  const what = typeof doc.task === 'string' ? callText(doc) : preview(doc.data === undefined ? null : doc.data);
  const box = el('input', { type: 'checkbox', checked: list.allMatching || list.selected.has(row.id), data: { id: row.id } });
  const name = el('td', { className: 'job' },
    el('a', { href: '#job=' + encodeURIComponent(row.id), className: 'open', data: { id: row.id } },
      el('bdi', { className: 'what' }, what)),
    el('code', { className: 'id' }, row.id),
    row.matched ? el('span', { className: 'matched' }, 'matched ' + row.matched) : '');
  name.title = what + '\n' + row.id;
  const attempts = shown(v.attempts || 0) + '/' + (v.max_attempts === null || v.max_attempts === undefined ? '-' : shown(v.max_attempts));
  return el('tr', { data: { id: row.id, state: v.state || '' } },
    el('td', { className: 'tick' }, box),
    name,
    cell(el('bdi', {}, queueText(v.queues)), 'queue'),
    cell(whenText(row, now), 'when state-' + rowColumn(row)),
    cell(attempts, 'num attempts'),
    cell(outcome(row, doc, now), 'outcome'));
}

function renderJobs(more) {
  const now = Date.now();
  renderTabs();
  const body = list.rows.map((row) => jobRow(row, now));
  const search = list.search;
  const what = search ? 'no job matches ' + JSON.stringify(search.text)
    : 'no ' + list.tab.label + ' jobs' + (shared.queue ? ' in ' + shared.queue : '');
  const pageBox = el('input', { type: 'checkbox', id: 'select-page', title: 'select every job on this page' });
  pageBox.checked = list.rows.length > 0 && list.rows.every((row) => list.allMatching || list.selected.has(row.id));
  replaceRows($('jobs'), headRow([''], ['job'], ['queue'], ['when'], ['tries', 'num'], ['outcome']), body, what);
  $('jobs').tHead.rows[0].cells[0].append(pageBox);
  Object.assign($('jobs').dataset, { tab: search ? 'search' : list.tab.id, queue: shared.queue, page: list.page });
  const total = search ? list.found.length : tabCount(list.tab);
  const pages = pageCount(total);
  $('page-first').disabled = $('page-newer').disabled = list.page === 0;
  $('page-older').disabled = !more && list.page >= pages - 1;
  $('page-last').disabled = list.page >= pages - 1;
  $('page-number').textContent = 'page ' + (list.page + 1) + ' of ' + pages;
  $('search-summary').textContent = search
    ? total + (list.capped ? ' or more jobs match ' : total === 1 ? ' job matches ' : ' jobs match ') + JSON.stringify(search.text) +
      (shared.queue ? ' in ' + shared.queue : '') + (search.state ? ', ' + search.state : '')
    : '';
  $('search-clear').hidden = !search;
  const path = shared.queue ? shared.queues.get(shared.queue) : null;
  const pause = path ? pauseOf(path) : null;
  $('list-paused').hidden = !pause;
  if (pause) $('list-paused').textContent = 'queue ' + queueText(pause.queue) + ' is paused: no worker claims its jobs';
  renderBulk();
}

function renderTabs() {
  for (const tab of TABS) {
    const button = document.querySelector('#tabs button[data-tab="' + tab.id + '"]');
    button.classList.toggle('current', !list.search && tab === list.tab);
    button.querySelector('.count').textContent = tabCount(tab);
  }
}

// -- wiring -------------------------------------------------------------------------------

function search(text) {
  if (!text) return;
  list.search = parseSearch(text, $('search-state').value);
  list.page = 0;
  clearSelection();
  refreshJobs().then(() => {
    if (list.search && list.search.field === null && list.found.some((row) => row.id === text)) showJob(text);
  }).catch(showListError);
}

function endSearch() {
  list.search = null;
  $('search').reset();
  openList();
}

function startJobs() {
  $('tabs').replaceChildren(...TABS.map((tab) => el('button', {
    type: 'button', data: { tab: tab.id }, className: tab === list.tab ? 'current' : '',
  }, tab.label, ' ', el('span', { className: 'count' }))));
  $('search-state').append(...TABS.map((tab) => el('option', { value: tab.column }, tab.label)));
  $('tabs').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-tab]');
    if (!button) return;
    list.tab = TABS.find((tab) => tab.id === button.dataset.tab);
    list.search = null;
    openList();
  });
  $('page-first').addEventListener('click', () => goToPage('first'));
  $('page-newer').addEventListener('click', () => goToPage('newer'));
  $('page-older').addEventListener('click', () => goToPage('older'));
  $('page-last').addEventListener('click', () => goToPage('last'));
  $('jobs').addEventListener('click', (event) => {
    const open = event.target.closest('a.open');
    if (open) {
      event.preventDefault();
      showJob(open.dataset.id).catch(() => {});
    }
  });
  $('search').addEventListener('submit', (event) => {
    event.preventDefault();
    search(event.target.elements.namedItem('q').value.trim());
  });
  $('search-state').addEventListener('change', () => {
    if (list.search) search(list.search.text);
  });
  $('search-clear').addEventListener('click', (event) => {
    event.preventDefault();
    endSearch();
  });
  startBulk();
}
