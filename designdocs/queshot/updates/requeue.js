function (doc, req) {
  // A failed, complete or cancelled job back to waiting as a fresh start: what
  // `queshot requeue` and the dashboard's Requeue button do. Body: {by?}, the
  // origin its log line names with the account.
  var job = require('lib/job');
  if (!doc) return job.reply(404, 'not_found', 'no such job');
  if (!job.isJob(doc)) return job.reply(400, 'bad_request', 'not a queshot job');
  if (!job.isFinished(doc)) {
    return job.reply(409, 'not_requeueable', 'job is ' + job.shownState(doc.state) + ', not ' +
      job.FINISHED_STATES.join(', ').replace(/, ([^,]*)$/, ' or $1'));
  }
  var was = doc.state;
  job.freshStart(doc);
  job.actedBy(doc, req, 'requeued (was ' + was + ')', job.now());
  return [doc, { json: { ok: true } }];
}
