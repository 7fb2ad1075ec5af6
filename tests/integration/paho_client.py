# A thin synchronous wrapper over paho-mqtt 1.6.1: every operation waits
# (bounded) for the broker's answer, received messages land in a queue.

import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

WAIT = 10.0  # seconds per wait: generous for a loaded 2-core CI machine

V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5
VERSIONS = [V311, V5]
VERSION_IDS = ["v311", "v5"]


def props(packet_type, **values):
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


def publish_props(**values):
    return props(PacketTypes.PUBLISH, **values)


class Client:
    def __init__(self, broker, client_id="", version=V311, clean=True, session_expiry=None,
                 keepalive=60, will=None, connect_props=None, max_inflight=20, auto_connect=True):
        self.broker = broker
        self.version = version
        self.clean = clean
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        self.connect_props = connect_props
        kw = {"protocol": version, "reconnect_on_failure": False}
        if version != V5:
            kw["clean_session"] = clean
        self.paho = mqtt.Client(client_id=client_id, **kw)
        self.paho.max_inflight_messages_set(max_inflight)
        self.paho.max_queued_messages_set(0)
        if will is not None:
            self.paho.will_set(**will)
        self.messages = queue.Queue()
        self.connack = None            # (flags, reason, properties)
        self.disconnects = queue.Queue()  # reason codes of on_disconnect
        self._connected = threading.Event()
        self._acks = {}
        self._lock = threading.Lock()
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_message = lambda c, u, m: self.messages.put(m)
        self.paho.on_subscribe = self._on_ack
        self.paho.on_unsubscribe = self._on_ack
        if auto_connect:
            self.connect()

    # -- callbacks (paho's thread) ----------------------------------------
    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connack = (flags, rc, properties)
        if rc == 0:
            self._connected.set()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnects.put(rc)
        self._connected.clear()

    def _on_ack(self, client, userdata, mid, *rest):
        with self._lock:
            ev = self._acks.setdefault(mid, [threading.Event(), None])
            ev[1] = rest
            ev[0].set()

    def _wait_ack(self, mid):
        with self._lock:
            ev = self._acks.setdefault(mid, [threading.Event(), None])
        assert ev[0].wait(WAIT), f"no SUBACK/UNSUBACK for mid {mid} within {WAIT}s"
        return ev[1]

    # -- operations --------------------------------------------------------
    def connect(self, clean=None):
        if clean is not None:
            self.clean = clean
            if self.version != V5:
                self.paho._clean_session = clean   # paho fixes it at construction
        self._connected.clear()
        self.connack = None
        kw = {}
        if self.version == V5:
            kw["clean_start"] = self.clean
            p = self.connect_props or props(PacketTypes.CONNECT)
            if self.session_expiry is not None:
                p.SessionExpiryInterval = self.session_expiry
            kw["properties"] = p
        self.paho.connect(self.broker.host, self.broker.port, self.keepalive, **kw)
        self.paho.loop_start()
        deadline = time.monotonic() + WAIT
        while self.connack is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.connack is not None, f"no CONNACK within {WAIT}s"
        rc = self.connack[1]
        assert rc == 0, f"connection refused: {rc}"
        return self.connack

    @property
    def session_present(self):
        return bool(self.connack[0].get("session present"))

    def subscribe(self, topic, qos=0, options=None, properties=None):
        if self.version == V5:
            options = options or SubscribeOptions(qos=qos)
            rc, mid = self.paho.subscribe(topic, options=options, properties=properties)
        else:
            rc, mid = self.paho.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        granted = self._wait_ack(mid)
        return granted

    def unsubscribe(self, topic):
        rc, mid = self.paho.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        return self._wait_ack(mid)

    def publish(self, topic, payload, qos=0, retain=False, properties=None, wait=True):
        info = self.paho.publish(topic, payload, qos, retain, properties=properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish failed: {info.rc}"
        if wait:
            info.wait_for_publish(WAIT)
            assert info.is_published(), f"publish of {topic!r} qos {qos} not acknowledged within {WAIT}s"
        return info

    def expect(self, n=1, timeout=WAIT):
        """The next message, or a list of the next n (n > 1) in arrival order."""
        got = self.expect_list(n, timeout)
        return got if n != 1 else got[0]

    def expect_list(self, n, timeout=WAIT):
        """The next n messages, in arrival order."""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            left = deadline - time.monotonic()
            try:
                got.append(self.messages.get(timeout=max(left, 0.001)))
            except queue.Empty:
                raise AssertionError(f"expected {n} messages, got {len(got)}: "
                                     f"{[(m.topic, m.payload) for m in got]}")
        return got

    def expect_none(self, quiet=0.7):
        """No message arrives within `quiet` seconds."""
        try:
            m = self.messages.get(timeout=quiet)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message {m.topic!r} {m.payload!r}")

    def wait_disconnect(self, timeout=WAIT):
        try:
            return self.disconnects.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"not disconnected within {timeout}s")

    def disconnect(self):
        """Normal DISCONNECT."""
        # our own flag: paho's is_connected() stays true after a lost connection
        if self._connected.is_set():
            self.paho.disconnect()
            try:
                self.disconnects.get(timeout=WAIT)
            except queue.Empty:
                pass
        self.paho.loop_stop()

    def drop(self):
        """Abrupt close: the network connection dies without DISCONNECT."""
        self.paho.loop_stop()
        sock = self.paho.socket()
        if sock is not None:
            try:
                sock.shutdown(2)
            except OSError:
                pass
            sock.close()

    def close(self):
        try:
            self.disconnect()
        except Exception:
            self.drop()


class Clients:
    """Collects clients made in a test so they are all closed at its end."""

    def __init__(self, default_broker):
        self.default_broker = default_broker  # callable: the test's default broker
        self.made = []

    def __call__(self, *args, broker=None, **kw):
        connect = kw.pop("auto_connect", True)
        c = Client(broker or self.default_broker(), *args, auto_connect=False, **kw)
        self.made.append(c)
        if connect:
            c.connect()
        return c

    def close_all(self):
        for c in self.made:
            try:
                c.close()
            except Exception:
                pass
