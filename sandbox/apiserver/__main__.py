"""``python -m sandbox.apiserver``: the emulator as a process, as ``sandbox up`` starts it.

Reads an :class:`EmulatorConfig` (JSON or YAML), serves it on ``--host``/``--port`` (0 picks a
free port), writes the bound port to ``--port-file`` once it is listening, and runs until SIGTERM
or SIGINT, on which it ends its watches and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from sandbox.apiserver import app, fieldcheck
from sandbox.apiserver.config import EmulatorConfig
from sandbox.apiserver.emulator import Emulator


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox.apiserver", description=__doc__)
    parser.add_argument("--config", type=Path, help="EmulatorConfig file (JSON or YAML); none: no clusters")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="where to write the bound port once listening")
    return parser.parse_args(argv)


async def _serve(config: EmulatorConfig, host: str, port: int, port_file: Path | None) -> None:
    running = await app.start(Emulator(config), host, port)
    fieldcheck.warm_up()
    if port_file is not None:
        temporary = port_file.with_name(port_file.name + ".tmp")
        temporary.write_text(f"{running.port}\n", encoding="utf-8")
        temporary.replace(port_file)
    names = ", ".join(config.clusters[i].name for i in range(len(config.clusters))) or "no clusters"
    sys.stderr.write(f"kubernetes emulator serving {names} on http://{host}:{running.port}\n")
    sys.stderr.flush()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await app.stop(running)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until signalled; 2 for an unusable configuration."""
    args = _parse(argv)
    try:
        raw = yaml.safe_load(args.config.read_text(encoding="utf-8")) if args.config else {}
        config = EmulatorConfig.model_validate(raw or {})
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        sys.stderr.write(f"cannot use the emulator configuration: {exc}\n")
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, args.host, args.port, args.port_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
