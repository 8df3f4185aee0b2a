// The retention rule of a queue (require('lib/retention')): how long, and how
// many, of its finished jobs are kept, per finished state. A document of
// `type` "{{ retention_type }}", id "{{ retention_doc_prefix }}<queue path
// joined by '/'>", so that a queue has one rule. Workers read it every pass
// (queshot/retention.py), so a change reaches every worker without a restart.

{% include '_partials/model.js' %}

var RETENTION_TYPE = {{ retention_type|tojson }};
var PREFIX = {{ retention_doc_prefix|tojson }};
var FINISHED = {{ finished_states|tojson }};
var MAX_AGE = {{ max_retention_age_seconds }};
var MAX_COUNT = {{ max_retention_count }};

function isRetention(doc) {
  return isObject(doc) && doc.type === RETENTION_TYPE;
}

// What is wrong with one state's rule ({age: seconds, count: jobs}), or null.
function ruleProblem(state, rule) {
  var like = "'" + state + "' is a rule like {\"age\": 86400, \"count\": 1000}";
  if (!isObject(rule)) return like;
  for (var key in rule) {
    if (key !== 'age' && key !== 'count') return like + " (no '" + key + "')";
  }
  if (rule.age === undefined && rule.count === undefined) return like + ": 'age', 'count' or both";
  if (rule.age !== undefined && !(isNumber(rule.age) && rule.age >= 0 && rule.age <= MAX_AGE)) {
    return "'" + state + ".age' must be seconds from 0 to " + MAX_AGE + ' (keep jobs that finished that recently)';
  }
  if (rule.count !== undefined && !(isInteger(rule.count) && rule.count >= 0 && rule.count <= MAX_COUNT)) {
    return "'" + state + ".count' must be a whole number from 0 to " + MAX_COUNT + ' (keep the newest that many)';
  }
  return null;
}

// What is wrong with a retention document, or null.
function problem(doc) {
  var queue = queuePathProblem(doc.queue);
  if (queue) return "'queue': " + queue;
  var id = PREFIX + queuePath(doc.queue).join('/');
  if (doc._id !== id) return "a retention rule's id is '" + PREFIX + "' and its queue path joined by '/': " + JSON.stringify(id);
  for (var key in doc) {
    if (key.charAt(0) === '_' || key === 'type' || key === 'queue') continue;
    if (FINISHED.indexOf(key) < 0) {
      return "a retention rule holds 'queue' and a rule per finished state (" + FINISHED.join(', ') + "), not '" + key + "'";
    }
    var wrong = ruleProblem(key, doc[key]);
    if (wrong) return wrong;
  }
  return null;
}

exports.RETENTION_TYPE = RETENTION_TYPE;
exports.isRetention = isRetention;
exports.problem = problem;
