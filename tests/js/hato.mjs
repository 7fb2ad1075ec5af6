// Starts the real hato binary for a test: free port, temp data dir, the
// backend from HATO_BACKEND. Resolves once it logs "listening on".
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';

export async function startHato(toml = '') {
  const bin = process.env.HATO_BIN;
  if (!bin) throw new Error('HATO_BIN is not set');
  const dir = mkdtempSync(join(tmpdir(), 'hato-js-'));
  const conf = join(dir, 'hato.toml');
  writeFileSync(conf, `[[listener]]\naddress = "127.0.0.1"\nport = 0\n[storage]\ndir = "${dir}/data"\nsync = "off"\n[log]\nlevel = "debug"\n${toml}\n`);
  const proc = spawn(bin, ['-c', conf, '--backend', process.env.HATO_BACKEND || 'epoll'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('hato did not start:\n' + log)), 10000);
    proc.stderr.on('data', (d) => {
      log += d;
      const m = /listening on (\S+):(\d+)/.exec(log);
      if (m) { clearTimeout(timer); resolve(Number(m[2])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`hato exited ${code}:\n${log}`)); });
  });
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    log: () => log,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => { if (proc.exitCode !== null) r(); else proc.on('exit', r); setTimeout(r, 5000); });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Connects an MQTT 5 client and resolves with [client, connack].
// Messages that arrive with the CONNACK (a persistent session's queue) are
// kept in client.early until a test takes them.
export function connect(url, opts = {}) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    c.early = [];
    const keep = (topic, payload, packet) => c.early.push({ topic, payload, packet });
    c.on('message', keep);
    c.once('connect', (ack) => setImmediate(() => { c.off('message', keep); resolve([c, ack]); }));
    c.once('error', reject);
  });
}

export function nextMessage(client, ms = 5000) {
  if (client.early?.length) return Promise.resolve(client.early.shift());
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no message within ' + ms + ' ms')), ms);
    client.once('message', (topic, payload, packet) => { clearTimeout(t); resolve({ topic, payload, packet }); });
  });
}

export function collect(client, n, ms = 5000) {
  return new Promise((resolve, reject) => {
    const got = [];
    const t = setTimeout(() => reject(new Error(`got ${got.length} of ${n} messages`)), ms);
    const on = (topic, payload, packet) => {
      got.push({ topic, payload, packet });
      if (got.length === n) { clearTimeout(t); client.off('message', on); resolve(got); }
    };
    client.on('message', on);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const end = (c) => new Promise((r) => c.end(false, {}, r));
