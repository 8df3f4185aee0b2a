// An offline producer in Node with PouchDB (the packages pouchdb-server
// brings): makes its jobs in a local database while it has no connection,
// then pushes them to the queue database as its CouchDB account and pulls
// back its own (selector on origin) until every one has finished. With
// editRunning it edits the local copy of a job it has seen start, and pushes
// that too, then takes the refused revision back. Prints what it saw as one
// JSON line.
'use strict';
const PouchDB = require('pouchdb-core')
  .plugin(require('pouchdb-adapter-memory'))
  .plugin(require('pouchdb-adapter-http'))
  .plugin(require('pouchdb-replication'));

const opts = JSON.parse(process.argv[2]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const local = new PouchDB('producer-' + opts.name, { adapter: 'memory' });
  const jobs = [];
  for (let i = 0; i < opts.count; i++) {
    jobs.push({
      _id: opts.name + '-' + String(i).padStart(5, '0'),
      queues: opts.queue,
      state: 'inactive',
      created_at: Date.now() + opts.clockOffsetMs,  // this device's clock
      origin: opts.name,
      data: { n: i },
    });
  }
  await local.bulkDocs(jobs);  // offline: no server involved yet

  const remote = new PouchDB(opts.queueUrl, { auth: { username: opts.name, password: opts.password } });
  const mine = { selector: { origin: opts.name } };
  const push = await local.replicate.to(remote, mine);
  const report = { pushed: push.docs_written, pushFailures: push.doc_write_failures, edited: null, editFailures: null };
  for (;;) {
    await local.replicate.from(remote, mine);
    const docs = (await local.allDocs({ include_docs: true })).rows.map((row) => row.doc);
    if (opts.editRunning && report.edited === null) {
      const running = docs.find((doc) => doc.state === 'active');
      if (running) {
        const edit = await local.put(Object.assign({}, running, { data: { edited: 'offline' }, priority: 9 }));
        const again = await local.replicate.to(remote, mine);
        report.edited = running._id;
        report.editFailures = again.doc_write_failures;
        // The queue refused it: it lives only here, as a branch that could win
        // over the queue's outcome locally (same length: CouchDB's rule picks by
        // revision hash). Removing the refused revision leaves the queue's.
        if (again.doc_write_failures > 0) await local.remove(running._id, edit.rev);
        continue;
      }
    }
    if (docs.every((doc) => doc.state === 'complete')) {
      report.ids = docs.map((doc) => doc._id);
      report.resultsOk = docs.every((doc) => doc.result && doc.result.ran === doc._id);
      break;
    }
    await sleep(200);
  }
  console.log(JSON.stringify(report));
}

main().catch((err) => { console.error(err); process.exit(1); });
