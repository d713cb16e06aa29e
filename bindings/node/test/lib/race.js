'use strict';
// Racing real processes: the parent forks N children on one database; each
// opens it, then runs the phases the parent starts, all children at once
// (the parent is the barrier between phases).  In a phase every child fires
// all its writes together (rounds x concurrency promises in flight) and sends
// back every outcome.  The scenarios themselves are in scenarios.js.
const { fork } = require('node:child_process');
const path = require('node:path');

async function startRace({ dir, scenario, procs, conc, rounds, control = false }) {
  const children = [];
  for (let p = 0; p < procs; p++) {
    const child = fork(path.join(__dirname, 'child.js'),
      [dir, scenario, String(p), String(conc), String(rounds), control ? 'control' : ''],
      { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
  }
  const waitAll = (k) => Promise.all(children.map((c) => new Promise((resolve, reject) => {
    const onMsg = (m) => {
      if (m.phase !== k) return;
      c.off('message', onMsg);
      c.off('exit', onExit);
      if (m.error) reject(new Error(`child: ${m.error}`));
      else resolve(m.results);
    };
    const onExit = (code) => reject(new Error(`child exited with ${code} in phase ${k}`));
    c.on('message', onMsg);
    c.once('exit', onExit);
  })));
  await waitAll('ready');
  return {
    async phase(k, extra) {
      const all = waitAll(k);
      for (const c of children) c.send({ phase: k, extra });
      return (await all).flat();
    },
    // for a run that stopped early (a failed verification): end every child
    kill() {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill();
    },
    async end() {
      await Promise.all(children.map((c) => new Promise((resolve) => {
        c.once('exit', resolve);
        c.send({ phase: 'end' });
      })));
    },
  };
}

module.exports = { startRace };
