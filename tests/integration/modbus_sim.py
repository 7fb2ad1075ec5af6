"""A simulated PLC for the Modbus tests: pymodbus 3.0's TCP or RTU server
with 0-based tables, driven by commands on stdin (one per line, answer on
stdout):
  set <h|i|c|d> <address> <value>...   ok
  get <h|i|c|d> <address> <count>     the values, space-separated
  counts                               JSON {"<fc>": requests}   (reads and writes)
  reset                                ok   (counts to zero)
  delay <ms>                           ok   (every answer that much later)
set, get and delay act on unit 1, or on unit 2 when prefixed "@2 " (an
RS-485 line with two devices; any other unit id gets no answer); delay
without a prefix acts on both.
Usage: modbus_sim.py tcp <port> | rtu <device>"""

import asyncio
import logging
import json
import sys
import threading
import time

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
from pymodbus.transaction import ModbusRtuFramer

SIZE = 2000
counts = {}
lock = threading.Lock()


class Counting(ModbusSlaveContext):
    delay = 0.0   # seconds this unit takes to answer

    def getValues(self, fc_as_hex, address, count=1):
        with lock:
            counts[str(fc_as_hex)] = counts.get(str(fc_as_hex), 0) + 1
            d = self.delay
        if d:
            time.sleep(d)
        with lock:
            return super().getValues(fc_as_hex, address, count)

    def setValues(self, fc_as_hex, address, values):
        with lock:
            if fc_as_hex in (5, 6, 15, 16):
                counts[str(fc_as_hex)] = counts.get(str(fc_as_hex), 0) + 1
            super().setValues(fc_as_hex, address, values)


def block():
    return ModbusSequentialDataBlock(0, [0] * SIZE)


units = {u: Counting(di=block(), co=block(), hr=block(), ir=block(), zero_mode=True) for u in (1, 2)}
context = ModbusServerContext(slaves=units, single=False)
FC = {"c": 1, "d": 2, "h": 3, "i": 4}


def commands():
    for line in sys.stdin:
        words = line.split()
        store, chosen = units[1], list(units.values())
        if words and words[0].startswith("@"):
            store = units[int(words[0][1:])]
            chosen = [store]
            words = words[1:]
        if not words:
            continue
        if words[0] == "set":
            vals = [int(v) for v in words[3:]]
            with lock:
                store.store[store.decode(FC[words[1]])].setValues(int(words[2]), vals)
            out = "ok"
        elif words[0] == "get":
            with lock:
                vals = store.store[store.decode(FC[words[1]])].getValues(int(words[2]), int(words[3]))
            out = " ".join(str(int(v)) for v in vals)
        elif words[0] == "counts":
            with lock:
                out = json.dumps(counts)
        elif words[0] == "reset":
            with lock:
                counts.clear()
            out = "ok"
        elif words[0] == "delay":
            for u in chosen:
                u.delay = int(words[1]) / 1000.0
            out = "ok"
        else:
            out = "?"
        print(out, flush=True)


async def main():
    logging.disable(logging.CRITICAL)
    threading.Thread(target=commands, daemon=True).start()
    if sys.argv[1] == "tcp":
        server = await StartAsyncTcpServer(context=context, address=("127.0.0.1", int(sys.argv[2])),
                                           defer_start=True, allow_reuse_address=True)
        task = asyncio.create_task(server.serve_forever())
        await server.serving
    else:
        server = await StartAsyncSerialServer(context=context, framer=ModbusRtuFramer, port=sys.argv[2],
                                              baudrate=19200, bytesize=8, parity="N", stopbits=1,
                                              defer_start=True)
        await server.start()
    print("ready", flush=True)
    while True:
        await asyncio.sleep(3600)


asyncio.run(main())
