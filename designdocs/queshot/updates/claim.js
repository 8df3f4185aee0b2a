function (doc, req) {
  // The one way a worker takes a job. Sets no `code` when it saves, so that
  // CouchDB's own 201/202 reaches the worker (the cluster claim rule).
  var job = require('lib/job');
  var b = job.body(req);
  if (!doc) return job.reply(404, 'not_found', 'no such job');
  if (!job.isJob(doc)) return job.reply(400, 'bad_request', 'not a queshot job');
  if (typeof b.worker_id !== 'string' || !b.worker_id) {
    return job.reply(400, 'bad_request', 'claim needs a worker_id');
  }
  if (doc.state !== 'inactive') return job.reply(409, 'not_claimable', 'job is ' + doc.state);
  if (b.queue !== undefined && !job.inQueue(doc, b.queue)) {
    return job.reply(409, 'other_queue', 'job is in queue ' + JSON.stringify(doc.queues) +
      ', not in ' + JSON.stringify(b.queue));
  }
  var pause = job.pauseOf(this, doc); // `this`: the design document, where pauses are kept
  if (pause) return job.reply(409, 'paused', job.pausedReason(pause));
  var now = job.now();
  if (!job.isDue(doc, now)) {
    return job.reply(409, 'not_due', 'job is not due for ' + (doc.run_at - now) + ' ms');
  }
  if (job.requeuedByHand(doc)) {
    job.freshStart(doc);
    job.appendLog(doc, 'requeued by hand: a fresh start (attempts and stalls reset)', now);
  }
  doc.state = 'active';
  doc.worker_id = b.worker_id;
  // the account claiming: only it may write the job while it is held
  doc.worker_user = req.userCtx && typeof req.userCtx.name === 'string' ? req.userCtx.name : null;
  doc.claimed_at = now;
  doc.lease_expires_at = now + job.leaseMs(doc, b);
  doc.attempts = (job.isNumber(doc.attempts) ? doc.attempts : 0) + 1;
  return [doc, { json: { ok: true, job: doc } }];
}
