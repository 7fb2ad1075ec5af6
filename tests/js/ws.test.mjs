// MQTT over WebSockets (ws and wss), driven by MQTT.js at v3.1.1 and v5,
// plus raw frames through the `ws` package (MQTT.js's own WebSocket
// dependency): a packet split across frames and several packets in one frame.
// Run: HATO_BIN=build/src/app/hato HATO_BACKEND=epoll node --test ws.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startHato, connect, nextMessage, sleep, end } from './hato.mjs';

const here = dirname(fileURLToPath(import.meta.url));
let hato;
let certs;
let ca;
const urls = {};

before(async () => {
  certs = mkdtempSync(join(tmpdir(), 'hato-ws-certs-'));
  const made = spawnSync('bash', [join(here, '..', 'certs', 'make-certs.sh'), certs], { stdio: 'inherit' });
  assert.equal(made.status, 0, 'make-certs.sh failed');
  ca = readFileSync(join(certs, 'ca.crt'));
  hato = await startHato(
    '[[listener]]\naddress = "127.0.0.1"\nport = 0\nprotocol = "websockets"\n' +
    `[[listener]]\naddress = "127.0.0.1"\nport = 0\nprotocol = "websockets"\npath = "/mqtt"\n` +
    `tls = { cert = "${certs}/server.crt", key = "${certs}/server.key" }\n`);
  // Listeners log in order: the plain MQTT one of startHato, ws, wss.
  for (let i = 0; i < 100 && [...hato.log().matchAll(/listening on \S+:\d+/g)].length < 3; i++) await sleep(20);
  const ports = [...hato.log().matchAll(/listening on \S+:(\d+)(.*)/g)];
  assert.equal(ports.length, 3, hato.log());
  assert.match(ports[1][2], /WebSockets/);
  assert.match(ports[2][2], /TLS.*WebSockets/);
  urls.ws = `ws://127.0.0.1:${ports[1][1]}/mqtt`;
  urls.wss = `wss://127.0.0.1:${ports[2][1]}/mqtt`;
});

after(async () => {
  await hato?.stop();
  if (certs) rmSync(certs, { recursive: true, force: true });
});

let n = 0;
const id = (p) => `${p}-${process.pid}-${n++}`;

for (const scheme of ['ws', 'wss']) {
  for (const protocolVersion of [4, 5]) {
    const name = `${scheme} v${protocolVersion === 4 ? '3.1.1' : '5'}`;
    const opts = (clientId, more = {}) => ({ clientId, protocolVersion, ...(scheme === 'wss' ? { ca } : {}), ...more });

    test(`${name}: publish and subscribe at QoS 0, 1 and 2`, async () => {
      const [sub] = await connect(urls[scheme], opts(id('s')));
      await sub.subscribeAsync('ws/qos/#', { qos: 2 });
      const [pub] = await connect(urls[scheme], opts(id('p')));
      for (const qos of [0, 1, 2]) {
        const got = nextMessage(sub);
        await pub.publishAsync(`ws/qos/${qos}`, `m${qos}`, { qos });
        const { topic, payload, packet } = await got;
        assert.equal(topic, `ws/qos/${qos}`);
        assert.equal(payload.toString(), `m${qos}`);
        assert.equal(packet.qos, qos);
      }
      // A large message: many frames' worth of one MQTT packet (64-bit length).
      const big = Buffer.alloc(100000, 0x61);
      const got = nextMessage(sub);
      await pub.publishAsync('ws/qos/big', big, { qos: 1 });
      assert.equal((await got).payload.length, big.length);
      await end(sub); await end(pub);
    });

    test(`${name}: retained messages`, async () => {
      const topic = `ws/retained/${id('t')}`;
      const [pub] = await connect(urls[scheme], opts(id('p')));
      await pub.publishAsync(topic, 'kept', { qos: 1, retain: true });
      const [sub] = await connect(urls[scheme], opts(id('s')));
      const got = nextMessage(sub);
      await sub.subscribeAsync(topic, { qos: 1 });
      const { payload, packet } = await got;
      assert.equal(payload.toString(), 'kept');
      assert.equal(packet.retain, true);
      await pub.publishAsync(topic, '', { qos: 1, retain: true });  // clears it
      await end(sub); await end(pub);
    });

    test(`${name}: the will is published when the connection drops`, async () => {
      const topic = `ws/will/${id('t')}`;
      const [sub] = await connect(urls[scheme], opts(id('s')));
      await sub.subscribeAsync(topic, { qos: 1 });
      const [dying] = await connect(urls[scheme], opts(id('d'), { will: { topic, payload: Buffer.from('gone'), qos: 1 } }));
      const got = nextMessage(sub);
      dying.stream.destroy();  // no DISCONNECT: the TCP connection just ends
      const { payload } = await got;
      assert.equal(payload.toString(), 'gone');
      dying.end(true);
      await end(sub);
    });
  }
}

// MQTT 3.1.1 packets, by hand.
const connectPacket = (clientId) => {
  const cid = Buffer.from(clientId);
  const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 60, 0, cid.length]), cid]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
};
const subscribePacket = (topic) => {
  const t = Buffer.from(topic);
  const body = Buffer.concat([Buffer.from([0, 1, 0, t.length]), t, Buffer.from([0])]);
  return Buffer.concat([Buffer.from([0x82, body.length]), body]);
};
const publishPacket = (topic, payload) => {
  const t = Buffer.from(topic);
  const body = Buffer.concat([Buffer.from([0, t.length]), t, Buffer.from(payload)]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
};

function openRaw(url) {
  return new Promise((resolve, reject) => {
    const sock = new WebSocket(url, ['mqtt'], { ca });
    sock.binaryType = 'nodebuffer';
    sock.received = Buffer.alloc(0);
    sock.on('message', (data, isBinary) => {
      assert.equal(isBinary, true, 'the broker sends binary frames only');
      sock.received = Buffer.concat([sock.received, data]);
      sock.emit('bytes');
    });
    sock.once('open', () => resolve(sock));
    sock.once('error', reject);
  });
}

function waitBytes(sock, count, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`got ${sock.received.length} of ${count} bytes`)), ms);
    const check = () => {
      if (sock.received.length >= count) { clearTimeout(t); sock.off('bytes', check); resolve(sock.received); }
    };
    sock.on('bytes', check);
    check();
  });
}

for (const scheme of ['ws', 'wss']) {
  test(`${scheme}: a packet split across frames, several packets in one frame, fragments and ping`, async () => {
    const sock = await openRaw(urls[scheme]);
    assert.equal(sock.protocol, 'mqtt');
    const c = connectPacket(id('raw'));
    // CONNECT in two frames; the first cut inside the fixed header.
    sock.send(c.subarray(0, 1), { binary: true });
    sock.send(c.subarray(1), { binary: true });
    await waitBytes(sock, 4);
    assert.deepEqual([...sock.received.subarray(0, 4)], [0x20, 2, 0, 0]);
    sock.received = Buffer.alloc(0);
    // SUBSCRIBE and a PUBLISH to it in one frame.
    const topic = `raw/${id('t')}`;
    sock.send(Buffer.concat([subscribePacket(topic), publishPacket(topic, 'both')]), { binary: true });
    const pub = publishPacket(topic, 'both');
    const all = await waitBytes(sock, 5 + pub.length);
    assert.deepEqual([...all.subarray(0, 5)], [0x90, 3, 0, 1, 0]);
    assert.deepEqual(all.subarray(5, 5 + pub.length), pub);
    sock.received = Buffer.alloc(0);
    // One PUBLISH as a fragmented message (three frames), a ping between.
    const p2 = publishPacket(topic, 'fragmented');
    sock.send(p2.subarray(0, 3), { binary: true, fin: false });
    const pong = new Promise((r) => sock.once('pong', (data) => r(data.toString())));
    sock.ping('are you there');
    sock.send(p2.subarray(3, 6), { binary: true, fin: false });
    sock.send(p2.subarray(6), { binary: true, fin: true });
    assert.equal(await pong, 'are you there');
    assert.deepEqual(await waitBytes(sock, p2.length), p2);
    // The close handshake: our code comes back.
    const closed = new Promise((r) => sock.once('close', (code) => r(code)));
    sock.close(1000);
    assert.equal(await closed, 1000);
  });
}

test('the upgrade is refused for other paths (404) and without the mqtt subprotocol', async () => {
  const refused = (url, protocols) => new Promise((resolve) => {
    const sock = new WebSocket(url, protocols);
    sock.once('unexpected-response', (req, res) => { resolve(res.statusCode); req.destroy(); });
    sock.once('open', () => { sock.terminate(); resolve('open'); });
    sock.once('error', () => resolve('error'));
  });
  assert.equal(await refused(urls.ws.replace('/mqtt', '/other'), ['mqtt']), 404);
  assert.equal(await refused(urls.ws, ['chat']), 400);
});
