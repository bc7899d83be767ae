"""Print what lifenet needs installed, one requirement a line, from ``pyproject.toml``:
its dependencies and its build system's (``scripts/docker-build`` fetches their wheels).

    python3 scripts/requirements.py pyproject.toml
"""

from __future__ import annotations

import sys
import tomllib


def requirements(path: str) -> list[str]:
    with open(path, "rb") as f:
        project = tomllib.load(f)
    return [*project["project"]["dependencies"], *project["build-system"]["requires"]]


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1])))
