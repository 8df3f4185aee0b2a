function (doc, req) {
  // Takes back a running job whose lease (or timeout) has run out by the
  // server's clock. Over its timeout, that is a failed attempt (retried as
  // attempts allow); a lease that ran out is a stall (see lib/job's stall).
  var job = require('lib/job');
  if (!doc) return job.reply(404, 'not_found', 'no such job');
  if (!job.isJob(doc) || doc.state !== 'active') {
    return job.reply(409, 'not_active', 'job is ' + (doc.state === undefined ? 'not a job' : doc.state));
  }
  var now = job.now();
  var deadline = job.deadline(doc);
  if (now <= deadline) return job.reply(409, 'not_expired', 'lease runs for ' + (deadline - now) + ' ms more');
  var timedOut = job.timedOut(doc, now);
  if (timedOut) {
    job.failOrRetry(doc, job.timeoutError(doc), now);
  } else {
    job.stall(doc, now);
  }
  return [doc, { json: { ok: true, state: doc.state, why: timedOut ? 'timeout' : 'stall', stalls: doc.stalls || 0 } }];
}
