// The schedule schema (require('lib/schedule')): a periodic job kept as a
// document, `type` "{{ schedule_type }}", id "{{ schedule_doc_prefix }}<name>".
// validate_doc_update refuses any write that breaks it, with one reason; the
// cron expression itself is parsed by the scheduler (cronsim), which skips a
// schedule it cannot parse and says so.

{% include '_partials/model.js' %}

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
  if (!queuePath(doc.queue)) return "'queue' must be a non-empty string or a non-empty array of non-empty strings";
  return check(doc.task, function (x) { return typeof x === 'string' && x.length > 0; }, "'task' must be a non-empty string") ||
    check(doc.args, Array.isArray, "'args' must be an array") ||
    check(doc.kwargs, isObject, "'kwargs' must be an object") ||
    check(doc.timezone, function (x) { return typeof x === 'string' && x.length > 0; },
      "'timezone' must be an IANA time zone name like \"Europe/Berlin\"") ||
    check(doc.enabled, function (x) { return typeof x === 'boolean'; }, "'enabled' must be true or false") ||
    check(doc.enabled_at, isNumber, "'enabled_at' must be a number (epoch milliseconds)") ||
    check(doc.catch_up, function (x) { return isInteger(x) && x >= 1 && x <= MAX_CATCH_UP; },
      "'catch_up' must be a whole number from 1 to " + MAX_CATCH_UP + ' (missed slots enqueued after a pause)') ||
    check(doc.priority, isInteger, "'priority' must be an integer") ||
    check(doc.max_attempts, function (x) { return isInteger(x) && x >= 1; }, "'max_attempts' must be a whole number >= 1") ||
    check(doc.max_stalls, function (x) { return isInteger(x) && x >= 0; }, "'max_stalls' must be a whole number >= 0") ||
    check(doc.timeout, function (x) { return isNumber(x) && x > 0; }, "'timeout' must be a number of seconds > 0");
}

// What is wrong with the schedule mark of a job a schedule made, or null.
function slotProblem(doc) {
  if (doc.schedule === undefined && doc.slot === undefined) return null;
  if (typeof doc.schedule !== 'string' || doc.schedule.indexOf(PREFIX) !== 0) {
    return "'schedule' must be the id of the schedule that made the job ('" + PREFIX + "<name>')";
  }
  if (!isNumber(doc.slot)) return "'slot' must be the slot's time (epoch milliseconds)";
  return null;
}

exports.SCHEDULE_TYPE = SCHEDULE_TYPE;
exports.isSchedule = isSchedule;
exports.problem = problem;
exports.slotProblem = slotProblem;
