function (newDoc, oldDoc, userCtx, secObj) {
  // The queue's rules, enforced by CouchDB on every write: handlers,
  // _bulk_docs, Fauxton edits alike. Every refusal says what is wrong; one
  // about a job's own content starts "queshot: invalid job: " (a worker
  // refused a claim for that reason marks the job unclaimable).
  var job = require('lib/job');
  var schedule = require('lib/schedule');
  var retention = require('lib/retention');
  var limits = require('lib/limits');
  var history = require('lib/history');
  var roles = (userCtx && Array.isArray(userCtx.roles)) ? userCtx.roles : [];
  var name = (userCtx && typeof userCtx.name === 'string') ? userCtx.name : null;
  function has(role) { return roles.indexOf(role) >= 0; }
  function deny(reason) { throw { forbidden: reason }; }

  if (newDoc._id.indexOf('_design/') === 0) return;  // only server/db admins reach here

  var secAdmins = (secObj && secObj.admins) || {};
  var isAdmin = has('_admin') || has('queshot_admin') ||
    (Array.isArray(secAdmins.roles) && roles.some(function (r) { return secAdmins.roles.indexOf(r) >= 0; })) ||
    (Array.isArray(secAdmins.names) && name !== null && secAdmins.names.indexOf(name) >= 0);
  var isWorker = isAdmin || has('queshot_worker');
  var isProducer = isWorker || has('queshot_producer');
  if (!isProducer) {
    throw { unauthorized: 'queshot: writing to this queue needs the role queshot_producer, queshot_worker or queshot_admin' };
  }

  try {
    var old = (oldDoc && !oldDoc._deleted) ? oldDoc : null;
    var limitRule = limits.check(newDoc, old, name, isAdmin, isWorker, job.now());
    if (limitRule !== undefined) {  // a limit or a token: lib/limits.js
      if (limitRule) deny('queshot: ' + limitRule);
      var tooBig = newDoc._deleted ? null : job.sizeProblem(newDoc, old, false, false);
      if (tooBig) deny('queshot: ' + tooBig);
      return;
    }
    if (newDoc._deleted) {
      if (isAdmin || !old) return;
      if (!isWorker) deny('queshot: only workers and queue admins may delete jobs');
      if (old.type === job.WORKER_TYPE) {
        if (old.user !== name) deny("queshot: a worker account deletes only its own status documents (this one is " + JSON.stringify(old.user === undefined ? null : old.user) + "'s)");
        return;
      }
      if (schedule.isSchedule(old)) deny('queshot: only a queue admin may remove a schedule');
      if (retention.isRetention(old)) deny('queshot: only a queue admin may remove a retention rule');
      if (history.isHistory(old)) {
        if (old.user !== name && !history.expired(old, job.now())) {
          deny("queshot: a worker account deletes only its own history documents, or any past keeping");
        }
        return;
      }
      var undeletable = job.workerDeleteProblem(old, name);
      if (undeletable) deny('queshot: ' + undeletable);
      return;
    }

    if (newDoc.type === job.WORKER_TYPE) {
      if (!isWorker) deny('queshot: only workers may write worker status documents');
      if (old && job.isJob(old)) deny('queshot: a job cannot become a worker status document');
      var badStatus = job.sizeProblem(newDoc, old, false, false);
      if (badStatus) deny('queshot: invalid worker status document: ' + badStatus);
      if (typeof newDoc.name !== 'string' || !newDoc.name) deny("queshot: a worker status document needs a 'name'");
      if (!job.isNumber(newDoc.last_seen) || newDoc.last_seen < 0 ||
          newDoc.last_seen > job.now() + job.MAX_LAST_SEEN_AHEAD_MS) {
        deny("queshot: a worker status document needs 'last_seen': when it was written (epoch ms), " +
          'at most ' + job.MAX_LAST_SEEN_AHEAD_MS + " ms ahead of the server's clock");
      }
      if (!isAdmin && newDoc.user !== name) {
        deny("queshot: a worker status document names the account that writes it: 'user' " + JSON.stringify(name));
      }
      if (!isAdmin && old && old.user !== name) {
        deny("queshot: a worker account writes only its own status documents (this one is " + JSON.stringify(old.user === undefined ? null : old.user) + "'s)");
      }
      return;
    }

    if (history.isHistory(newDoc)) {
      if (!isWorker) deny('queshot: only workers write history documents');
      if (old && !history.isHistory(old)) deny('queshot: a document that is not a history document cannot become one');
      var badHistory = job.sizeProblem(newDoc, old, false, false) || history.problem(newDoc, job.now());
      if (badHistory) deny('queshot: invalid history document: ' + badHistory);
      if (!isAdmin && (newDoc.user !== name || (old && old.user !== name))) {
        deny("queshot: a worker account writes only its own history documents ('user' " + JSON.stringify(name) + ')');
      }
      var shrunk = !isAdmin && old ? history.shrinkProblem(old, newDoc) : null;
      if (shrunk) deny('queshot: ' + shrunk);
      return;
    }
    if (old && history.isHistory(old)) deny('queshot: a history document cannot become another kind of document');
    if (schedule.isSchedule(newDoc)) {
      if (!isAdmin) deny('queshot: only a queue admin may write schedules');
      if (old && !schedule.isSchedule(old)) deny('queshot: a document that is not a schedule cannot become one');
      var wrong = job.sizeProblem(newDoc, old, false, false) || schedule.problem(newDoc);
      if (wrong) deny('queshot: invalid schedule: ' + wrong);
      return;
    }
    if (old && schedule.isSchedule(old)) deny('queshot: a schedule cannot become another kind of document');
    if (retention.isRetention(newDoc)) {
      if (!isAdmin) deny('queshot: only a queue admin may write retention rules');
      if (old && !retention.isRetention(old)) deny('queshot: a document that is not a retention rule cannot become one');
      var badRule = job.sizeProblem(newDoc, old, false, false) || retention.problem(newDoc);
      if (badRule) deny('queshot: invalid retention rule: ' + badRule);
      return;
    }
    if (old && retention.isRetention(old)) deny('queshot: a retention rule cannot become another kind of document');

    if (!job.isJob(newDoc)) {
      deny("queshot: this database holds jobs: a document needs 'queues' and 'state' " +
        "(or type '" + job.WORKER_TYPE + "' for a worker status document, '" +
        schedule.SCHEDULE_TYPE + "' for a schedule)");
    }
    var oldJob = old && job.isJob(old) ? old : null;
    // a worker's one inactive>failed: it may add an error and a log line to a
    // document already over the size bound
    var unclaimable = oldJob !== null && job.isUnclaimable(oldJob, newDoc);
    var placed = oldJob !== null && job.isArrival(oldJob, newDoc);  // a worker's one inactive>inactive
    // An illegal move is said before what the new state would need: a human
    // who sets "state": "active" by hand is told that move is not theirs.
    var earlyMove = isWorker && oldJob && job.STATES.indexOf(newDoc.state) >= 0 &&
      job.moveProblem(oldJob.state, newDoc.state, isAdmin || unclaimable || placed);
    if (earlyMove) deny('queshot: ' + earlyMove);
    var problem = job.sizeProblem(newDoc, oldJob, !old, unclaimable) || job.problem(newDoc, oldJob);
    if (problem) deny('queshot: invalid job: ' + problem);

    if (!old) {
      if (newDoc.state !== 'inactive' && newDoc.state !== 'blocked' && !isAdmin) {
        deny("queshot: a new job must be 'inactive' (or 'blocked', waiting for other jobs)");
      }
      var owned = require('lib/origin').problem(newDoc, name, isAdmin) ||
        (isAdmin ? null : job.serverOwnedProblem(newDoc));
      if (owned) deny('queshot: invalid job: ' + owned);
      if (job.isSlotJob(newDoc) && !isWorker) {
        deny("queshot: only a scheduler (a worker or queue admin account) creates a schedule's slot jobs");
      }
      return;
    }
    if (!oldJob) deny('queshot: a document that is not a job cannot become one');
    if (!isWorker) deny('queshot: producers may create jobs but not change them');
    var move = job.moveProblem(old.state, newDoc.state, isAdmin || unclaimable || placed) ||
      (isAdmin ? null : job.cancelProblem(old, newDoc));
    if (move) deny('queshot: ' + move);
    var pause = old.state === 'inactive' && newDoc.state === 'active' ? job.pauseOf(this, newDoc) : null;
    if (pause) deny('queshot: ' + job.pausedReason(pause) + ': its jobs are not claimed until it is resumed');
    if (old.state === 'active' && newDoc.state === 'active' && old.worker_id !== newDoc.worker_id && !isAdmin) {
      deny('queshot: a running job stays with the worker holding it (' + old.worker_id + ')');
    }
    if (!isAdmin) {
      job.CREATION_FIELDS.forEach(function (field) {
        if (JSON.stringify(old[field]) !== JSON.stringify(newDoc[field])) {
          deny("queshot: only a queue admin may change '" + field + "' of a job");
        }
      });
      var notTheirs = job.workerWriteProblem(old, newDoc, name, job.now());
      if (notTheirs) deny('queshot: ' + notTheirs);
    }
  } catch (e) {
    if (e && (e.forbidden || e.unauthorized)) throw e;
    // only a document no rule foresaw gets here: the job's content, not the writer
    throw { forbidden: 'queshot: invalid job: the rules could not check this document (' + job.truncated(e, 200) + ')' };
  }
}
