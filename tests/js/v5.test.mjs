// MQTT 5.0 features of hato, driven by MQTT.js (a second, independent v5
// client beside paho). Run: HATO_BIN=build/src/app/hato node --test
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHato, connect, nextMessage, collect, sleep, end } from './hato.mjs';

let hato;
before(async () => { hato = await startHato('[mqtt]\nresponse_information = "replies/"\n'); });
after(async () => { await hato?.stop(); });

let n = 0;
const id = (p) => `${p}-${process.pid}-${n++}`;

test('CONNACK advertises what hato supports', async () => {
  const [c, ack] = await connect(hato.url, { clientId: '', properties: { requestResponseInformation: true } });
  const p = ack.properties;
  assert.ok(p.assignedClientIdentifier, 'assigned client identifier for an empty id');
  assert.equal(p.responseInformation, 'replies/');
  assert.ok(p.receiveMaximum >= 1);
  assert.ok(p.topicAliasMaximum >= 1);
  assert.notEqual(p.wildcardSubscriptionAvailable, false);
  assert.notEqual(p.sharedSubscriptionAvailable, false);
  assert.notEqual(p.subscriptionIdentifiersAvailable, false);
  await end(c);
});

test('user properties, content type, response topic and correlation data pass unchanged', async () => {
  const [sub] = await connect(hato.url, { clientId: id('s') });
  await sub.subscribeAsync('req/+', { qos: 1 });
  const [pub] = await connect(hato.url, { clientId: id('p') });
  const got = nextMessage(sub);
  await pub.publishAsync('req/1', 'ping', {
    qos: 1,
    properties: {
      responseTopic: 'resp/1', correlationData: Buffer.from([1, 2, 3]), contentType: 'text/plain',
      payloadFormatIndicator: true, userProperties: { a: '1', b: ['2', '3'] },
    },
  });
  const { packet } = await got;
  assert.equal(packet.properties.responseTopic, 'resp/1');
  assert.deepEqual([...packet.properties.correlationData], [1, 2, 3]);
  assert.equal(packet.properties.contentType, 'text/plain');
  assert.equal(packet.properties.payloadFormatIndicator, true);
  assert.deepEqual({ ...packet.properties.userProperties }, { a: '1', b: ['2', '3'] });
  await end(sub); await end(pub);
});

test('subscription identifiers are delivered with matching messages', async () => {
  const [sub] = await connect(hato.url, { clientId: id('s') });
  await sub.subscribeAsync('sid/#', { qos: 0, properties: { subscriptionIdentifier: 7 } });
  await sub.subscribeAsync('sid/+/x', { qos: 0, properties: { subscriptionIdentifier: 9 } });
  const [pub] = await connect(hato.url, { clientId: id('p') });
  const got = nextMessage(sub);
  await pub.publishAsync('sid/a/x', 'm');
  const { packet } = await got;
  const ids = [packet.properties.subscriptionIdentifier].flat().sort();
  assert.deepEqual(ids, [7, 9]);
  await end(sub); await end(pub);
});

test('outbound topic aliases: repeated topics arrive as alias only', async () => {
  const [sub] = await connect(hato.url, { clientId: id('s'), properties: { topicAliasMaximum: 4 } });
  await sub.subscribeAsync('alias/t', { qos: 0 });
  const [pub] = await connect(hato.url, { clientId: id('p') });
  const got = collect(sub, 3);
  for (let i = 0; i < 3; i++) await pub.publishAsync('alias/t', `m${i}`);
  const msgs = await got;
  // MQTT.js resolves the alias back to the topic and keeps the alias property.
  assert.ok(msgs.every((m) => m.topic === 'alias/t'));
  assert.ok(msgs.every((m) => m.packet.properties?.topicAlias >= 1));
  await end(sub); await end(pub);
});

test('inbound topic alias is resolved by the broker', async () => {
  const [sub] = await connect(hato.url, { clientId: id('s') });
  await sub.subscribeAsync('in/alias', { qos: 1 });
  const [pub] = await connect(hato.url, { clientId: id('p') });
  const got = collect(sub, 2);
  await pub.publishAsync('in/alias', 'first', { qos: 1, properties: { topicAlias: 1 } });
  await pub.publishAsync('', 'second', { qos: 1, properties: { topicAlias: 1 } });
  const msgs = await got;
  assert.deepEqual(msgs.map((m) => [m.topic, m.payload.toString()]), [['in/alias', 'first'], ['in/alias', 'second']]);
  await end(sub); await end(pub);
});

test('no local, retain as published, retain handling 2', async () => {
  const [c] = await connect(hato.url, { clientId: id('c') });
  const [pub] = await connect(hato.url, { clientId: id('p') });
  await pub.publishAsync('ret/x', 'kept', { qos: 1, retain: true });
  // rh 2: no retained message on subscribe; rap: retain flag kept on live delivery; nl: own messages not echoed
  await c.subscribeAsync('ret/x', { qos: 1, rh: 2, rap: true, nl: true });
  const got = nextMessage(c, 3000);
  await c.publishAsync('ret/x', 'own', { qos: 1 });
  await pub.publishAsync('ret/x', 'live', { qos: 1, retain: true });
  const m = await got;
  assert.equal(m.payload.toString(), 'live');
  assert.equal(m.packet.retain, true);
  await pub.publishAsync('ret/x', '', { qos: 1, retain: true });
  await end(c); await end(pub);
});

test('shared subscription: each message to one member, round robin', async () => {
  const [a] = await connect(hato.url, { clientId: id('a') });
  const [b] = await connect(hato.url, { clientId: id('b') });
  await a.subscribeAsync('$share/g/work/#', { qos: 1 });
  await b.subscribeAsync('$share/g/work/#', { qos: 1 });
  const counts = { a: 0, b: 0 };
  a.on('message', () => counts.a++);
  b.on('message', () => counts.b++);
  const [pub] = await connect(hato.url, { clientId: id('p') });
  for (let i = 0; i < 10; i++) await pub.publishAsync('work/job', `${i}`, { qos: 1 });
  await sleep(500);
  assert.equal(counts.a + counts.b, 10);
  assert.equal(counts.a, 5);
  await end(a); await end(b); await end(pub);
});

test('message expiry: an expired message is not delivered from the offline queue', async () => {
  const cid = id('off');
  const [s] = await connect(hato.url, { clientId: cid, clean: false, properties: { sessionExpiryInterval: 60 } });
  await s.subscribeAsync('exp/#', { qos: 1 });
  await end(s);
  const [pub] = await connect(hato.url, { clientId: id('p') });
  await pub.publishAsync('exp/short', 'gone', { qos: 1, properties: { messageExpiryInterval: 1 } });
  await pub.publishAsync('exp/long', 'kept', { qos: 1, properties: { messageExpiryInterval: 100 } });
  await sleep(2200);
  const [s2, ack] = await connect(hato.url, { clientId: cid, clean: false, properties: { sessionExpiryInterval: 60 } });
  assert.equal(ack.sessionPresent, true);
  const m = await nextMessage(s2);
  assert.equal(m.topic, 'exp/long');
  assert.ok(m.packet.properties.messageExpiryInterval <= 98, 'the remaining interval is forwarded');
  await end(s2); await end(pub);
});

test('session expiry: an expired session is gone', async () => {
  const cid = id('exp');
  const [s] = await connect(hato.url, { clientId: cid, clean: false, properties: { sessionExpiryInterval: 1 } });
  await s.subscribeAsync('x/y', { qos: 1 });
  await end(s);
  await sleep(2500);
  const [s2, ack] = await connect(hato.url, { clientId: cid, clean: false, properties: { sessionExpiryInterval: 1 } });
  assert.equal(ack.sessionPresent, false);
  await end(s2);
});
