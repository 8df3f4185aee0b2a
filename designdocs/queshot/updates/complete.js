function (doc, req) {
  // Finishes a held job, storing the handler's result.
  var job = require('lib/job');
  var b = job.body(req);
  var refusal = job.notHeld(doc, b);
  if (refusal) return refusal;
  doc.state = 'complete';
  doc.completed_at = job.now();
  doc.progress = 100;
  doc.lease_expires_at = null;
  if (job.isNumber(doc.cancel_requested_at)) {
    job.appendLog(doc, 'completed before it could stop: the cancel came too late', doc.completed_at);
  }
  if (b.result !== undefined) doc.result = b.result;
  return [doc, { json: { ok: true } }];
}
