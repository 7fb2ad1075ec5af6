#!/usr/bin/env python3
"""The layering the compiler enforces (docs/architecture.md, "Layers").

For each layer, take the exact compile command the build uses for one of
that layer's sources (compile_commands.json) and compile a one-line file
that includes a header of another layer: the layers it declares must be
found, all others must not. A header the layer may not use failing to be
found is what makes a wrong-way include in src/ a build error; this check
keeps the include roots (src/include) and meson dependencies honest.
"""
import json
import os
import shlex
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

# layer: (a source file of its library, headers it may include, headers it may not)
LAYERS = {
    "mqtt": ("src/mqtt/decode.cpp", ["mqtt/codec.hpp"],
             ["store/log.hpp", "net/reactor.hpp", "broker/broker.hpp", "src/broker/broker.hpp"]),
    "store": ("src/store/log.cpp", ["store/log.hpp"],
              ["mqtt/packet.hpp", "broker/state_records.hpp", "net/reactor.hpp"]),
    "net": ("src/net/reactor.cpp", ["net/reactor.hpp", "hato_build.h"],
            ["mqtt/codec.hpp", "store/log.hpp", "broker/broker.hpp", "src/broker/broker.hpp"]),
    "broker": ("src/broker/broker.cpp", ["broker/message.hpp", "mqtt/codec.hpp", "store/log.hpp"],
               ["net/reactor.hpp", "auth/acl.hpp", "config/config.hpp", "bridge/link.hpp", "app/server.hpp"]),
    "bridge": ("src/bridge/link.cpp", ["bridge/link.hpp", "mqtt/codec.hpp"],
               ["broker/broker.hpp", "net/reactor.hpp", "store/log.hpp"]),
    "modbus": ("src/modbus/codec.cpp", ["modbus/codec.hpp"],
               ["mqtt/codec.hpp", "broker/broker.hpp", "net/reactor.hpp", "store/log.hpp", "config/config.hpp"]),
    "auth": ("src/auth/authenticator.cpp", ["auth/acl.hpp", "broker/auth.hpp", "mqtt/packet.hpp"],
             ["broker/broker_impl.hpp", "broker/client_state.hpp", "config/config.hpp", "net/tls.hpp"]),
    "config": ("src/config/config.cpp", ["config/config.hpp", "broker/config.hpp", "store/log.hpp"],
               ["broker/broker_impl.hpp", "net/reactor.hpp", "auth/acl.hpp", "app/server.hpp", "bridge/link.hpp"]),
    "app": ("src/app/main.cpp", ["app/log.hpp", "broker/broker.hpp", "net/reactor.hpp", "auth/acl.hpp",
                                 "config/config.hpp", "bridge/link.hpp"],
            ["broker/broker_impl.hpp", "broker/client_state.hpp"]),
}


def command_for(entries, source):
    for e in entries:
        path = os.path.normpath(os.path.join(e["directory"], e["file"]))
        if path.endswith(os.sep + source):
            return e["directory"], shlex.split(e["command"])
    return None, None


def syntax_only(argv, tmp):
    """The build's command for a source, turned into a syntax check of tmp."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MQ", "-MF", "-c"):
            skip = True
            continue
        if a == "-MD":
            continue
        out.append(a)
    return out + ["-fsyntax-only", "-c", tmp]


def main():
    build = sys.argv[1]
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = json.load(f)
    cases = []
    failures = []
    for layer, (source, allowed, forbidden) in LAYERS.items():
        cwd, argv = command_for(entries, source)
        if argv is None:
            failures.append(f"{layer}: no compile command for {source}")
            continue
        cases += [(layer, cwd, argv, h, True) for h in allowed] + [(layer, cwd, argv, h, False) for h in forbidden]
    with tempfile.TemporaryDirectory() as d:
        def probe(i_case):
            i, (layer, cwd, argv, header, want) = i_case
            tmp = os.path.join(d, f"layering_probe_{i}.cpp")
            with open(tmp, "w") as f:
                f.write(f'#include "{header}"\n')
            r = subprocess.run(syntax_only(argv, tmp), cwd=cwd, capture_output=True, text=True)
            return layer, header, want, r

        with ThreadPoolExecutor(max_workers=2) as pool:
            for layer, header, want, r in pool.map(probe, enumerate(cases)):
                ok = r.returncode == 0
                if not ok and want:
                    failures.append(f"{layer} cannot include {header}:\n{r.stderr[-600:]}")
                elif ok and not want:
                    failures.append(f"{layer} can include {header} (a wrong-way include would build)")
                elif not want and "No such file" not in r.stderr:
                    failures.append(f"{layer} including {header} failed for another reason:\n{r.stderr[-600:]}")
                else:
                    print(f"ok  {layer:7} {'may' if want else 'may not':7} include {header}")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
