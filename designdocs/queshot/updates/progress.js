function (doc, req) {
  // Sets a job's progress (0-100).
  var job = require('lib/job');
  var b = job.body(req);
  if (!doc) return job.reply(404, 'not_found', 'no such job');
  if (!job.isJob(doc)) return job.reply(400, 'bad_request', 'not a queshot job');
  if (!job.isNumber(b.progress)) return job.reply(400, 'bad_request', 'progress needs a number');
  if (b.worker_id !== undefined && b.worker_id !== doc.worker_id) return job.notHeld(doc, b);
  doc.progress = Math.max(0, Math.min(100, b.progress));
  return [doc, { json: { ok: true } }];
}
