'use strict';
// Shared by the tests: temporary databases and the scenario schema.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

// The scenario schema of the C race suite: tools/scenarios.json of the source
// tree (run-tests.sh names it; the default is its place beside this file).
const scenarios = require(process.env.UNIQDB_SCENARIOS ||
  path.join(__dirname, '..', '..', '..', '..', 'tools', 'scenarios.json'));

function tmpdir(t, name = 'db') {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'uniqdb-node-'));
  if (t && t.after) t.after(() => fs.rmSync(base, { recursive: true, force: true }));
  return path.join(base, name);
}

// A plain, serializable view of a settled write (for IPC and assertions).
function outcome(p, meta) {
  return p.then(
    (value) => ({ ...meta, ok: true, value }),
    (e) => ({ ...meta, ok: false, error: errorView(e) }));
}

function errorView(e) {
  return {
    name: e.name, code: e.code, message: e.message, type: e.type, index: e.index,
    fields: e.fields, values: e.values, existingKey: e.existingKey, field: e.field,
    status: e.status, opIndex: e.opIndex,
    problem: typeof e.toProblem === 'function' ? e.toProblem() : undefined,
  };
}

module.exports = { scenarios, tmpdir, outcome, errorView };
