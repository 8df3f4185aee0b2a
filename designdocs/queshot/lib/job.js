// The rules shared by validate_doc_update and the update handlers
// (require('lib/job')): the job schema, legal moves, and what handlers do.
// Every property access is guarded: Fauxton lets a human write any shape.

{% include '_partials/model.js' %}

exports.STATES = STATES;
exports.FINISHED_STATES = {{ finished_states|tojson }};
exports.WORKER_TYPE = WORKER_TYPE;
exports.DEFAULT_LEASE_SECONDS = {{ lease_seconds }};
exports.DEFAULT_MAX_STALLS = {{ max_stalls }};
exports.DEFAULT_BACKOFF_SECONDS = {{ backoff_seconds }};
exports.MAX_BACKOFF_SECONDS = {{ max_backoff_seconds }};
exports.MAX_LOG_LINES = {{ max_log_lines }};
exports.MAX_KEPT_ERRORS = {{ max_kept_errors }};
exports.PAUSE_FIELD = {{ pause_field|tojson }};

function optional(doc, field, test, what) {
  if (doc[field] === undefined || doc[field] === null) return null;
  return test(doc[field]) ? null : "'" + field + "' must be " + what;
}

function isIdList(x) {
  if (!Array.isArray(x)) return false;
  for (var i = 0; i < x.length; i++) {
    if (typeof x[i] !== 'string' || !x[i]) return false;
  }
  return true;
}

function logLineProblem(line) {
  if (typeof line === 'string') return null;
  if (isObject(line) && typeof line.msg === 'string' && isNumber(line.at)) return null;
  return "every 'log' entry must be a string or {at: <epoch ms>, msg: <string>}";
}

// The job schema: returns what is wrong with doc, or null.
function problem(doc) {
  if (!queuePath(doc.queues)) {
    return "'queues' must be a non-empty string or a non-empty array of non-empty strings";
  }
  if (STATES.indexOf(doc.state) < 0) {
    return "'state' must be one of " + STATES.join(', ') + ' (got ' + JSON.stringify(doc.state) + ')';
  }
  if (!isNumber(doc.created_at)) return "'created_at' must be a number (epoch milliseconds)";
  if (doc.worker_id !== undefined && doc.worker_id !== null && typeof doc.worker_id !== 'string') {
    return "'worker_id' must be a string or null";
  }
  if (doc.state === 'active') {
    if (typeof doc.worker_id !== 'string' || !doc.worker_id) {
      return "an 'active' job needs the 'worker_id' of the worker holding it";
    }
    if (!isNumber(doc.lease_expires_at)) return "an 'active' job needs 'lease_expires_at'";
  }
  var p = optional(doc, 'priority', isInteger, 'an integer') ||
    optional(doc, 'progress', function (x) { return isNumber(x) && x >= 0 && x <= 100; },
      'a number from 0 to 100') ||
    optional(doc, 'attempts', function (x) { return isInteger(x) && x >= 0; },
      'a whole number >= 0') ||
    optional(doc, 'max_attempts', function (x) { return isInteger(x) && x >= 1; },
      'a whole number >= 1') ||
    optional(doc, 'stalls', function (x) { return isInteger(x) && x >= 0; },
      'a whole number >= 0') ||
    optional(doc, 'max_stalls', function (x) { return isInteger(x) && x >= 0; },
      'a whole number >= 0') ||
    optional(doc, 'timeout', function (x) { return isNumber(x) && x > 0; },
      'a number of seconds > 0') ||
    optional(doc, 'lease_seconds', function (x) { return isNumber(x) && x > 0; },
      'a number of seconds > 0') ||
    optional(doc, 'run_at', isNumber, 'a number (epoch milliseconds)') ||
    optional(doc, 'claimed_at', isNumber, 'a number (epoch milliseconds)') ||
    optional(doc, 'lease_expires_at', isNumber, 'a number (epoch milliseconds)') ||
    optional(doc, 'completed_at', isNumber, 'a number (epoch milliseconds)') ||
    optional(doc, 'failed_at', isNumber, 'a number (epoch milliseconds)') ||
    optional(doc, 'cancelled_at', isNumber, 'a number (epoch milliseconds)') ||
    optional(doc, 'cancel_requested_at', isNumber, 'a number (epoch milliseconds)') ||
    optional(doc, 'task', function (x) { return typeof x === 'string' && x.length > 0; },
      'a non-empty string (a task name or "package.module:function")') ||
    optional(doc, 'args', Array.isArray, 'an array') ||
    optional(doc, 'kwargs', isObject, 'an object') ||
    optional(doc, 'depends_on', isIdList, 'an array of job ids') ||
    optional(doc, 'waiting_for', isIdList, 'an array of job ids') ||
    optional(doc, 'on_dependency_failure', function (x) { return x === 'fail' || x === 'run'; },
      "'fail' or 'run'") ||
    optional(doc, 'dependency_results', isObject, 'an object (job id -> result)') ||
    optional(doc, 'log', Array.isArray, 'an array') ||
    optional(doc, 'errors', Array.isArray, 'an array') ||
    optional(doc, 'error', function (x) { return isObject(x) && typeof x.message === 'string'; },
      "an object with a string 'message'");
  if (p) return p;
  var waits = Array.isArray(doc.waiting_for) && doc.waiting_for.length > 0;
  if (doc.state === 'blocked' && !waits) {
    return "a 'blocked' job needs 'waiting_for': the ids of the jobs it waits for";
  }
  if (waits && doc.state === 'inactive') {
    return "a job with 'waiting_for' is 'blocked' until they complete, not 'inactive'";
  }
  if (Array.isArray(doc.log)) {
    for (var i = 0; i < doc.log.length; i++) {
      p = logLineProblem(doc.log[i]);
      if (p) return p;
    }
  }
  return null;
}

// Moves every role may make (they are what the update handlers do), and the
// further moves only a queue admin may make by editing a job (Fauxton).
var WORKER_MOVES = {
  'inactive>inactive': true, 'inactive>active': true, 'inactive>cancelled': true,
  'active>active': true, 'active>inactive': true, 'active>complete': true, 'active>failed': true,
  'active>cancelled': true,
  'blocked>blocked': true, 'blocked>inactive': true, 'blocked>failed': true, 'blocked>cancelled': true
};
var ADMIN_MOVES = {
  'failed>inactive': true, 'complete>inactive': true, 'cancelled>inactive': true,
  'inactive>failed': true, 'failed>failed': true, 'complete>complete': true,
  'cancelled>cancelled': true
};

function moveProblem(from, to, isAdmin) {
  var move = from + '>' + to;
  if (WORKER_MOVES[move] || (isAdmin && ADMIN_MOVES[move])) return null;
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

function isFinished(doc) {
  return exports.FINISHED_STATES.indexOf(doc.state) >= 0;
}

function now() {
  return new Date().getTime();
}

// Whether a job belongs to the queue `path` names: its own path starts with
// it (a worker on ["email"] also takes ["email", "welcome"] jobs).
function inQueue(doc, path) {
  var own = queuePath(doc.queues);
  if (!own || !Array.isArray(path) || path.length === 0 || path.length > own.length) return false;
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

function leaseMs(doc, b) {
  if (isNumber(doc.lease_seconds) && doc.lease_seconds > 0) return doc.lease_seconds * 1000;
  if (isNumber(b.lease_seconds) && b.lease_seconds > 0) return b.lease_seconds * 1000;
  return exports.DEFAULT_LEASE_SECONDS * 1000;
}

function appendLog(doc, msg, at) {
  if (!Array.isArray(doc.log)) doc.log = [];
  doc.log.push({ at: at, msg: String(msg) });
  if (doc.log.length > exports.MAX_LOG_LINES) doc.log = doc.log.slice(-exports.MAX_LOG_LINES);
}

// After a failed attempt: schedule the next one with exponential backoff and
// jitter, or fail the job for good once its attempts are used up.
function failOrRetry(doc, error, at, retry) {
  var attempts = isInteger(doc.attempts) ? doc.attempts : 1;
  var max = isInteger(doc.max_attempts) ? doc.max_attempts : 1;
  var err = {
    message: String(error && error.message !== undefined ? error.message : error),
    type: String(error && error.type ? error.type : 'Error'),
    traceback: error && typeof error.traceback === 'string' ? error.traceback : null,
    attempt: attempts,
    worker_id: doc.worker_id === undefined ? null : doc.worker_id,
    at: at
  };
  doc.error = err;
  if (!Array.isArray(doc.errors)) doc.errors = [];
  doc.errors.push(err);
  if (doc.errors.length > exports.MAX_KEPT_ERRORS) doc.errors = doc.errors.slice(-exports.MAX_KEPT_ERRORS);
  doc.worker_id = null;
  doc.lease_expires_at = null;
  if (isNumber(doc.cancel_requested_at)) {
    cancel(doc, at);
  } else if (retry !== false && attempts < max) {
    var base = isNumber(doc.backoff_seconds) ? doc.backoff_seconds : exports.DEFAULT_BACKOFF_SECONDS;
    var delay = Math.min(base * Math.pow(2, attempts - 1), exports.MAX_BACKOFF_SECONDS);
    delay = delay * (0.75 + Math.random() * 0.5);
    doc.state = 'inactive';
    doc.run_at = at + Math.round(delay * 1000);
  } else {
    doc.state = 'failed';
    doc.failed_at = at;
  }
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
  return reply(409, 'not_cancellable', 'job is ' + doc.state + ': too late to cancel');
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
    var why = 'job ' + dependency + ' it waits for is ' + state;
    appendLog(doc, why, at);
    doc.error = { type: 'DependencyFailed', message: why, traceback: null, attempt: 0, worker_id: null, at: at };
    doc.state = 'failed';
    doc.failed_at = at;
    return true;
  }
  doc.waiting_for.splice(place, 1);
  if (!isObject(doc.dependency_results)) doc.dependency_results = {};
  doc.dependency_results[dependency] = state === 'complete' && result !== undefined ? result : null;
  if (doc.waiting_for.length === 0) {
    doc.state = 'inactive';
    appendLog(doc, 'every job it waits for has finished: waiting to run', at);
  }
  return true;
}

exports.resolve = resolve;
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
