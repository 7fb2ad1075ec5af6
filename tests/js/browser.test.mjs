// A real browser: Debian's chromium, headless, loads a page served here that
// uses MQTT.js's browser bundle over ws:// (with allowed_origins set to this
// page's origin), subscribes, publishes, and writes what it receives into the
// DOM; the test reads the DOM over the DevTools protocol (driven with the
// `ws` package, no puppeteer needed). Skipped when chromium is not installed.
// Run: HATO_BIN=build/src/app/hato HATO_BACKEND=epoll node --test browser.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startHato, connect, sleep, end } from './hato.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const chromiumBin = process.env.CHROMIUM || '/usr/bin/chromium';
const skip = existsSync(chromiumBin) ? false : `${chromiumBin} not installed`;

let hato, http, httpPort, wsPort, browser, profile;

const page = (port) => `<!doctype html>
<html><head><meta charset="utf-8"><script src="/mqtt.min.js"></script></head>
<body><pre id="out">loading</pre><script>
const out = document.getElementById('out');
const say = (line) => { out.textContent += '\\n' + line; };
out.textContent = 'started';
const c = mqtt.connect('ws://127.0.0.1:${port}/mqtt', { clientId: 'chromium-' + Date.now(), reconnectPeriod: 0 });
c.on('connect', () => c.subscribe('browser/#', { qos: 1 }, (err) => {
  if (err) return say('subscribe failed ' + err.message);
  say('subscribed');
  c.publish('browser/self', 'hello from chromium', { qos: 1 });
}));
c.on('message', (topic, payload) => say('received ' + topic + ' ' + payload.toString()));
c.on('error', (e) => say('error ' + e.message));
</script></body></html>`;

before(async () => {
  if (skip) return;
  const bundle = readFileSync(join(here, 'node_modules', 'mqtt', 'dist', 'mqtt.min.js'));
  http = createServer((req, res) => {
    if (req.url === '/mqtt.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      return res.end(bundle);
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page(wsPort));
  });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  httpPort = http.address().port;
  hato = await startHato('[[listener]]\naddress = "127.0.0.1"\nport = 0\nprotocol = "websockets"\n' +
    `allowed_origins = ["http://127.0.0.1:${httpPort}"]\n`);
  for (let i = 0; i < 100 && [...hato.log().matchAll(/listening on \S+:\d+/g)].length < 2; i++) await sleep(20);
  wsPort = Number([...hato.log().matchAll(/listening on \S+:(\d+)/g)][1][1]);
});

after(async () => {
  if (browser && browser.exitCode === null) {
    // Its own process group (detached): the renderer and zygote go too.
    const exited = new Promise((r) => browser.once('exit', r));
    try { process.kill(-browser.pid, 'SIGTERM'); } catch {}
    await Promise.race([exited, sleep(5000)]);
    try { process.kill(-browser.pid, 'SIGKILL'); } catch {}
  }
  http?.close();
  await hato?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
});

// Starts chromium with DevTools on a free port; resolves with the page's
// DevTools WebSocket URL.
async function startChromium() {
  profile = mkdtempSync(join(tmpdir(), 'hato-chromium-'));
  browser = spawn(chromiumBin, ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--remote-debugging-port=0', `--user-data-dir=${profile}`, 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let err = '';
  const devtools = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('chromium did not start:\n' + err)), 30000);
    browser.stderr.on('data', (d) => {
      err += d;
      const m = /DevTools listening on ws:\/\/([^/]+)\//.exec(err);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    browser.on('exit', (code) => { clearTimeout(t); reject(new Error(`chromium exited ${code}:\n${err}`)); });
  });
  for (let i = 0; i < 50; i++) {
    const targets = await (await fetch(`http://${devtools}/json/list`)).json();
    const p = targets.find((t) => t.type === 'page');
    if (p) return p.webSocketDebuggerUrl;
    await sleep(100);
  }
  throw new Error('no page target');
}

function cdp(url) {
  return new Promise((resolve, reject) => {
    const sock = new WebSocket(url);
    let next = 1;
    const waiting = new Map();
    sock.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.id && waiting.has(msg.id)) { waiting.get(msg.id)(msg); waiting.delete(msg.id); }
    });
    sock.once('open', () => resolve({
      call: (method, params = {}) => new Promise((r) => { const id = next++; waiting.set(id, r); sock.send(JSON.stringify({ id, method, params })); }),
      close: () => sock.close(),
    }));
    sock.once('error', reject);
  });
}

test('chromium connects over ws, subscribes, publishes and receives', { skip, timeout: 60000 }, async () => {
  const session = await cdp(await startChromium());
  await session.call('Page.navigate', { url: `http://127.0.0.1:${httpPort}/` });
  const dom = async () => (await session.call('Runtime.evaluate', {
    expression: "document.getElementById('out') ? document.getElementById('out').textContent : ''", returnByValue: true,
  })).result?.result?.value ?? '';
  const waitFor = async (text) => {
    for (let i = 0; i < 200; i++) {
      const v = await dom();
      if (v.includes(text)) return v;
      if (/error /.test(v)) break;
      await sleep(50);
    }
    assert.fail(`"${text}" not in the page:\n${await dom()}\n--- broker log ---\n${hato.log().slice(-3000)}`);
  };
  await waitFor('received browser/self hello from chromium');
  // A message from a plain MQTT client reaches the browser too.
  const [pub] = await connect(hato.url, { clientId: 'tcp-to-browser' });
  await pub.publishAsync('browser/tcp', 'hello from tcp', { qos: 1 });
  const text = await waitFor('received browser/tcp hello from tcp');
  assert.match(text, /subscribed/);
  await end(pub);
  session.close();
});
