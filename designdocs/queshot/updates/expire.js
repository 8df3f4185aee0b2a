function (doc, req) {
  // Takes back a running job whose lease (or timeout) has run out by the
  // server's clock: requeued, or failed once its attempts are used.
  var job = require('lib/job');
  if (!doc) return job.reply(404, 'not_found', 'no such job');
  if (!job.isJob(doc) || doc.state !== 'active') {
    return job.reply(409, 'not_active', 'job is ' + (doc.state === undefined ? 'not a job' : doc.state));
  }
  var now = job.now();
  var deadline = job.deadline(doc);
  if (now <= deadline) return job.reply(409, 'not_expired', 'lease runs for ' + (deadline - now) + ' ms more');
  var timedOut = job.isNumber(doc.timeout) && job.isNumber(doc.claimed_at) &&
    now > doc.claimed_at + doc.timeout * 1000;
  var error = timedOut
    ? { type: 'TimeoutError', message: 'job ran over its timeout of ' + doc.timeout + ' s' }
    : { type: 'LeaseExpired', message: 'worker ' + doc.worker_id + ' stopped renewing its lease' };
  job.failOrRetry(doc, error, now);
  return [doc, { json: { ok: true, state: doc.state } }];
}
