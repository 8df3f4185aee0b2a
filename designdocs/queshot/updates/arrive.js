function (doc, req) {
  // Places a waiting job that has never run by the server's clock, when its
  // created_at is more than the tolerance off it (lib/job's needsPlace): the
  // first worker whose feed shows the job calls this; the rest find it placed.
  var job = require('lib/job');
  if (!doc) return job.reply(404, 'not_found', 'no such job');
  if (!job.isJob(doc)) return job.reply(400, 'bad_request', 'not a queshot job');
  var now = job.now();
  if (!job.needsPlace(doc, now)) return [null, { json: { ok: true, placed: false } }];
  job.place(doc, now);
  return [doc, { json: { ok: true, placed: true, arrived_at: now } }];
}
