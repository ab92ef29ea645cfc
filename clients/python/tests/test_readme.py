"""The READMEs' Python examples run as printed, in order, against a server with the module.

Every ```python block of clients/python/README.md and of the main README.md runs in a fresh
namespace, from the repository's root, after FLUSHALL and FUNCTION FLUSH; the examples'
``Redis()`` (localhost:6379) is pointed at the test server. ```py blocks (the seeds' hand-written
code, shown for comparison) are not run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, List, Tuple

import pytest
import redis.asyncio.connection
import redis.connection

from .servers import REPO, Server

READMES = [REPO / "clients/python/README.md", REPO / "README.md"]


def python_blocks(path: Path) -> List[Tuple[str, str]]:
    text = path.read_text()
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)
    return [(f"{path.relative_to(REPO)}#{i + 1}", code) for i, code in enumerate(blocks)]


EXAMPLES = [example for readme in READMES for example in python_blocks(readme)]


def point_default_port_at(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    for cls in (redis.connection.Connection, redis.asyncio.connection.Connection):
        original = cls.__init__

        def init(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> None:
            if kwargs.get("port", 6379) == 6379:
                kwargs["port"] = port
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", init)


def test_both_readmes_have_examples() -> None:
    assert len(python_blocks(READMES[0])) >= 8
    assert len(python_blocks(READMES[1])) >= 2


@pytest.mark.parametrize("name,code", EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_readme_example(
    name: str, code: str, servers: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: Server = servers["redis-module"]
    with server.client() as r:
        r.flushall()
        r.function_flush()
    point_default_port_at(monkeypatch, server.port)
    monkeypatch.chdir(REPO)
    exec(compile(code, name, "exec"), {"__name__": "__readme__"})
