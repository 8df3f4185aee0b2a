// The schedule schema (require('lib/schedule')): a periodic job kept as a
// document, `type` "{{ schedule_type }}", id "{{ schedule_doc_prefix }}<name>".
// validate_doc_update refuses any write that breaks it, with one reason; the
// cron expression itself is parsed by the scheduler (cronsim), which skips a
// schedule it cannot parse and says so.

{% include '_partials/model.js' %}
{% include '_partials/bounds.js' %}

var SCHEDULE_TYPE = {{ schedule_type|tojson }};
var PREFIX = {{ schedule_doc_prefix|tojson }};
var MAX_CATCH_UP = {{ schedule_max_catch_up }};
var NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
var CRON_FIELD = /^[0-9A-Za-z*,\/?#-]+$/;

function isSchedule(doc) {
  return isObject(doc) && doc.type === SCHEDULE_TYPE;
}

function cronProblem(cron) {
  if (typeof cron !== 'string') return "'cron' must be a string like \"*/5 * * * *\"";
  var fields = cron.trim().split(/\s+/);
  if (fields.length !== 5) {
    return "'cron' must have 5 fields (minute hour day month weekday), got " + fields.length;
  }
  for (var i = 0; i < fields.length; i++) {
    if (!CRON_FIELD.test(fields[i])) return "'cron' field " + (i + 1) + ' (' + fields[i] + ') is not cron syntax';
  }
  return null;
}

function check(value, test, message) {
  return (value === undefined || value === null || test(value)) ? null : message;
}

// What is wrong with a schedule document, or null.
function problem(doc) {
  if (doc._id.indexOf(PREFIX) !== 0 || !NAME.test(doc._id.slice(PREFIX.length))) {
    return "a schedule's id must be '" + PREFIX + "<name>', the name of letters, digits, '.', '_' or '-'";
  }
  var hasCron = doc.cron !== undefined && doc.cron !== null;
  var hasEvery = doc.every !== undefined && doc.every !== null;
  if (!hasCron && !hasEvery) return "a schedule needs 'cron' (\"*/5 * * * *\") or 'every' (seconds)";
  if (hasCron && hasEvery) return "a schedule has either 'cron' or 'every', not both";
  if (hasCron) {
    var p = cronProblem(doc.cron);
    if (p) return p;
  } else if (!isInteger(doc.every) || doc.every < 1) {
    return "'every' must be a whole number of seconds >= 1";
  }
  var queue = queuePathProblem(doc.queue);
  if (queue) return "'queue': " + queue;
  return check(doc.task, function (x) { return typeof x === 'string' && x.length > 0; }, "'task' must be a non-empty string") ||
    check(doc.args, Array.isArray, "'args' must be an array") ||
    check(doc.kwargs, isObject, "'kwargs' must be an object") ||
    check(doc.timezone, function (x) { return typeof x === 'string' && x.length > 0; },
      "'timezone' must be an IANA time zone name like \"Europe/Berlin\"") ||
    check(doc.enabled, function (x) { return typeof x === 'boolean'; }, "'enabled' must be true or false") ||
    check(doc.enabled_at, isEpochMs, numberProblem('enabled_at', doc.enabled_at)) ||
    check(doc.run_requested_at, isEpochMs, numberProblem('run_requested_at', doc.run_requested_at)) ||
    check(doc.run_requested_by, function (x) { return typeof x === 'string' && x.length > 0; },
      "'run_requested_by' must be the name of who asked for the run") ||
    check(doc.catch_up, function (x) { return isInteger(x) && x >= 1 && x <= MAX_CATCH_UP; },
      "'catch_up' must be a whole number from 1 to " + MAX_CATCH_UP + ' (missed slots enqueued after a pause)') ||
    bounded(doc, ['priority', 'max_attempts', 'max_stalls', 'timeout']);
}

// The job options a schedule gives its jobs, within the jobs' own bounds.
function bounded(doc, fields) {
  for (var i = 0; i < fields.length; i++) {
    var value = doc[fields[i]];
    if (value !== undefined && value !== null && numberProblem(fields[i], value)) return numberProblem(fields[i], value);
  }
  return null;
}

exports.SCHEDULE_TYPE = SCHEDULE_TYPE;
exports.isSchedule = isSchedule;
exports.problem = problem;
