function (newDoc, oldDoc, userCtx, secObj) {
  // The queue's rules, enforced by CouchDB on every write: handlers,
  // _bulk_docs, Fauxton edits alike. Every refusal says what is wrong.
  var job = require('lib/job');
  var schedule = require('lib/schedule');
  var roles = (userCtx && Array.isArray(userCtx.roles)) ? userCtx.roles : [];
  function has(role) { return roles.indexOf(role) >= 0; }
  function deny(reason) { throw { forbidden: reason }; }

  if (newDoc._id.indexOf('_design/') === 0) return;  // only server/db admins reach here

  var secAdmins = (secObj && secObj.admins) || {};
  var isAdmin = has('_admin') || has('queshot_admin') ||
    (Array.isArray(secAdmins.roles) && roles.some(function (r) { return secAdmins.roles.indexOf(r) >= 0; })) ||
    (Array.isArray(secAdmins.names) && userCtx && secAdmins.names.indexOf(userCtx.name) >= 0);
  var isWorker = isAdmin || has('queshot_worker');
  var isProducer = isWorker || has('queshot_producer');
  if (!isProducer) {
    throw { unauthorized: 'queshot: writing to this queue needs the role queshot_producer, queshot_worker or queshot_admin' };
  }

  try {
    var old = (oldDoc && !oldDoc._deleted) ? oldDoc : null;
    if (newDoc._deleted) {
      if (isAdmin || !old) return;
      if (!isWorker) deny('queshot: only workers and queue admins may delete jobs');
      if (old.type === job.WORKER_TYPE) return;
      if (schedule.isSchedule(old)) deny('queshot: only a queue admin may remove a schedule');
      // autoremove of completed jobs; the loser of a claim conflict deleting its branch
      if (old.state === 'complete' || old.state === 'active') return;
      deny("queshot: only a queue admin may delete a job that is '" + old.state + "'");
    }

    if (newDoc.type === job.WORKER_TYPE) {
      if (!isWorker) deny('queshot: only workers may write worker status documents');
      if (old && job.isJob(old)) deny('queshot: a job cannot become a worker status document');
      if (typeof newDoc.name !== 'string' || !newDoc.name) deny("queshot: a worker status document needs a 'name'");
      if (!job.isNumber(newDoc.last_seen)) deny("queshot: a worker status document needs 'last_seen' (epoch ms)");
      return;
    }

    if (schedule.isSchedule(newDoc)) {
      if (!isAdmin) deny('queshot: only a queue admin may write schedules');
      if (old && !schedule.isSchedule(old)) deny('queshot: a document that is not a schedule cannot become one');
      var wrong = schedule.problem(newDoc);
      if (wrong) deny('queshot: invalid schedule: ' + wrong);
      return;
    }
    if (old && schedule.isSchedule(old)) deny('queshot: a schedule cannot become another kind of document');

    if (!job.isJob(newDoc)) {
      deny("queshot: this database holds jobs: a document needs 'queues' and 'state' " +
        "(or type '" + job.WORKER_TYPE + "' for a worker status document, '" +
        schedule.SCHEDULE_TYPE + "' for a schedule)");
    }
    // An illegal move is said before what the new state would need: a human
    // who sets "state": "active" by hand is told that move is not theirs.
    var earlyMove = isWorker && old && job.isJob(old) && job.STATES.indexOf(newDoc.state) >= 0 &&
      job.moveProblem(old.state, newDoc.state, isAdmin);
    if (earlyMove) deny('queshot: ' + earlyMove);
    var problem = job.problem(newDoc) || schedule.slotProblem(newDoc);
    if (problem) deny('queshot: invalid job: ' + problem);

    if (!old) {
      if (newDoc.state !== 'inactive' && newDoc.state !== 'blocked' && !isAdmin) {
        deny("queshot: a new job must be 'inactive' (or 'blocked', waiting for other jobs)");
      }
      return;
    }
    if (!job.isJob(old)) deny('queshot: a document that is not a job cannot become one');
    if (!isWorker) deny('queshot: producers may create jobs but not change them');
    var move = job.moveProblem(old.state, newDoc.state, isAdmin) ||
      (isAdmin ? null : job.cancelProblem(old, newDoc));
    if (move) deny('queshot: ' + move);
    var pause = old.state === 'inactive' && newDoc.state === 'active' ? job.pauseOf(this, newDoc) : null;
    if (pause) deny('queshot: ' + job.pausedReason(pause) + ': its jobs are not claimed until it is resumed');
    if (old.state === 'active' && newDoc.state === 'active' && old.worker_id !== newDoc.worker_id && !isAdmin) {
      deny('queshot: a running job stays with the worker holding it (' + old.worker_id + ')');
    }
    if (!isAdmin) {
      ['queues', 'priority', 'created_at', 'data'].forEach(function (field) {
        if (JSON.stringify(old[field]) !== JSON.stringify(newDoc[field])) {
          deny("queshot: only a queue admin may change '" + field + "' of a job");
        }
      });
    }
  } catch (e) {
    if (e && (e.forbidden || e.unauthorized)) throw e;
    throw { forbidden: 'queshot: validation failed unexpectedly: ' + e };
  }
}
