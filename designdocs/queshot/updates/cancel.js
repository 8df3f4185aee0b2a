function (doc, req) {
  // Cancels a job: a waiting one at once; a running one is asked to stop
  // (cancel_requested_at), and ends cancelled when its worker gives it up,
  // fails it, or is taken back. A job that completes first stays complete.
  // Body: {by?}, the origin its log line names with the account.
  var job = require('lib/job');
  if (!doc) return job.reply(404, 'not_found', 'no such job');
  if (!job.isJob(doc)) return job.reply(400, 'bad_request', 'not a queshot job');
  var at = job.now();
  var refusal = job.requestCancel(doc, at);
  if (refusal) return refusal;
  job.actedBy(doc, req, doc.state === 'active' ? 'cancel asked' : 'cancelled', at);
  return [doc, { json: { ok: true, state: doc.state } }];
}
