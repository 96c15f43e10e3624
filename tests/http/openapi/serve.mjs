// Starts the test server binary (tests/http/serve_main.cc) on inproc: and a free port, with an
// optional auth file and events-ring size; resolves to {child, base} once it logs its address.
import {spawn} from 'node:child_process';

export function startServer(serveBinary, authFile, eventsRing) {
  return new Promise((resolve, reject) => {
    const args = ['inproc:', '127.0.0.1:0'];
    if (authFile || eventsRing !== undefined) args.push(authFile || '');
    if (eventsRing !== undefined) args.push(String(eventsRing));
    const child = spawn(serveBinary, args, {stdio: ['ignore', 'pipe', 'pipe']});
    let log = '';
    const onData = (chunk) => {
      log += chunk;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
      if (m) resolve({child, base: `http://127.0.0.1:${m[1]}`});
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`server exited ${code}: ${log}`)));
    setTimeout(() => reject(new Error('server did not start: ' + log)), 10000);
  });
}
