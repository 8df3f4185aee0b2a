// Where a job came from (require('lib/origin')): `origin` names the producer,
// the CouchDB account that created it. A producer database replicates its
// jobs in with its own account, and pulls back the jobs of its origin by a
// replication selector ({"origin": <name>}); the rule below is what makes
// that selector mean "my jobs": nobody but a queue admin may write another
// account's name there. ES5 only.

var FIELD = {{ origin_field|tojson }};

// What is wrong with the origin of a job being created by account `name`, or
// null. Absent is fine (the job then belongs to no producer's replication);
// a queue admin may name any producer (enqueuing on its behalf).
function problem(doc, name, isAdmin) {
  if (doc[FIELD] === undefined) return null;
  if (typeof doc[FIELD] !== 'string' || doc[FIELD].length === 0) {
    return "'" + FIELD + "' must be the name of the account that creates the job";
  }
  if (!isAdmin && doc[FIELD] !== name) {
    return "'" + FIELD + "' must be the name of the account that creates the job (" +
      JSON.stringify(name) + ', not ' + JSON.stringify(doc[FIELD]) + ')';
  }
  return null;
}

exports.FIELD = FIELD;
exports.problem = problem;
