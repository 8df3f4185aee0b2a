function (doc, req) {
  // Gives a held job back unrun (graceful shutdown): the attempt is not counted.
  var job = require('lib/job');
  var b = job.body(req);
  var refusal = job.notHeld(doc, b);
  if (refusal) return refusal;
  doc.state = 'inactive';
  doc.worker_id = null;
  doc.lease_expires_at = null;
  if (job.isNumber(doc.attempts) && doc.attempts > 0) doc.attempts -= 1;
  return [doc, { json: { ok: true } }];
}
