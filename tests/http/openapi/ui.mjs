// The operator's page (GET /ui) in a real browser: Debian's chromium, headless, driven by
// playwright-core. Loads /ui against a real server with auth on, acquires from the test and
// sees the row with its token within 1 s, releases and sees it go, revokes through the page
// (refused with a plain token, done with an admin one), sees a parked acquire among the lock's
// waiters, and an election's leader, term and time in office, updated within 1 s of a
// resignation and takeover. Screenshots into OUT_DIR (and README_SCREENSHOT when given).
// Usage: node ui.mjs SERVE_BINARY OUT_DIR [README_SCREENSHOT]
import {startServer} from './serve.mjs';
import {mkdtempSync, writeFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

const [serveBinary, outDir, readmeShot] = process.argv.slice(2);
const plain = 'plain-token-0123456789';
const admin = 'admin-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'ordo-ui-'));
const authFile = join(dir, 'auth');
writeFileSync(authFile, `${plain} *\n${admin} * admin\n`);

async function call(base, path, body, token = plain) {
  const res = await fetch(base + path, {method: 'POST', body: JSON.stringify(body),
    headers: {'Content-Type': 'application/json', Authorization: `Bearer ${token}`}});
  const json = await res.json();
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const {child, base} = await startServer(serveBinary, authFile);
// A fresh profile (--user-data-dir) for every run.
const browser = await chromium.launchPersistentContext(join(dir, 'profile'), {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: {width: 1100, height: 620},
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
const step = (what) => console.log('ok - ' + what);
try {
  const page = await browser.newPage();
  page.on('dialog', (d) => d.accept());  // the revoke button asks for confirmation
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  await page.goto(base + '/ui');
  // Auth is on: the page asks for a token once.
  await page.locator('#token').waitFor({state: 'visible', timeout: 5000});
  await page.fill('#token', plain);
  await page.click('#login button');
  await page.locator('#live.on').waitFor({timeout: 5000});
  step('the page asks for a token and goes live');

  const lease = await call(base, '/v1/locks/deploy/acquire', {owner: 'web-1', ttl_ms: 30000});
  const row = page.locator(`#locks tr[data-name="deploy"][data-token="${lease.token}"]`);
  const t0 = Date.now();
  await row.waitFor({timeout: 1000});
  step(`the row with token ${lease.token} appears in ${Date.now() - t0} ms`);

  await call(base, '/v1/locks/deploy/release', {token: lease.token});
  await row.waitFor({state: 'detached', timeout: 1000});
  step('released: the row goes');

  // A hand-over for the picture: web-1 releases, web-2 takes it; a second lock is held too.
  const first = await call(base, '/v1/locks/deploy/acquire', {owner: 'web-1', ttl_ms: 30000});
  await call(base, '/v1/locks/deploy/release', {token: first.token});
  const second = await call(base, '/v1/locks/deploy/acquire', {owner: 'web-2', ttl_ms: 30000});
  await call(base, '/v1/locks/backup/acquire', {owner: 'db-3', ttl_ms: 20000, limit: 1});
  const held = page.locator(`#locks tr[data-name="deploy"][data-token="${second.token}"]`);
  await held.waitFor({timeout: 1000});

  // Revoke through the page with the plain token: refused (403), the row stays.
  await held.locator('button.revoke').click();
  await page.locator('#message', {hasText: '403'}).waitFor({timeout: 2000});
  if (await held.count() !== 1) throw new Error('a refused revoke removed the row');
  step('revoke with a plain token is refused (403)');

  // With the admin token (kept in sessionStorage only): the holder goes.
  await page.evaluate((t) => sessionStorage.setItem('ordo.token', t), admin);
  await held.locator('button.revoke').click();
  await held.waitFor({state: 'detached', timeout: 2000});
  await page.locator('.ev.revoked').first().waitFor({timeout: 2000});
  step('revoke with an admin token ends the lease; the timeline shows it');
  await call(base, '/v1/locks/deploy/acquire', {owner: 'web-3', ttl_ms: 30000});
  await page.locator('#locks tr[data-name="deploy"]').waitFor({timeout: 1000});

  // A waiting acquire (parked on the server) shows among the lock's waiters within 1 s.
  // Not awaited: it is answered when it gets the lock, or ends with the server.
  const park = (path, body) => fetch(base + path, {method: 'POST', body: JSON.stringify(body),
    headers: {'Content-Type': 'application/json', Authorization: `Bearer ${plain}`}})
    .catch(() => null);
  park('/v1/locks/deploy/acquire', {owner: 'web-4', ttl_ms: 30000, wait_ms: 20000});
  let t1 = Date.now();
  await page.locator('#locks tr[data-name="deploy"] td.waiters', {hasText: '1 waiting: web-4'})
      .waitFor({timeout: 1000});
  step(`a parked acquire shows as a waiter in ${Date.now() - t1} ms`);

  // An election: the leader, its term and how long it has led, within 1 s.
  const won = await call(base, '/v1/elections/scheduler/campaign',
                         {candidate: 'node-a', ttl_ms: 30000});
  t1 = Date.now();
  const leaderRow = page.locator(`#elections tr[data-name="scheduler"][data-term="${won.term}"]`);
  await leaderRow.locator('td.leader', {hasText: 'node-a'}).waitFor({timeout: 1000});
  step(`the election shows leader node-a, term ${won.term} in ${Date.now() - t1} ms`);
  await leaderRow.locator('td.led', {hasText: /^\d+ s$/}).waitFor({timeout: 1000});
  step('and how long it has led');
  // node-b waits; node-a resigns; the page shows node-b and its new term within 1 s.
  park('/v1/elections/scheduler/campaign', {candidate: 'node-b', ttl_ms: 30000, wait_ms: 20000});
  await page.locator('#locks tr[data-name="scheduler"] td.waiters', {hasText: 'node-b'})
      .waitFor({timeout: 1000});
  await call(base, '/v1/elections/scheduler/resign', {term: won.term});
  t1 = Date.now();
  const takeover = page.locator('#elections tr[data-name="scheduler"]');
  await takeover.locator('td.leader', {hasText: 'node-b'}).waitFor({timeout: 1000});
  const term = Number(await takeover.getAttribute('data-term'));
  if (!(term > won.term)) throw new Error(`the new term ${term} is not above ${won.term}`);
  step(`resign and takeover: node-b leads with term ${term}, shown in ${Date.now() - t1} ms`);
  // The clock of "leader for" starts again for the new leader.
  await takeover.locator('td.led', {hasText: /^[0-2] s$/}).waitFor({timeout: 1000});
  await page.locator('#elections tr[data-name="scheduler"] td.led', {hasText: /^[1-9]\d* s$/})
      .waitFor({timeout: 2500});
  step('"leader for" counts up live');
  await page.screenshot({path: join(outDir, 'ui.png'), fullPage: true});
  if (readmeShot) await page.screenshot({path: readmeShot, fullPage: true});
  step(`screenshot: ${join(outDir, 'ui.png')}`);
  if (external.length) throw new Error('the page fetched from elsewhere: ' + external.join(' '));

  // A server without an events ring: the page loads its locks and says it is not live.
  const quiet = await startServer(serveBinary, '', 0);
  try {
    await fetch(quiet.base + '/v1/locks/quiet/acquire', {method: 'POST', body: '{"owner":"q"}'});
    const still = await browser.newPage();
    await still.goto(quiet.base + '/ui');
    await still.locator('#locks tr[data-name="quiet"]').waitFor({timeout: 5000});
    await still.locator('#live.off', {hasText: 'not live'}).waitFor({timeout: 5000});
    step('with --events-ring 0 the page shows the locks and says it is not live');
  } finally {
    quiet.child.kill('SIGTERM');
  }
} catch (err) {
  failed = true;
  console.error('FAIL ' + (err.stack || err));
} finally {
  await browser.close();
  child.kill('SIGTERM');
  rmSync(dir, {recursive: true, force: true});
}
process.exit(failed ? 1 : 0);
