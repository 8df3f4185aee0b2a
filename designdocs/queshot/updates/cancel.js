function (doc, req) {
  // Cancels a job: a waiting one at once; a running one is asked to stop
  // (cancel_requested_at), and ends cancelled when its worker gives it up,
  // fails it, or is taken back. A job that completes first stays complete.
  var job = require('lib/job');
  if (!doc) return job.reply(404, 'not_found', 'no such job');
  if (!job.isJob(doc)) return job.reply(400, 'bad_request', 'not a queshot job');
  var refusal = job.requestCancel(doc, job.now());
  if (refusal) return refusal;
  return [doc, { json: { ok: true, state: doc.state } }];
}
