function (doc, req) {
  // Appends a line to a job's log (bounded), stamped with the server's clock.
  var job = require('lib/job');
  var b = job.body(req);
  if (!doc) return job.reply(404, 'not_found', 'no such job');
  if (!job.isJob(doc)) return job.reply(400, 'bad_request', 'not a queshot job');
  if (typeof b.msg !== 'string') return job.reply(400, 'bad_request', 'log needs a string msg');
  if (b.worker_id !== undefined && b.worker_id !== doc.worker_id) return job.notHeld(doc, b);
  job.appendLog(doc, b.msg, job.now());
  return [doc, { json: { ok: true } }];
}
