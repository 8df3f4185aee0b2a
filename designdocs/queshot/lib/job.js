// The rules shared by validate_doc_update and the update handlers
// (require('lib/job')): the job schema, legal moves, and what handlers do.
// Every property access is guarded: Fauxton lets a human write any shape.

{% include '_partials/model.js' %}
{% include '_partials/bounds.js' %}

exports.STATES = STATES;
exports.FINISHED_STATES = {{ finished_states|tojson }};
// What people read for a stored state (waiting for 'inactive', running for
// 'active'): the one vocabulary of the CLI and the dashboard, in refusals too.
var SHOWN_AS = {{ stored_state_shown_as|tojson }};
function shownState(state) {
  return SHOWN_AS.hasOwnProperty(state) ? SHOWN_AS[state] : String(state);
}
exports.shownState = shownState;
exports.WORKER_TYPE = WORKER_TYPE;
exports.DEFAULT_LEASE_SECONDS = {{ lease_seconds }};
exports.DEFAULT_MAX_STALLS = {{ max_stalls }};
exports.DEFAULT_BACKOFF_SECONDS = {{ backoff_seconds }};
exports.MAX_BACKOFF_SECONDS = {{ max_backoff_seconds }};
exports.MAX_LOG_LINES = {{ max_log_lines }};
exports.MAX_KEPT_ERRORS = {{ max_kept_errors }};
exports.PAUSE_FIELD = {{ pause_field|tojson }};
// Fields a job is created with that no handler changes: only a queue admin may.
exports.CREATION_FIELDS = {{ creation_fields|tojson }};
// How far ahead of the server's clock a worker status document's last_seen may be.
exports.MAX_LAST_SEEN_AHEAD_MS = {{ max_last_seen_ahead_ms }};
var SLOT_PREFIX = {{ slot_job_prefix|tojson }};
var SCHEDULE_PREFIX = {{ schedule_doc_prefix|tojson }};

function isIdList(x) {
  if (!Array.isArray(x)) return false;
  for (var i = 0; i < x.length; i++) {
    if (typeof x[i] !== 'string' || !x[i]) return false;
  }
  return true;
}

function logLineProblem(line) {
  var msg = typeof line === 'string' ? line : isObject(line) ? line.msg : null;
  if (typeof msg !== 'string' || (typeof line !== 'string' && !isEpochMs(line.at))) {
    return "every 'log' entry must be a string or {at: <epoch ms>, msg: <string>}";
  }
  if (msg.length > MAX_LOG_MSG_CHARS) return 'a log line has at most ' + MAX_LOG_MSG_CHARS + ' characters';
  return null;
}

function errorProblem(error) {
  if (!isObject(error) || typeof error.message !== 'string') return "an object with a string 'message'";
  if (error.message.length > MAX_ERROR_MESSAGE_CHARS) {
    return 'an error whose message has at most ' + MAX_ERROR_MESSAGE_CHARS + ' characters';
  }
  if (error.traceback !== undefined && error.traceback !== null &&
      (typeof error.traceback !== 'string' || error.traceback.length > MAX_TRACEBACK_CHARS)) {
    return 'an error whose traceback is null or a string of at most ' + MAX_TRACEBACK_CHARS + ' characters';
  }
  if (error.at !== undefined && error.at !== null && !isEpochMs(error.at)) {
    return "an error whose 'at' is a time in epoch milliseconds";
  }
  return null;
}

// What is wrong with the entries of `list` (log lines, errors) that `oldList`
// did not hold already, or null: a stored entry from before a rule stays.
function newEntriesProblem(list, oldList, entryProblem) {
  var kept = {};
  if (Array.isArray(oldList)) {
    for (var i = 0; i < oldList.length; i++) kept[JSON.stringify(oldList[i])] = true;
  }
  for (var j = 0; j < list.length; j++) {
    if (kept[JSON.stringify(list[j])]) continue;
    var p = entryProblem(list[j]);
    if (p) return p;
  }
  return null;
}

// A slot job's id: made of its schedule's name and the slot's UTC time, as
// queshot/schedules.py's Schedule.job_id makes it; a "run now" job's `slot`
// is the request's time and its id ends in now-<that time in epoch ms>
// (Schedule.run_now_job_id).
function slotJobId(schedule, slot) {
  var stamp = new Date(slot).toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
  return SLOT_PREFIX + schedule.slice(SCHEDULE_PREFIX.length) + ':' + stamp;
}

function runNowJobId(schedule, requested) {
  return SLOT_PREFIX + schedule.slice(SCHEDULE_PREFIX.length) + ':now-' + requested;
}

function isSlotJob(doc) {
  return doc._id.indexOf(SLOT_PREFIX) === 0 || doc.schedule !== undefined || doc.slot !== undefined;
}

// What is wrong with a slot job's marks and id, or null.
function slotProblem(doc) {
  if (!isSlotJob(doc)) return null;
  if (typeof doc.schedule !== 'string' || doc.schedule.indexOf(SCHEDULE_PREFIX) !== 0) {
    return "a schedule's job needs 'schedule': the id of the schedule that made it ('" + SCHEDULE_PREFIX + "<name>')";
  }
  if (numberProblem('slot', doc.slot)) return numberProblem('slot', doc.slot);
  var id = slotJobId(doc.schedule, doc.slot);
  if (doc._id !== id && doc._id !== runNowJobId(doc.schedule, doc.slot)) {
    return "a schedule's job of that slot has the id " + JSON.stringify(id) +
      ' (or ' + JSON.stringify(runNowJobId(doc.schedule, doc.slot)) + ', run now)';
  }
  return null;
}

// The job schema: what is wrong with doc, or null. With `old` (the stored
// revision), a field the write leaves as it was is not checked again, so that
// a job stored before a rule still moves (a worker can fail it as unclaimable).
function problem(doc, old) {
  function checked(field) {
    return doc[field] !== undefined && doc[field] !== null && !(old && sameJSON(old[field], doc[field]));
  }
  function optional(field, test, what) {
    return checked(field) && !test(doc[field]) ? "'" + field + "' must be " + what : null;
  }
  if (doc._id.charAt(0) === '_') return "an id starting with '_' is CouchDB's, not a job's";
  if (!(old && sameJSON(old.queues, doc.queues))) {
    var q = queuePathProblem(doc.queues);
    if (q) return "'queues': " + q;
  }
  if (STATES.indexOf(doc.state) < 0) {
    return "'state' must be one of " + STATES.join(', ') + ' (got ' + truncated(JSON.stringify(doc.state), 100) + ')';
  }
  if (!isNumber(doc.created_at) && !(old && sameJSON(old.created_at, doc.created_at))) {
    return "'created_at' must be a number (epoch milliseconds)";
  }
  if (optional('worker_id', function (x) { return typeof x === 'string'; }, 'a string or null')) {
    return "'worker_id' must be a string or null";
  }
  if (doc.state === 'active') {
    if (typeof doc.worker_id !== 'string' || !doc.worker_id) {
      return "an 'active' job needs the 'worker_id' of the worker holding it";
    }
    if (!isNumber(doc.lease_expires_at)) return "an 'active' job needs 'lease_expires_at'";
  }
  for (var field in NUMBER_BOUNDS) {
    if (checked(field) && numberProblem(field, doc[field])) return numberProblem(field, doc[field]);
  }
  var p = optional('task', function (x) { return typeof x === 'string' && x.length > 0; },
      'a non-empty string (a task name or "package.module:function")') ||
    optional('args', Array.isArray, 'an array') ||
    optional('kwargs', isObject, 'an object') ||
    optional('limit_key', function (x) { return typeof x === 'string' && x.length > 0 && x.length <= {{ max_limit_key_chars }}; },
      'a non-empty string of at most {{ max_limit_key_chars }} characters (the key its limits count by)') ||
    optional('depends_on', isIdList, 'an array of job ids') ||
    optional('waiting_for', isIdList, 'an array of job ids') ||
    optional('on_dependency_failure', function (x) { return x === 'fail' || x === 'run'; },
      "'fail' or 'run'") ||
    optional('dependency_results', isObject, 'an object (job id -> result)') ||
    optional('log', Array.isArray, 'an array') ||
    optional('errors', Array.isArray, 'an array') ||
    (checked('error') && errorProblem(doc.error) ? "'error' must be " + errorProblem(doc.error) : null) ||
    (!old || checked('schedule') || checked('slot') ? slotProblem(doc) : null);
  if (p) return p;
  var waits = Array.isArray(doc.waiting_for) && doc.waiting_for.length > 0;
  if (doc.state === 'blocked' && !waits) {
    return "a 'blocked' job needs 'waiting_for': the ids of the jobs it waits for";
  }
  if (waits && doc.state === 'inactive') {
    return "a job with 'waiting_for' is 'blocked' until they complete, not 'inactive'";
  }
  if (checked('log')) {
    p = newEntriesProblem(doc.log, old && old.log, logLineProblem);
    if (p) return p;
  }
  if (checked('errors')) {
    p = newEntriesProblem(doc.errors, old && old.errors, errorProblem);
    if (p) return "every entry of 'errors' must be " + p;
  }
  return null;
}

// The fields only the server writes (claims, outcomes, cancels, dependency
// results): a new job written by anyone but a queue admin has none of them,
// so that a producer cannot make a job look run, failed or held.
var SERVER_OWNED = {{ server_owned_fields|tojson }};  // context.json: the job schema names them too

function serverOwnedProblem(doc) {
  var owned = [];
  for (var i = 0; i < SERVER_OWNED.length; i++) {
    var value = doc[SERVER_OWNED[i]];
    if (value !== undefined && value !== null) owned.push(SERVER_OWNED[i]);
  }
  if (isNumber(doc.attempts) && doc.attempts > 0) owned.push('attempts > 0');
  if (isNumber(doc.stalls) && doc.stalls > 0) owned.push('stalls > 0');
  if (Array.isArray(doc.errors) && doc.errors.length > 0) owned.push('errors');
  if (Array.isArray(doc.log) && doc.log.length > 0) owned.push('log lines');
  if (!owned.length) return null;
  return 'a new job cannot carry what only the server writes (' + owned.join(', ') +
    '): only a queue admin may create a job with it';
}

// Moves a worker may make (what the update handlers do for it), and the
// further moves only a queue admin may make: cancel, requeue, and editing a
// job (Fauxton). A worker's `unclaimable` is the one inactive>failed it makes.
var WORKER_MOVES = {
  'inactive>active': true,
  'active>active': true, 'active>inactive': true, 'active>complete': true, 'active>failed': true,
  'active>cancelled': true,
  'blocked>blocked': true, 'blocked>inactive': true, 'blocked>failed': true
};
var ADMIN_MOVES = {
  'failed>inactive': true, 'complete>inactive': true, 'cancelled>inactive': true,
  'inactive>inactive': true, 'inactive>cancelled': true, 'blocked>cancelled': true,
  'inactive>failed': true, 'failed>failed': true, 'complete>complete': true,
  'cancelled>cancelled': true
};

function moveProblem(from, to, isAdmin) {
  var move = from + '>' + to;
  if (WORKER_MOVES[move] || (isAdmin && ADMIN_MOVES[move])) return null;
  if (ADMIN_MOVES[move] && from === to) return "only a queue admin may edit a job that is '" + from + "'";
  if (ADMIN_MOVES[move]) return "only a queue admin may move a job from '" + from + "' to '" + to + "'";
  return "a job cannot move from '" + from + "' to '" + to + "'";
}

// What a write by anyone but a queue admin may not do to a cancel: drop the
// request, or put a job that was asked to stop back to waiting.
function cancelProblem(old, doc) {
  if (!isNumber(old.cancel_requested_at) || old.state !== 'active') return null;
  if (doc.state === 'active' && doc.cancel_requested_at !== old.cancel_requested_at) {
    return 'a running job asked to cancel keeps its cancel_requested_at';
  }
  if (doc.state === 'inactive') return 'a job asked to cancel cannot wait again';
  return null;
}

// -- what a worker account may write ---------------------------------------------
// A worker account (not a queue admin) writes only the jobs it holds, each
// change the one a handler makes. `name` is the writer's CouchDB user name:
// claims are bound to it (`worker_user`), and every later move of a held job
// must come from it. Processes sharing one account are one party.

function changedFields(old, doc) {
  var fields = [];
  var seen = {};
  [doc, old].forEach(function (side) {
    for (var field in side) {
      if (seen[field] || field === '_rev' || field === '_revisions') continue;
      seen[field] = true;
      if (!sameJSON(old[field], doc[field])) fields.push(field);
    }
  });
  return fields;
}

function changesOnly(old, doc, allowed, what) {
  var changed = changedFields(old, doc);
  for (var i = 0; i < changed.length; i++) {
    if (allowed.indexOf(changed[i]) < 0) {
      return what + " changes only " + allowed.join(', ') + " (not '" + changed[i] + "')";
    }
  }
  return null;
}

function count(x) {
  return isNumber(x) ? x : 0;
}

// The fields each kind of worker write may change (see the handlers).
var CLAIM_FIELDS = ['state', 'worker_id', 'worker_user', 'claimed_at', 'lease_expires_at', 'attempts',
  'run_at', 'stalls', 'progress', 'failed_at', 'completed_at', 'cancelled_at', 'cancel_requested_at',
  'error', 'waiting_for', 'log'];
var HELD_FIELDS = ['state', 'worker_id', 'lease_expires_at', 'progress', 'log', 'completed_at', 'result',
  'error', 'errors', 'run_at', 'failed_at', 'cancelled_at', 'attempts'];
var EXPIRE_FIELDS = ['state', 'worker_id', 'lease_expires_at', 'stalls', 'attempts', 'log', 'error',
  'errors', 'run_at', 'failed_at', 'cancelled_at'];
var UNCLAIMABLE_FIELDS = ['state', 'failed_at', 'error', 'errors', 'log'];
var RESOLVE_FIELDS = ['state', 'waiting_for', 'dependency_results', 'log', 'error', 'failed_at'];

// Whether a write is a worker's `unclaimable`: a waiting job failed because it
// cannot be claimed as it is stored.
function isUnclaimable(old, doc) {
  return old.state === 'inactive' && doc.state === 'failed' && isObject(doc.error) &&
    doc.error.type === 'Unclaimable';
}

function claimProblem(old, doc, name) {
  if (doc.worker_user !== name) return "a claim names the account that makes it: 'worker_user' " + JSON.stringify(name);
  var fresh = requeuedByHand(old);
  if (doc.attempts !== count(old.attempts) + 1 && !(fresh && doc.attempts === 1)) {
    return "a claim counts one attempt: 'attempts' " + (count(old.attempts) + 1) + (fresh ? ' (or 1: a fresh start)' : '');
  }
  if (!sameJSON(old.stalls, doc.stalls) && !(fresh && doc.stalls === 0)) return "a claim leaves 'stalls' as it is";
  return changesOnly(old, doc, CLAIM_FIELDS, 'a claim');
}

// A held job's own moves (heartbeat, log, progress, complete, fail, release):
// the attempt is given back only when the job waits again (release).
function heldMoveProblem(old, doc) {
  var givenBack = doc.state === 'inactive' || doc.state === 'cancelled';
  if (!sameJSON(old.attempts, doc.attempts) && !(givenBack && doc.attempts === old.attempts - 1)) {
    return "only a claim counts an attempt, and only a release gives one back: 'attempts' stays " + old.attempts;
  }
  return changesOnly(old, doc, HELD_FIELDS, "a worker's write of the job it holds");
}

// What `expire` writes: the job taken back (waiting, failed or cancelled), a
// stall counted or an attempt failed - only once its deadline has passed.
function expireProblem(old, doc, at) {
  if (at <= deadline(old)) return 'its lease runs for ' + (deadline(old) - at) + ' ms more';
  if (doc.state === 'active' || doc.state === 'complete' || doc.worker_id !== null) {
    return 'taking back a job leaves it waiting, failed or cancelled, held by nobody';
  }
  if (!sameJSON(old.stalls, doc.stalls) && doc.stalls !== count(old.stalls) + 1) return 'a stall counts one';
  if (!sameJSON(old.attempts, doc.attempts) && doc.attempts !== old.attempts - 1) {
    return 'a stall gives back the one attempt it used';
  }
  return changesOnly(old, doc, EXPIRE_FIELDS, 'taking back a job');
}

// What `resolve` writes: the validator cannot read the finished job, so it
// bounds the write instead - only ids the job waits for leave waiting_for, each
// gaining one entry in dependency_results (and never again, being gone from
// waiting_for); nothing else but the state, a log line and the failure.
function resolveProblem(old, doc) {
  var wrong = changesOnly(old, doc, RESOLVE_FIELDS, 'telling a blocked job of a finished one');
  if (wrong) return wrong;
  var before = Array.isArray(old.waiting_for) ? old.waiting_for : [];
  var after = Array.isArray(doc.waiting_for) ? doc.waiting_for : [];
  var results = isObject(doc.dependency_results) ? doc.dependency_results : {};
  var oldResults = isObject(old.dependency_results) ? old.dependency_results : {};
  var removed = {};
  for (var i = 0; i < before.length; i++) {
    if (after.indexOf(before[i]) < 0) removed[before[i]] = true;
  }
  for (var j = 0; j < after.length; j++) {
    if (before.indexOf(after[j]) < 0) return "a blocked job's 'waiting_for' only shrinks";
  }
  for (var id in results) {
    if (oldResults.hasOwnProperty(id) ? !sameJSON(oldResults[id], results[id]) : !removed[id]) {
      return "'dependency_results' gains the results of the jobs that left 'waiting_for', and only those";
    }
  }
  for (var gone in removed) {
    if (!results.hasOwnProperty(gone)) return "'dependency_results' gains the result of each job that left 'waiting_for'";
  }
  return null;
}

// -- a waiting job's place in line ------------------------------------------------
// Within a priority, waiting jobs run by their place (dueAt): `created_at`,
// the producer's clock. A wrong clock (a device a day behind or ahead, a
// producer offline for a week) would move its jobs by as much, so a job
// whose `created_at` is more than the tolerance off the server's clock when
// a worker first sees it waiting is placed by the server's time instead:
// `arrived_at`, written by the `arrive` handler (the first worker whose feed
// shows the job calls it; the rest find it placed).
var ARRIVAL_TOLERANCE_MS = {{ arrival_tolerance_ms }};
var ARRIVAL_SLACK_MS = 60000;  // an arrived_at is the writer's now, give or take a cluster's clocks

// Whether a waiting job that has never run has no place yet at `at`: no
// arrived_at, no run_at (which places it), a created_at off by more than the tolerance.
function needsPlace(doc, at) {
  return doc.state === 'inactive' && !isNumber(doc.arrived_at) && !isNumber(doc.run_at) &&
    !isNumber(doc.claimed_at) &&
    !(isNumber(doc.created_at) && Math.abs(at - doc.created_at) <= ARRIVAL_TOLERANCE_MS);
}

function place(doc, at) {
  var why = !isNumber(doc.created_at) ? 'it has no created_at time'
    : 'its created_at was ' + Math.round(Math.abs(at - doc.created_at) / 1000) + ' s ' +
      (doc.created_at < at ? 'behind' : 'ahead of') + " the server's clock";
  doc.arrived_at = at;
  appendLog(doc, 'in line from its arrival: ' + why, at);
  return doc;
}

function isArrival(old, doc) {
  return old.state === 'inactive' && doc.state === 'inactive' && !isNumber(old.arrived_at) &&
    isNumber(doc.arrived_at);
}

// What `arrive` writes: arrived_at (the server's now) and its log line, once,
// and only on a job that needs a place - so no one moves a job in line.
function arrivalProblem(old, doc, at) {
  var wrong = changesOnly(old, doc, ['arrived_at', 'log'], 'placing a job by its arrival');
  if (wrong) return wrong;
  if (Math.abs(doc.arrived_at - at) > ARRIVAL_SLACK_MS) return "'arrived_at' is the server's time of the write";
  if (!needsPlace(old, doc.arrived_at)) {
    return 'a job is placed by its arrival only once, before it first runs, and only when its created_at is ' +
      'more than ' + ARRIVAL_TOLERANCE_MS + " ms off the server's clock";
  }
  return null;
}

// What is wrong with a worker account's write of a job it may not make, or
// null. `at` is the server's clock.
function workerWriteProblem(old, doc, name, at) {
  var why;
  if (old.state === 'inactive') {
    if (doc.state === 'active') why = claimProblem(old, doc, name);
    else if (isUnclaimable(old, doc)) why = changesOnly(old, doc, UNCLAIMABLE_FIELDS, 'marking a job unclaimable');
    else if (isArrival(old, doc)) why = arrivalProblem(old, doc, at);
    else why = 'a worker writes a waiting job only to claim it, place it by its arrival or mark it unclaimable';
  } else if (old.state === 'blocked') {
    why = resolveProblem(old, doc);
  } else if (old.state === 'active') {
    if (typeof name === 'string' && old.worker_user === name) {
      if (!sameJSON(old.worker_user, doc.worker_user)) return "a held job's 'worker_user' stays its claimer's";
      why = heldMoveProblem(old, doc);
    } else {
      why = expireProblem(old, doc, at);
      if (why) {
        why = 'job is held by account ' + JSON.stringify(old.worker_user === undefined ? null : old.worker_user) +
          ' (worker ' + JSON.stringify(old.worker_id) + '): a worker account writes only the jobs it holds, ' +
          'and takes back another\'s only once its deadline has passed (' + why + ')';
      }
    }
  }
  return why || null;
}

// Whether a worker account may delete a job: a finished one (autoremove, a
// queue's retention rule), or a claim branch its own account made (the loser
// of a contested claim).
function workerDeleteProblem(old, name) {
  if (isFinished(old)) return null;
  if (old.state === 'active' && typeof name === 'string' && old.worker_user === name) return null;
  if (old.state === 'active') return 'a worker account deletes only its own claims, not a job held by another';
  return "only a queue admin may delete a job that is '" + old.state + "'";
}

function isFinished(doc) {
  return exports.FINISHED_STATES.indexOf(doc.state) >= 0;
}

function now() {
  return new Date().getTime();
}

// Whether a job belongs to the queue `path` names: its own path starts with
// it (a worker on ["email"] also takes ["email", "welcome"] jobs).
function inQueue(doc, queue) {
  var own = queuePath(doc.queues);
  var path = queuePath(queue);
  if (!own || !path || path.length > own.length) return false;
  for (var i = 0; i < path.length; i++) {
    if (own[i] !== path[i]) return false;
  }
  return true;
}

// Parses an update handler's JSON body; our clients send ids in the body, never
// the query string (pouchdb-server JSON-parses query values).
function body(req) {
  if (!req.body || req.body === 'undefined') return {};
  var parsed = JSON.parse(req.body);
  return isObject(parsed) ? parsed : {};
}

// The log line a requeue or cancel by hand leaves: who (the account) did
// what, and through what (`by` in the handler's body: "dashboard", "cli",
// "python"...; cut to {{ max_origin_chars }} characters).
function actedBy(doc, req, what, at) {
  var name = req.userCtx && typeof req.userCtx.name === 'string' ? req.userCtx.name : null;
  var origin = body(req).by;
  var line = what + ' by ' + (name === null ? 'an admin party' : JSON.stringify(name));
  if (typeof origin === 'string' && origin) line += ' via ' + truncated(origin, {{ max_origin_chars }});
  appendLog(doc, line, at);
}

function reply(code, error, reason) {
  return [null, { code: code, json: { error: error, reason: reason } }];
}

// The checks every handler that acts on a held job shares: returns a refusal
// (an update-handler result) or null when body.worker_id holds doc and, when
// body.rev is given, doc is still at that revision (no blind overwrites).
function notHeld(doc, b) {
  if (!doc) return reply(404, 'not_found', 'no such job');
  if (!isJob(doc)) return reply(400, 'bad_request', 'not a queshot job');
  if (doc.state !== 'active' || doc.worker_id !== b.worker_id) {
    return reply(409, 'not_held', 'job is ' + doc.state + ' and held by ' +
      JSON.stringify(doc.worker_id === undefined ? null : doc.worker_id) +
      ', not by ' + JSON.stringify(b.worker_id === undefined ? null : b.worker_id));
  }
  if (b.rev !== undefined && b.rev !== doc._rev) {
    return reply(409, 'changed', 'job changed since revision ' + b.rev + ' (now ' + doc._rev +
      '): someone else edited it');
  }
  return null;
}

// A claim's or heartbeat's lease, in ms: the job's own lease_seconds, else
// the worker's, else the default, always within the lease bounds (a stored
// 1e306 must not make the lease end at Infinity, which JSON writes as null).
function leaseMs(doc, b) {
  var seconds = exports.DEFAULT_LEASE_SECONDS;
  if (isNumber(doc.lease_seconds) && doc.lease_seconds > 0) seconds = doc.lease_seconds;
  else if (isNumber(b.lease_seconds) && b.lease_seconds > 0) seconds = b.lease_seconds;
  return Math.min(Math.max(seconds, MIN_LEASE_SECONDS), MAX_LEASE_SECONDS) * 1000;
}

function appendLog(doc, msg, at) {
  if (!Array.isArray(doc.log)) doc.log = [];
  doc.log.push({ at: at, msg: truncated(msg, MAX_LOG_MSG_CHARS) });
  if (doc.log.length > exports.MAX_LOG_LINES) doc.log = doc.log.slice(-exports.MAX_LOG_LINES);
}

function addError(doc, err) {
  doc.error = err;
  if (!Array.isArray(doc.errors)) doc.errors = [];
  doc.errors.push(err);
  if (doc.errors.length > exports.MAX_KEPT_ERRORS) doc.errors = doc.errors.slice(-exports.MAX_KEPT_ERRORS);
}

// After a failed attempt: schedule the next one with exponential backoff and
// jitter, or fail the job for good once its attempts are used up.
function failOrRetry(doc, error, at, retry) {
  var attempts = isInteger(doc.attempts) ? doc.attempts : 1;
  var max = isInteger(doc.max_attempts) ? doc.max_attempts : 1;
  addError(doc, {
    message: truncated(error && error.message !== undefined ? error.message : error, MAX_ERROR_MESSAGE_CHARS),
    type: truncated(error && error.type ? error.type : 'Error', MAX_LOG_MSG_CHARS),
    traceback: error && typeof error.traceback === 'string' ? truncated(error.traceback, MAX_TRACEBACK_CHARS) : null,
    attempt: attempts,
    worker_id: doc.worker_id === undefined ? null : doc.worker_id,
    at: at
  });
  doc.worker_id = null;
  doc.lease_expires_at = null;
  if (isNumber(doc.cancel_requested_at)) {
    cancel(doc, at);
  } else if (retry !== false && attempts < max) {
    var base = isNumber(doc.backoff_seconds) ? Math.max(0, doc.backoff_seconds) : exports.DEFAULT_BACKOFF_SECONDS;
    var delay = Math.min(base * Math.pow(2, Math.min(attempts - 1, 30)), exports.MAX_BACKOFF_SECONDS);
    delay = delay * (0.75 + Math.random() * 0.5);
    doc.state = 'inactive';
    doc.run_at = at + Math.round(delay * 1000);
  } else {
    doc.state = 'failed';
    doc.failed_at = at;
  }
  return doc;
}

// A waiting job that no worker can claim as it is stored (the claim is refused
// for the job's own content, or what comes back cannot be read): failed, with
// the reason, by the worker that found it - what the `unclaimable` handler
// does. No more than a claim followed by a fail.
function markUnclaimable(doc, workerId, reason, at) {
  var why = truncated(reason === undefined || reason === null ? 'no reason given' : reason, MAX_ERROR_MESSAGE_CHARS);
  addError(doc, { type: 'Unclaimable', message: why, traceback: null,
    attempt: isNumber(doc.attempts) ? doc.attempts : 0, worker_id: workerId, at: at });
  doc.state = 'failed';
  doc.failed_at = at;
  appendLog(doc, 'worker ' + workerId + ' found it unclaimable: ' + why, at);
  return doc;
}

// A held job back to waiting, its attempt not counted: given back at
// shutdown (release), or taken back from a worker that stopped renewing it.
// A job asked to cancel ends cancelled instead: nobody runs it again.
function giveBack(doc, at) {
  if (isNumber(doc.cancel_requested_at)) return cancel(doc, at);
  doc.state = 'inactive';
  doc.worker_id = null;
  doc.lease_expires_at = null;
  if (isInteger(doc.attempts) && doc.attempts > 0) doc.attempts -= 1;
  return doc;
}

// The end of a job nobody will run: waiting ones at once, running ones once
// their worker stops (or is taken back). The error, if any, stays as it was.
function cancel(doc, at) {
  doc.state = 'cancelled';
  doc.cancelled_at = at;
  doc.worker_id = null;
  doc.lease_expires_at = null;
  doc.run_at = null;
  return doc;
}

// A cancel asked for by someone (`queshot cancel`, the dashboard): what the
// `cancel` handler does. Returns the state the job is now in, or a refusal
// (an update-handler result) for a job that has already finished.
function requestCancel(doc, at) {
  if (doc.state === 'inactive' || doc.state === 'blocked') {
    cancel(doc, at);
    return null;
  }
  if (doc.state === 'active') {
    if (!isNumber(doc.cancel_requested_at)) doc.cancel_requested_at = at;
    return null;
  }
  return reply(409, 'not_cancellable', 'job is ' + shownState(doc.state) + ': too late to cancel');
}

// A running job whose lease ran out: its worker died or hung, which is not the
// job's failure. It waits again without using an attempt, unless it has
// stalled more than max_stalls times (a job that kills its worker).
function stall(doc, at) {
  var stalls = (isInteger(doc.stalls) ? doc.stalls : 0) + 1;
  var max = isInteger(doc.max_stalls) ? doc.max_stalls : exports.DEFAULT_MAX_STALLS;
  var why = 'worker ' + doc.worker_id + ' stopped renewing its lease';
  doc.stalls = stalls;
  if (stalls > max) {
    return failOrRetry(doc, { type: 'Stalled', message: 'stalled ' + stalls + ' times (max_stalls ' +
      max + '): ' + why }, at, false);
  }
  if (isNumber(doc.cancel_requested_at)) {
    appendLog(doc, 'stalled: ' + why + '; it was asked to cancel, so cancelled', at);
    return cancel(doc, at);
  }
  appendLog(doc, 'stalled (' + stalls + ' of ' + max + ' allowed): ' + why + '; waiting again', at);
  return giveBack(doc, at);
}

// A finished job waiting again as if new: every attempt and stall available,
// due now, nothing left of its last run but the history in `errors` (and the
// log). Done by the requeue handler, and by a claim of a job requeued by hand.
function freshStart(doc) {
  doc.state = 'inactive';
  doc.worker_id = null;
  doc.lease_expires_at = null;
  doc.run_at = null;
  doc.attempts = 0;
  doc.stalls = 0;
  doc.progress = 0;
  doc.failed_at = null;
  doc.completed_at = null;
  doc.cancelled_at = null;
  doc.cancel_requested_at = null;
  doc.error = null;
  if (Array.isArray(doc.waiting_for)) doc.waiting_for = [];  // requeued by hand: it waits no more
  return doc;
}

// Whether a waiting job may be claimed at `at` (epoch ms): its run_at, if any, has come.
function isDue(doc, at) {
  return !isNumber(doc.run_at) || doc.run_at <= at;
}

// Whether a running job has run over its timeout at `at` (epoch ms), and the
// error it then fails with.
function timedOut(doc, at) {
  var end = timeoutAt(doc);
  return end !== null && at > end;
}

function timeoutError(doc) {
  return { type: 'TimeoutError', message: 'job ran over its timeout of ' + doc.timeout + ' s' };
}

// -- paused queues -------------------------------------------------------------
// A queue's pause is kept in this design document itself, under PAUSE_FIELD:
// [{queue: path, at, by}]. The claim handler and validate_doc_update see only
// the job being written and the design document (`this`), so that is the one
// place an old worker, or a direct write, cannot get round. `queshot push`
// keeps the field as the server has it.

function pausedQueues(ddoc) {
  var list = isObject(ddoc) ? ddoc[exports.PAUSE_FIELD] : null;
  return Array.isArray(list) ? list : [];
}

// The pause that holds a job back: its queue, or a queue above it, is paused; else null.
function pauseOf(ddoc, doc) {
  var list = pausedQueues(ddoc);
  for (var i = 0; i < list.length; i++) {
    if (isObject(list[i]) && inQueue(doc, list[i].queue)) return list[i];
  }
  return null;
}

function pausedReason(pause) {
  var path = queuePath(pause.queue) || [];
  return 'queue ' + path.join('/') + ' is paused' + (typeof pause.by === 'string' ? ' (by ' + pause.by + ')' : '');
}

// Pause (or resume) the queue `path` in ddoc; whether anything changed.
function setPaused(ddoc, path, paused, at, by) {
  var kept = [];
  var was = false;
  var list = pausedQueues(ddoc);
  for (var i = 0; i < list.length; i++) {
    var own = isObject(list[i]) ? queuePath(list[i].queue) : null;
    if (own && JSON.stringify(own) === JSON.stringify(path)) was = true;
    else kept.push(list[i]);
  }
  if (paused === was) return false;
  if (paused) kept.push({ queue: path, at: at, by: by });
  ddoc[exports.PAUSE_FIELD] = kept;
  return true;
}

// A job this one waits for has finished (`state` complete, failed or
// cancelled, with its `result`): what the `resolve` handler does. A blocked
// job waits for one job less, and is waiting (claimable) once it waits for
// none; a failed or cancelled dependency fails it too, unless it says
// on_dependency_failure 'run'. Anything else (not blocked, not waiting for
// that job) is left as it is: resolving is idempotent. Returns whether the
// job changed.
function resolve(doc, dependency, state, result, at) {
  if (doc.state !== 'blocked' || !Array.isArray(doc.waiting_for)) return false;
  var place = doc.waiting_for.indexOf(dependency);
  if (place < 0) return false;
  if (state !== 'complete' && doc.on_dependency_failure !== 'run') {
    var why = truncated('job ' + dependency + ' it waits for is ' + state, MAX_ERROR_MESSAGE_CHARS);
    appendLog(doc, why, at);
    doc.error = { type: 'DependencyFailed', message: why, traceback: null, attempt: 0, worker_id: null, at: at };
    doc.state = 'failed';
    doc.failed_at = at;
    return true;
  }
  doc.waiting_for.splice(place, 1);
  if (!isObject(doc.dependency_results)) doc.dependency_results = {};
  var value = state === 'complete' && result !== undefined ? result : null;
  if (nestsDeeper(value, MAX_DEPTH - 2)) {  // one level deeper here than in its own job
    appendLog(doc, 'the result of job ' + dependency + ' nests too deep to copy here: read it from that job', at);
    value = null;
  }
  doc.dependency_results[dependency] = value;
  if (doc.waiting_for.length === 0) {
    doc.state = 'inactive';
    appendLog(doc, 'every job it waits for has finished: waiting to run', at);
  }
  return true;
}

exports.resolve = resolve;
exports.markUnclaimable = markUnclaimable;
exports.isUnclaimable = isUnclaimable;
exports.isArrival = isArrival;
exports.needsPlace = needsPlace;
exports.place = place;
exports.serverOwnedProblem = serverOwnedProblem;
exports.workerWriteProblem = workerWriteProblem;
exports.workerDeleteProblem = workerDeleteProblem;
exports.sizeProblem = sizeProblem;
exports.numberProblem = numberProblem;
exports.isSlotJob = isSlotJob;
exports.truncated = truncated;
exports.actedBy = actedBy;
exports.isObject = isObject;
exports.pausedQueues = pausedQueues;
exports.pauseOf = pauseOf;
exports.pausedReason = pausedReason;
exports.setPaused = setPaused;
exports.isNumber = isNumber;
exports.isJob = isJob;
exports.queuePath = queuePath;
exports.dueAt = dueAt;
exports.deadline = deadline;
exports.problem = problem;
exports.moveProblem = moveProblem;
exports.cancelProblem = cancelProblem;
exports.isFinished = isFinished;
exports.cancel = cancel;
exports.requestCancel = requestCancel;
exports.now = now;
exports.inQueue = inQueue;
exports.body = body;
exports.reply = reply;
exports.notHeld = notHeld;
exports.leaseMs = leaseMs;
exports.appendLog = appendLog;
exports.failOrRetry = failOrRetry;
exports.giveBack = giveBack;
exports.stall = stall;
exports.freshStart = freshStart;
exports.requeuedByHand = requeuedByHand;
exports.timedOut = timedOut;
exports.isDue = isDue;
exports.timeoutError = timeoutError;
