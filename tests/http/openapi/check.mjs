// ordo_openapi_test: validates docs/openapi.yaml with a real OpenAPI validator
// (@apidevtools/swagger-parser), then starts a real `ordo serve` (ordo-http-test-serve on
// inproc:) and sends it a request for every operation and every error the document declares,
// checking each response against the document: the status is declared for the operation (405
// when the method is not, 404 when the path is not), the body matches the declared schema
// (ajv), and every required response header is present and matches its schema.
//
//   node check.mjs OPENAPI.yaml ORDO_HTTP_TEST_SERVE
import {startServer as start} from './serve.mjs';
import {mkdtempSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {createRequire} from 'node:module';

const require = createRequire(import.meta.url);
let SwaggerParser, Ajv, addFormats;
try {
  SwaggerParser = require('@apidevtools/swagger-parser');
  Ajv = require('ajv');
  addFormats = require('ajv-formats');
} catch (e) {
  console.error('ordo_openapi_test: the validator is not installed (run ./dev build, which runs ' +
                'npm ci in tests/http/openapi): ' + e.message);
  process.exit(1);
}

const [docPath, serveBinary] = process.argv.slice(2);
const failures = [];
let checked = 0;

// 1. The document itself.
await SwaggerParser.validate(docPath);
const doc = await SwaggerParser.dereference(docPath);
console.log(`${docPath}: valid OpenAPI ${doc.openapi}`);

const ajv = new Ajv.default({strict: false, allErrors: true});
addFormats.default(ajv);
ajv.addFormat('binary', true);
const validators = new Map();
function validate(schema, value) {
  if (!validators.has(schema)) validators.set(schema, ajv.compile(schema));
  const fn = validators.get(schema);
  return fn(value) ? null : ajv.errorsText(fn.errors);
}

// The operation of a concrete path: {template, item} or null.
function findPath(path) {
  for (const [template, item] of Object.entries(doc.paths)) {
    const re = new RegExp('^' + template.replace(/\{[^}]+\}/g, '[^/]+') + '$');
    if (re.test(path)) return {template, item};
  }
  return null;
}

function check(label, method, path, res, body) {
  ++checked;
  const fail = (why) => failures.push(`${label}: ${method} ${path} -> ${res.status}: ${why}`);
  const found = findPath(path.split('?')[0]);
  if (!found) {
    if (res.status !== 404) fail('no such path in the document, yet not 404');
    return;
  }
  const op = found.item[method.toLowerCase()] ||
             (method === 'HEAD' ? found.item.get : undefined);
  if (!op) {
    if (res.status !== 405) fail('method not in the document, yet not 405');
    if (!res.headers.get('allow')) fail('405 without Allow');
    return;
  }
  const declared = op.responses[String(res.status)] || op.responses.default;
  if (!declared) {
    fail(`status not declared (declared: ${Object.keys(op.responses).join(', ')})`);
    return;
  }
  for (const [name, header] of Object.entries(declared.headers || {})) {
    const value = res.headers.get(name);
    if (value === null) {
      if (header.required) fail(`required header ${name} missing`);
      continue;
    }
    const err = header.schema ? validate(header.schema, value) : null;
    if (err) fail(`header ${name} '${value}': ${err}`);
  }
  if (method === 'HEAD') return;
  const content = declared.content;
  if (!content) return;
  const type = (res.headers.get('content-type') || '').split(';')[0].trim();
  const media = content[type];
  if (!media) {
    fail(`content type '${type}' not declared (declared: ${Object.keys(content).join(', ')})`);
    return;
  }
  if (type === 'application/json') {
    let parsed;
    try {
      parsed = JSON.parse(body);
    } catch {
      fail('body is not JSON');
      return;
    }
    const err = media.schema ? validate(media.schema, parsed) : null;
    if (err) fail(`body ${body.slice(0, 200)}: ${err}`);
  }
}

// 2. A real server.
async function send(base, label, method, path, {body, headers = {}} = {}) {
  const res = await fetch(base + path, {method, body, headers});
  const text = await res.text();
  check(label, method, path, res, text);
  return {status: res.status, text, headers: res.headers,
          json: () => { try { return JSON.parse(text); } catch { return null; } }};
}

const json = {'Content-Type': 'application/json'};
const {child, base} = await start(serveBinary);
try {
  const s = (label, method, path, opts) => send(base, label, method, path, opts);
  const name = `openapi-${process.pid}`;
  await s('health', 'GET', '/healthz');
  await s('health HEAD', 'HEAD', '/healthz');
  await s('ready', 'GET', '/readyz');
  await s('metrics', 'GET', '/metrics');
  await s('info', 'GET', '/v1/info');
  await s('ui', 'GET', '/ui');
  await s('ui wrong method', 'POST', '/ui', {body: '{}', headers: json});
  const lease = (await s('acquire', 'POST', `/v1/locks/${name}/acquire`,
                         {body: JSON.stringify({owner: 'a', ttl_ms: 5000}), headers: json})).json();
  await s('acquire held', 'POST', `/v1/locks/${name}/acquire`, {body: '{}', headers: json});
  await s('acquire waits, then held', 'POST', `/v1/locks/${name}/acquire`,
          {body: JSON.stringify({wait_ms: 60}), headers: json});
  await s('acquire bad ttl', 'POST', `/v1/locks/${name}/acquire`,
          {body: JSON.stringify({ttl_ms: 1}), headers: json});
  await s('acquire duplicate key', 'POST', `/v1/locks/${name}/acquire`,
          {body: '{"ttl_ms":1000,"ttl_ms":2000}', headers: json});
  await s('acquire too large', 'POST', `/v1/locks/${name}/acquire`,
          {body: 'x'.repeat(2 << 20), headers: json});
  await s('acquire semaphore', 'POST', `/v1/locks/${name}-sem/acquire`,
          {body: JSON.stringify({limit: 3}), headers: json});
  await s('acquire wrong method', 'GET', `/v1/locks/${name}/acquire`);
  await s('describe', 'GET', `/v1/locks/${name}`);
  await s('describe HEAD', 'HEAD', `/v1/locks/${name}`);
  await s('describe missing', 'GET', `/v1/locks/${name}-never`);
  await s('describe bad name', 'GET', '/v1/locks/.hidden');
  await s('describe wrong method', 'DELETE', `/v1/locks/${name}`);
  await s('list', 'GET', `/v1/locks?prefix=openapi-&limit=10`);
  // A parked acquire shows under "waiters", in the describe and in the list (bounded poll).
  const holder = (await s('acquire for waiters', 'POST', `/v1/locks/${name}-w/acquire`,
                          {body: JSON.stringify({owner: 'h'}), headers: json})).json();
  const parked = s('acquire parked', 'POST', `/v1/locks/${name}-w/acquire`,
                   {body: JSON.stringify({owner: 'w', wait_ms: 10000}), headers: json});
  let waiters = 0;
  for (let i = 0; i < 200 && waiters === 0; ++i) {
    const d = (await s('describe with waiters', 'GET', `/v1/locks/${name}-w`)).json();
    waiters = d && Array.isArray(d.waiters) ? d.waiters.length : 0;
    if (waiters === 0) await new Promise((resolve) => setTimeout(resolve, 10));
  }
  if (waiters !== 1) failures.push(`describe with waiters: ${waiters} waiters, not 1`);
  await s('list with waiters', 'GET', `/v1/locks?prefix=${name}-w`);
  await s('events with waiting', 'GET', `/v1/events?after=0&prefix=${name}-w`);
  // The release hands the lock to the waiter at once (no connection idles for long: the test
  // server's keep-alive is 1 s).
  await s('release to the waiter', 'POST', `/v1/locks/${name}-w/release`,
          {body: JSON.stringify({token: holder.token}), headers: json});
  await parked;
  await s('list bad limit', 'GET', '/v1/locks?limit=0');
  await s('renew', 'POST', `/v1/locks/${name}/renew`,
          {body: JSON.stringify({token: lease.token, ttl_ms: 5000}), headers: json});
  await s('renew lost', 'POST', `/v1/locks/${name}/renew`,
          {body: JSON.stringify({token: lease.token + 1000}), headers: json});
  await s('renew no token', 'POST', `/v1/locks/${name}/renew`, {body: '{}', headers: json});
  await s('release lost', 'POST', `/v1/locks/${name}/release`,
          {body: JSON.stringify({token: lease.token + 1000}), headers: json});
  await s('release bad', 'POST', `/v1/locks/${name}/release`,
          {body: JSON.stringify({token: 0}), headers: json});
  await s('release', 'POST', `/v1/locks/${name}/release`,
          {body: JSON.stringify({token: lease.token}), headers: json});
  await s('events', 'GET', `/v1/events?after=0&prefix=${name}`);
  await s('events long-poll', 'GET', `/v1/events?after=999999&wait_ms=30`);
  await s('events bad after', 'GET', '/v1/events?after=-1');
  await s('events wrong method', 'POST', '/v1/events', {body: '{}', headers: json});
  const victim = (await s('acquire to revoke', 'POST', `/v1/locks/${name}-rv/acquire`,
                          {body: '{}', headers: json})).json();
  await s('revoke', 'POST', `/v1/locks/${name}-rv/revoke`,
          {body: JSON.stringify({token: victim.token}), headers: json});
  await s('revoke again', 'POST', `/v1/locks/${name}-rv/revoke`,
          {body: JSON.stringify({token: victim.token}), headers: json});
  await s('revoke bad', 'POST', `/v1/locks/${name}-rv/revoke`, {body: '{}', headers: json});

  const el = `${name}-el`;
  await s('election never campaigned', 'GET', `/v1/elections/${el}`);
  const lead = (await s('campaign', 'POST', `/v1/elections/${el}/campaign`,
                        {body: JSON.stringify({candidate: 'host-a', ttl_ms: 5000}),
                         headers: json})).json();
  await s('campaign held', 'POST', `/v1/elections/${el}/campaign`,
          {body: JSON.stringify({candidate: 'host-b', wait_ms: 30}), headers: json});
  await s('campaign bad', 'POST', `/v1/elections/${el}/campaign`, {body: '{}', headers: json});
  await s('campaign wrong method', 'GET', `/v1/elections/${el}/campaign`);
  await s('election', 'GET', `/v1/elections/${el}`);
  await s('election HEAD', 'HEAD', `/v1/elections/${el}`);
  await s('elections', 'GET', `/v1/elections?prefix=${name}`);
  await s('elections bad prefix', 'GET', '/v1/elections?prefix=.x');
  await s('election long-poll', 'GET', `/v1/elections/${el}?after_term=${lead.term}&wait_ms=30`);
  await s('election bad after_term', 'GET', `/v1/elections/${el}?after_term=x`);
  await s('election renew', 'POST', `/v1/elections/${el}/renew`,
          {body: JSON.stringify({term: lead.term, ttl_ms: 5000}), headers: json});
  await s('election renew lost', 'POST', `/v1/elections/${el}/renew`,
          {body: JSON.stringify({term: lead.term + 1000}), headers: json});
  await s('resign', 'POST', `/v1/elections/${el}/resign`,
          {body: JSON.stringify({term: lead.term}), headers: json});
  await s('resign lost', 'POST', `/v1/elections/${el}/resign`,
          {body: JSON.stringify({term: lead.term}), headers: json});
  await s('resign bad', 'POST', `/v1/elections/${el}/resign`, {body: '{}', headers: json});

  const key = `${name}-key`;
  await s('fenced put', 'PUT', `/v1/fenced/${key}`, {body: 'v5', headers: {'Fencing-Token': '5'}});
  await s('fenced put stale', 'PUT', `/v1/fenced/${key}`, {body: 'v4', headers: {'Fencing-Token': '4'}});
  await s('fenced put no token', 'PUT', `/v1/fenced/${key}`, {body: 'v'});
  await s('fenced put strict, not a holder', 'PUT', `/v1/fenced/${key}`,
          {body: 'v', headers: {'Fencing-Token': '9', 'Fencing-Lock': name}});
  await s('fenced put too large', 'PUT', `/v1/fenced/${key}`,
          {body: 'x'.repeat(2 << 20), headers: {'Fencing-Token': '9'}});
  await s('fenced get', 'GET', `/v1/fenced/${key}`);
  await s('fenced HEAD', 'HEAD', `/v1/fenced/${key}`);
  await s('fenced read', 'GET', `/v1/fenced/${key}`, {headers: {'Fencing-Token': '6'}});
  await s('fenced read stale', 'GET', `/v1/fenced/${key}`, {headers: {'Fencing-Token': '2'}});
  await s('fenced read bad token', 'GET', `/v1/fenced/${key}`, {headers: {'Fencing-Token': '01'}});
  await s('fenced get missing', 'GET', `/v1/fenced/${key}-never`);
  await s('fenced wrong method', 'POST', `/v1/fenced/${key}`, {body: '{}', headers: json});

  const obj = `${name}-obj`;
  const created = (await s('object create', 'PUT', `/v1/objects/${obj}`,
                           {body: '{"a":1}', headers: {...json, 'If-None-Match': '*'}})).json();
  await s('object exists', 'PUT', `/v1/objects/${obj}`,
          {body: '{"a":2}', headers: {...json, 'If-None-Match': '*'}});
  await s('object update', 'PUT', `/v1/objects/${obj}`,
          {body: '{"a":3}', headers: {...json, 'If-Match': `"${created.version}"`}});
  await s('object no precondition', 'PUT', `/v1/objects/${obj}`, {body: '{}', headers: json});
  await s('object not JSON', 'PUT', `/v1/objects/${obj}`,
          {body: '{', headers: {...json, 'If-Match': '*'}});
  await s('object fenced CAS', 'PUT', `/v1/objects/${obj}`,
          {body: '{"a":4}', headers: {...json, 'If-Match': '*', 'Fencing-Token': '7'}});
  await s('object fenced CAS stale', 'PUT', `/v1/objects/${obj}`,
          {body: '{"a":5}', headers: {...json, 'If-Match': '*', 'Fencing-Token': '3'}});
  await s('object get', 'GET', `/v1/objects/${obj}`);
  await s('object get missing', 'GET', `/v1/objects/${obj}-never`);
  await s('object wrong method', 'PATCH', `/v1/objects/${obj}`, {body: '{}', headers: json});
  await s('no route', 'GET', '/v1/nope');
} finally {
  child.kill('SIGTERM');
}

// 3. With authentication on: 401 and 403.
const dir = mkdtempSync(join(tmpdir(), 'ordo-openapi-'));
const authFile = join(dir, 'auth');
writeFileSync(authFile, 'jobs-token-0123456789 jobs.\n');
const auth = await start(serveBinary, authFile);
try {
  const s = (label, method, path, opts) => send(auth.base, label, method, path, opts);
  const bearer = {Authorization: 'Bearer jobs-token-0123456789'};
  await s('auth: health needs none', 'GET', '/healthz');
  await s('auth: no token', 'POST', '/v1/locks/jobs.a/acquire', {body: '{}', headers: json});
  await s('auth: unknown token', 'GET', '/v1/locks/jobs.a',
          {headers: {Authorization: 'Bearer nope-nope-nope-nope'}});
  await s('auth: outside prefix', 'POST', '/v1/locks/other/acquire',
          {body: '{}', headers: {...json, ...bearer}});
  await s('auth: allowed', 'POST', '/v1/locks/jobs.a/acquire', {body: '{}', headers: {...json, ...bearer}});
  await s('auth: metrics', 'GET', '/metrics');
  await s('auth: revoke without admin', 'POST', '/v1/locks/jobs.a/revoke',
          {body: '{"token":1}', headers: {...json, ...bearer}});
  await s('auth: events outside prefix', 'GET', '/v1/events', {headers: bearer});
} finally {
  auth.child.kill('SIGTERM');
}

for (const f of failures) console.error('FAIL ' + f);
console.log(`${checked - failures.length} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
