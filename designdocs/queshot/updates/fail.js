function (doc, req) {
  // Records a failed attempt of a held job: retry later with backoff, or fail
  // for good once max_attempts are used (or when the worker says retry: false).
  var job = require('lib/job');
  var b = job.body(req);
  var refusal = job.notHeld(doc, b);
  if (refusal) return refusal;
  job.failOrRetry(doc, b.error || { message: 'failed' }, job.now(), b.retry);
  return [doc, { json: { ok: true, state: doc.state, run_at: doc.run_at || null } }];
}
