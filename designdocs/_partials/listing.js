// What job listings (queshot jobs/stats/clean, the dashboard) read from a view
// row instead of loading whole jobs. Included after model.js in the jobs_by_*
// map functions. ES5 only.

// When the job entered its current state: waiting jobs since they became due,
// running ones since their claim, finished ones since they finished.
function stateSince(doc) {
  var t = null;
  if (doc.state === 'inactive') t = dueAt(doc);
  else if (doc.state === 'active') t = doc.claimed_at;
  else if (doc.state === 'complete') t = doc.completed_at;
  else if (doc.state === 'failed') t = doc.failed_at;
  else if (doc.state === 'cancelled') t = doc.cancelled_at;
  if (isNumber(t)) return t;
  return isNumber(doc.created_at) ? doc.created_at : 0;
}

// A job's row value: enough to list it, and its revision for bulk deletes.
function summary(doc) {
  // A job requeued by hand keeps its old error until its next claim: not current.
  var error = isObject(doc.error) && typeof doc.error.message === 'string' && !requeuedByHand(doc)
    ? doc.error.message : null;
  return {
    rev: doc._rev,
    since: stateSince(doc),
    queues: doc.queues === undefined ? null : doc.queues,
    state: doc.state === undefined ? null : doc.state,
    priority: isNumber(doc.priority) ? doc.priority : 0,
    attempts: isNumber(doc.attempts) ? doc.attempts : 0,
    max_attempts: isNumber(doc.max_attempts) ? doc.max_attempts : null,
    progress: isNumber(doc.progress) ? doc.progress : null,
    worker_id: typeof doc.worker_id === 'string' ? doc.worker_id : null,
    lease_expires_at: isNumber(doc.lease_expires_at) ? doc.lease_expires_at : null,
    error: error
  };
}
