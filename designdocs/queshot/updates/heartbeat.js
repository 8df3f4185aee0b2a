function (doc, req) {
  // Extends the lease of a held job (optionally reporting progress). A job past
  // its timeout is failed here, by the server's clock, and the worker told so.
  var job = require('lib/job');
  var b = job.body(req);
  var refusal = job.notHeld(doc, b);
  if (refusal) return refusal;
  var now = job.now();
  if (job.timedOut(doc, now)) {
    var error = job.timeoutError(doc);
    job.failOrRetry(doc, error, now);
    return [doc, { code: 409, json: { error: 'timed_out', reason: error.message } }];
  }
  if (job.isNumber(b.progress)) doc.progress = Math.max(0, Math.min(100, b.progress));
  doc.lease_expires_at = now + job.leaseMs(doc, b);
  return [doc, { json: { ok: true, lease_expires_at: doc.lease_expires_at } }];
}
