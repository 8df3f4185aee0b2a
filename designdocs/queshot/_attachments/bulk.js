// Acting on many jobs: the rows ticked, the whole page, or every job the tab
// or search holds ("all N matching": delete all failed of a queue, empty a
// queue's waiting jobs, cancel all scheduled). The same rules as Fauxton and
// the CLI: requeue and cancel through their update handlers, deletes as
// _bulk_docs writes against the revision listed, each judged by
// validate_doc_update; every refusal is listed with its reason. Sets larger
// than a page ask for the count to be typed.
'use strict';

const BULK_BATCH = 500; // jobs read and deleted per step
const BULK_PARALLEL = 4; // handler calls at once
const TYPED_CONFIRM_OVER = PAGE_SIZE; // larger sets: type the count to go on
const ORIGIN = { by: 'dashboard' }; // the origin the handlers' log line names

// Which action fits which stored state: only those that can succeed are offered.
const ACTIONS = {
  requeue: { verb: 'requeued', fits: (state) => QUESHOT.FINISHED_STATES.includes(state) },
  cancel: { verb: 'cancelled', fits: (state) => ['inactive', 'blocked', 'active'].includes(state) },
  delete: { verb: 'deleted', fits: () => true },
};

function clearSelection() {
  list.selected.clear();
  list.allMatching = false;
}

// The stored states of what is selected.
function selectedStates() {
  if (!list.allMatching) return new Set([...list.selected.values()].map((job) => job.state));
  if (list.search) return new Set(list.found.map((row) => (row.value || {}).state));
  return new Set([list.tab.state]);
}

function selectedCount() {
  if (!list.allMatching) return list.selected.size;
  return list.search ? list.found.length : tabCount(list.tab);
}

function renderBulk() {
  const n = selectedCount();
  const states = selectedStates();
  for (const [name, action] of Object.entries(ACTIONS)) {
    const button = $('bulk-' + name);
    const fitting = [...states].some(action.fits);
    button.disabled = n === 0 || !fitting;
    button.textContent = name[0].toUpperCase() + name.slice(1) + (n ? ' ' + n : '');
    button.title = n && !fitting ? 'no selected job can be ' + action.verb : '';
  }
  $('bulk-selection').textContent = n ? (list.allMatching ? 'all ' : '') + n + ' selected' : 'none selected';
  const total = list.search ? list.found.length : tabCount(list.tab);
  const wholePage = list.rows.length > 0 && list.rows.every((row) => list.selected.has(row.id));
  const offer = $('select-matching');
  offer.hidden = !(list.allMatching || (wholePage && total > list.rows.length));
  offer.textContent = list.allMatching ? 'Select only this page'
    : 'Select all ' + total + ' ' + (list.search ? 'matching' : list.tab.label + (shared.queue ? ' of ' + shared.queue : ''));
}

function tick(row, on) {
  if (on) list.selected.set(row.id, { id: row.id, rev: (row.value || {}).rev, state: (row.value || {}).state });
  else list.selected.delete(row.id);
}

// -- confirming ---------------------------------------------------------------------------

// A few jobs: the browser's confirm. More: type the count, in a dialog of our own.
function confirmMany(text, count) {
  if (count <= TYPED_CONFIRM_OVER) return Promise.resolve(confirm(text));
  const dialog = $('confirm-many');
  $('confirm-text').textContent = text;
  $('confirm-word').textContent = String(count);
  $('confirm-input').value = '';
  $('confirm-go').disabled = true;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'go'), { once: true });
  });
}

// -- doing ---------------------------------------------------------------------------------

// The jobs selected, a batch at a time: the ticked ones, or every job of the
// tab read by key from its start (those acted on leave the range; the next
// batch starts after the last one read, so a refused job is not met again,
// and none is passed over: see readFrom).
async function* batches() {
  if (!list.allMatching) {
    yield [...list.selected.values()];
    return;
  }
  if (list.search) {
    for (let i = 0; i < list.found.length; i += BULK_BATCH) {
      yield list.found.slice(i, i + BULK_BATCH).map((row) => ({ id: row.id, rev: row.value.rev, state: row.value.state }));
    }
    return;
  }
  const { view, forward } = tabRange(list.tab);
  let after = null;
  for (;;) {
    const rows = await readFrom(WATCH_PATH + '/_view/' + view, { ...forward, reduce: false }, after, BULK_BATCH);
    if (!rows.length) return;
    after = rows[rows.length - 1];
    yield rows.map((row) => ({ id: row.id, rev: row.value.rev, state: row.value.state }));
  }
}

function handlerCall(name, id) {
  return request('POST', dbUrl(DDOC_PATH + '/_update/' + name + '/' + encodeURIComponent(id)), ORIGIN);
}

// Through a handler, a few at a time; the refusals with their reasons.
async function throughHandler(name, jobs, progress) {
  const refusals = [];
  let next = 0;
  async function lane() {
    while (next < jobs.length) {
      const job = jobs[next++];
      try {
        await handlerCall(name, job.id);
      } catch (error) {
        refusals.push({ id: job.id, reason: error.message });
      }
      progress(1);
    }
  }
  await Promise.all(Array.from({ length: BULK_PARALLEL }, lane));
  return refusals;
}

async function deleteBatch(jobs, progress) {
  let results;
  try {
    results = await request('POST', dbUrl('_bulk_docs'),
      { docs: jobs.map((j) => ({ _id: j.id, _rev: j.rev, _deleted: true })) });
  } catch (error) {
    progress(jobs.length);
    return jobs.map((j) => ({ id: j.id, reason: error.message }));
  }
  progress(jobs.length);
  return results.filter((r) => r.error).map((r) => ({ id: r.id, reason: r.reason || r.error }));
}

async function act(name) {
  const action = ACTIONS[name];
  const count = selectedCount();
  const where = list.allMatching && !list.search && shared.queue ? ' of ' + shared.queue : '';
  const text = name[0].toUpperCase() + name.slice(1) + ' ' + (list.allMatching ? 'all ' : '') + count +
    (list.allMatching && !list.search ? ' ' + list.tab.label : '') + (count === 1 ? ' job' : ' jobs') + where + '?' +
    (name === 'delete' ? ' This cannot be undone.' : '');
  if (!count || !(await confirmMany(text, count))) return;
  const bar = $('bulk-progress');
  Object.assign(bar, { max: count, value: 0, hidden: false });
  let done = 0;
  const refusals = [];
  const progress = (n) => {
    done += n;
    bar.value = done;
    $('bulk-message').className = 'message ok';
    $('bulk-message').textContent = action.verb + ' ' + (done - refusals.length) + ' of ' + count + '…';
  };
  for await (const jobs of batches()) {
    const fitting = jobs.filter((job) => action.fits(job.state));
    for (const job of jobs) {
      if (!action.fits(job.state)) refusals.push({ id: job.id, reason: 'job is ' + stateLabel(job.state) + ': cannot be ' + action.verb });
    }
    if (fitting.length < jobs.length) progress(jobs.length - fitting.length);
    refusals.push(...(name === 'delete' ? await deleteBatch(fitting, progress) : await throughHandler(name, fitting, progress)));
  }
  bar.hidden = true;
  reportBulk(done - refusals.length, action.verb, refusals);
}

function reportBulk(done, verb, refusals) {
  const message = $('bulk-message');
  message.className = refusals.length ? 'message' : 'message ok';
  message.textContent = verb + ' ' + counted(done, 'job') + (refusals.length ? ', ' + refusals.length + ' refused:' : '');
  $('bulk-refusals').replaceChildren(...refusals.slice(0, 100).map(({ id, reason }) =>
    el('li', { data: { id } }, el('code', {}, id), ': ' + reason)),
  ...(refusals.length > 100 ? [el('li', {}, '… and ' + (refusals.length - 100) + ' more')] : []));
  clearSelection();
  for (const box of document.querySelectorAll('#jobs input[type=checkbox]')) box.checked = false;
  renderBulk();
  scheduleRefresh();
}

function startBulk() {
  $('jobs').addEventListener('change', (event) => {
    if (event.target.id === 'select-page') {
      list.allMatching = false;
      for (const row of list.rows) tick(row, event.target.checked);
      for (const box of document.querySelectorAll('#jobs tbody input[type=checkbox]')) box.checked = event.target.checked;
      renderBulk();
      return;
    }
    const row = list.rows.find((r) => r.id === event.target.dataset.id);
    if (!row) return;
    if (list.allMatching) { // unticking one of "all": back to the page's ticks
      list.allMatching = false;
      for (const r of list.rows) tick(r, true);
    }
    tick(row, event.target.checked);
    $('select-page').checked = list.rows.every((r) => list.selected.has(r.id));
    renderBulk();
  });
  $('select-matching').addEventListener('click', () => {
    list.allMatching = !list.allMatching;
    if (!list.allMatching) for (const row of list.rows) tick(row, true);
    renderBulk();
  });
  $('confirm-input').addEventListener('input', (event) => {
    $('confirm-go').disabled = event.target.value.trim() !== $('confirm-word').textContent;
  });
  for (const name of Object.keys(ACTIONS)) {
    $('bulk-' + name).addEventListener('click', () => act(name).catch((error) => {
      $('bulk-progress').hidden = true;
      showListError(error);
    }));
  }
}
