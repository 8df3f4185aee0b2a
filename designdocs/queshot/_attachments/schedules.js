// The schedules: when each fires, its next run and last slot in its own time
// zone (labelled), its queue, what it runs, and Pause / Resume, which write
// what `queshot schedule pause|resume` writes (schedule_admin.py's
// set_schedule_enabled): `enabled`, and on resume `enabled_at` = now, so the
// slots missed while paused do not fire. Run now (after a confirmation) writes
// what `queshot schedule run` writes (schedule_admin.py's request_run):
// `run_requested_at` = now (past the last request) and `run_requested_by`;
// every scheduler then makes the one job <slot job prefix><name>:now-<that time>.
// validate_doc_update judges the write.
'use strict';

function slotText(ms, s) {
  if (ms === null) return 'unknown (see queshot schedules)';
  const zone = scheduleZone(s);
  const delta = ms - Date.now();
  return clock(ms, zone) + ' (' + (delta > 0 ? 'in ' + age(delta) : age(-delta) + ' ago') + ')';
}

function renderSchedules(rows) {
  const now = Date.now();
  const body = rows.filter((row) => row.doc).map((row) => {
    const s = row.doc;
    const enabled = s.enabled !== false;
    const fires = typeof s.cron === 'string' ? s.cron : 'every ' + shown(s.every) + ' s';
    const what = typeof s.task === 'string' ? s.task : preview(s.data === undefined ? null : s.data, 60);
    const slots = scheduleSlots(s, now);
    const button = el('button', { type: 'button', className: 'schedule-toggle', data: { schedule: row.id, enabled: String(enabled) } },
      enabled ? 'Pause' : 'Resume');
    return el('tr', { className: enabled ? '' : 'paused', data: { schedule: row.id } },
      el('td', {}, el('a', { href: fauxtonUrl(row.id), target: '_blank' }, el('bdi', {}, row.id.slice(SCHEDULE_PREFIX.length)))),
      el('td', {}, el('bdi', {}, fires), typeof s.cron === 'string' ? ' (' + (shown(s.timezone) || QUESHOT.SCHEDULE_TIMEZONE) + ')' : ''),
      el('td', {}, el('bdi', {}, queueText(s.queue))),
      el('td', {}, el('bdi', {}, what)),
      el('td', { className: 'next' }, enabled ? slotText(slots.next, s) : '-'),
      el('td', { className: 'last' }, slotText(slots.last, s)),
      el('td', {}, enabled ? 'enabled' : 'paused'),
      el('td', {}, button, ' ', el('button', { type: 'button', className: 'schedule-run', data: { schedule: row.id } }, 'Run now')));
  });
  replaceRows($('schedules'),
    headRow(['name'], ['fires'], ['queue'], ['runs'], ['next run'], ['last slot'], ['status'], ['']),
    body, 'no schedules');
}

async function setScheduleEnabled(id, enabled) {
  const message = $('schedules-message');
  message.className = 'message';
  message.textContent = '';
  try {
    const doc = await request('GET', docUrl(id));
    if ((doc.enabled !== false) !== enabled) {
      doc.enabled = enabled;
      if (enabled) doc.enabled_at = Date.now();
      await request('PUT', docUrl(id), doc);
    }
  } catch (error) {
    message.textContent = 'not ' + (enabled ? 'resumed' : 'paused') + ': ' + error.message;
    return;
  }
  message.className = 'message ok';
  message.textContent = 'schedule ' + id.slice(SCHEDULE_PREFIX.length) + (enabled ? ' resumed' : ' paused');
  scheduleRefresh();
}

async function requestRun(id) {
  const name = id.slice(SCHEDULE_PREFIX.length);
  if (!confirm('Run schedule ' + name + ' once now? Its job is made by the next scheduler that sees the request.')) return;
  const message = $('schedules-message');
  message.className = 'message';
  message.textContent = '';
  let requested;
  try {
    const doc = await request('GET', docUrl(id));
    const last = typeof doc.run_requested_at === 'number' ? Math.floor(doc.run_requested_at) : -1;
    doc.run_requested_at = Math.max(Date.now(), last + 1);
    const session = await request('GET', ROOT_PATH + '_session');
    const who = session.userCtx && session.userCtx.name;
    if (who) doc.run_requested_by = who; else delete doc.run_requested_by;
    await request('PUT', docUrl(id), doc);
    requested = doc.run_requested_at;
  } catch (error) {
    message.textContent = 'not run: ' + error.message;
    return;
  }
  message.className = 'message ok';
  message.textContent = 'schedule ' + name + ': run now asked (its job id ends in :now-' + requested + ')';
  scheduleRefresh();
}

function startSchedules() {
  $('schedules').addEventListener('click', (event) => {
    const button = event.target.closest('button.schedule-toggle');
    if (button) setScheduleEnabled(button.dataset.schedule, button.dataset.enabled !== 'true');
    const run = event.target.closest('button.schedule-run');
    if (run) requestRun(run.dataset.schedule);
  });
}
