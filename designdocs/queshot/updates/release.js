function (doc, req) {
  // Gives a held job back unrun (graceful shutdown): the attempt is not counted.
  var job = require('lib/job');
  var b = job.body(req);
  var refusal = job.notHeld(doc, b);
  if (refusal) return refusal;
  job.giveBack(doc);
  return [doc, { json: { ok: true } }];
}
