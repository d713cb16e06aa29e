'use strict';
// An HTTP API on uniqdb with node:http alone: scenarios S3 (a duplicate
// workflow is a 409 problem+json naming what collided) and S4 (one active
// booking per slot; cancelling frees it; the first free slot of a list).
//
//   node examples/server.js DIR [PORT]
//
//   POST /workflows              {workflow_name, version, execution_engine, definition?}
//                                201 the workflow | 409 conflict | 422 bad field
//   GET  /workflows/NAME/VERSION 200 the workflow | 404
//   POST /bookings               {psychologist, date, time, user?}   201 | 409 | 422
//   POST /bookings/auto          {psychologist, date, times: [...], user?}
//                                201 {chosen, booking} | 409 when every slot is taken
//   POST /bookings/ID/cancel     200 the cancelled booking | 404
const http = require('node:http');
const uniqdb = require('..');

const schema = {
  types: {
    workflow: {
      key: 'id',
      fields: {
        id: { type: 'uint', auto: true },
        workflow_name: { type: 'str', required: true },
        version: { type: 'int', required: true },
        execution_engine: { type: 'enum', values: ['temporal', 'airflow', 'argo'],
          required: true },
        definition: { type: 'any' },
      },
      unique: { name_version: { fields: ['workflow_name', 'version'] } },
    },
    booking: {
      key: 'id',
      fields: {
        id: { type: 'uint', auto: true },
        psychologist: { type: 'str', required: true },
        date: { type: 'str', required: true },
        time: { type: 'str', required: true },
        status: { type: 'enum', values: ['pending', 'confirmed', 'cancelled', 'completed'],
          required: true },
        user: { type: 'str' },
      },
      unique: {
        active_slot: { fields: ['psychologist', 'date', 'time'],
          where: "status IN ('pending', 'confirmed')" },
      },
    },
  },
};

function send(res, status, body, type = 'application/json') {
  const text = JSON.stringify(body, (k, v) => (typeof v === 'bigint' ? v.toString() : v));
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function problem(res, status, title, detail, instance) {
  send(res, status, { type: 'about:blank', title, status, detail, instance },
    'application/problem+json');
}

// Engine errors as HTTP: a conflict is 409, a record that breaks the schema 422.
function fail(res, req, e) {
  if (e instanceof uniqdb.ConflictError) {
    send(res, 409, e.toProblem({ instance: req.url }), 'application/problem+json');
  } else if (e instanceof uniqdb.RecordError || e instanceof TypeError) {
    send(res, 422, e instanceof uniqdb.RecordError ? e.toProblem({ instance: req.url })
      : { type: 'about:blank', title: 'Unprocessable record', status: 422, detail: e.message,
        field: e.field, instance: req.url }, 'application/problem+json');
  } else if (e && e.code === 'UDB_ENOTFOUND') {
    problem(res, 404, 'Not Found', e.message, req.url);
  } else {
    problem(res, 500, 'Internal Server Error', String(e && e.message), req.url);
  }
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'));
      } catch (e) {
        reject(e);
      }
    });
    req.on('error', reject);
  });
}

function createServer(db) {
  return http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean);
    let body = {};
    if (req.method === 'POST') {
      try {
        body = await readJson(req);
      } catch {
        problem(res, 400, 'Bad Request', 'the body is not JSON', req.url);
        return;
      }
    }
    try {
      if (req.method === 'POST' && url.pathname === '/workflows') {
        const { workflow_name, version, execution_engine, definition } = body;
        send(res, 201, await db.insert('workflow',
          { workflow_name, version, execution_engine, definition }));
      } else if (req.method === 'GET' && parts[0] === 'workflows' && parts.length === 3) {
        const wf = db.find('workflow', 'name_version',
          [decodeURIComponent(parts[1]), Number(parts[2])]);
        if (wf) send(res, 200, wf);
        else problem(res, 404, 'Not Found', 'no such workflow', req.url);
      } else if (req.method === 'POST' && url.pathname === '/bookings') {
        const { psychologist, date, time, user } = body;
        send(res, 201, await db.insert('booking',
          { psychologist, date, time, user, status: 'pending' }));
      } else if (req.method === 'POST' && url.pathname === '/bookings/auto') {
        const { psychologist, date, times, user } = body;
        if (!Array.isArray(times) || times.length === 0) {
          problem(res, 422, 'Unprocessable record', 'times must be a non-empty list', req.url);
          return;
        }
        const r = await db.insertFirst('booking', times.map((time) =>
          ({ psychologist, date, time, user, status: 'confirmed' })));
        send(res, 201, { chosen: r.chosen, booking: r.record });
      } else if (req.method === 'POST' && parts[0] === 'bookings' && parts[2] === 'cancel') {
        send(res, 200, await db.update('booking', Number(parts[1]), { status: 'cancelled' },
          { merge: true }));
      } else {
        problem(res, 404, 'Not Found', `no route ${req.method} ${url.pathname}`, req.url);
      }
    } catch (e) {
      fail(res, req, e);
    }
  });
}

module.exports = { createServer, schema };

if (require.main === module) {
  const [dir, port = '8080'] = process.argv.slice(2);
  if (!dir) {
    console.error('usage: node examples/server.js DIR [PORT]');
    process.exit(2);
  }
  const db = uniqdb.open(dir, { schema });
  createServer(db).listen(Number(port), () => console.log(`listening on :${port}`));
}
