function (doc, req) {
  // Gives a held job back unrun (graceful shutdown): the attempt is not counted.
  // A job asked to cancel ends cancelled instead.
  var job = require('lib/job');
  var b = job.body(req);
  var refusal = job.notHeld(doc, b);
  if (refusal) return refusal;
  job.giveBack(doc, job.now());
  return [doc, { json: { ok: true, state: doc.state } }];
}
