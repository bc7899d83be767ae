"""The mirror (and its keyring) of the first apt source that serves a Debian suite.

``scripts/docker-base`` runs this with the machine's own ``python3`` (standard library
only) to build a base image from the apt mirror this machine already uses. It reads
one-line sources (``/etc/apt/sources.list``, ``*.list``) and deb822 sources
(``*.sources``) alike and prints ``URI KEYRING`` (``-`` for no keyring) of the first
that serves SUITE, or nothing.

    python3 scripts/apt_source.py bookworm

(Any python3 from 3.9 on: the host's, not the project's venv.)
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path

Entry = tuple[str, list[str], str]  # uri, suites, signed-by keyring


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def one_line_entries(paths: list[str]) -> list[Entry]:
    """``deb [options] URI SUITE COMPONENTS...`` lines."""
    entries = []
    for path in paths:
        text = _read(path)
        if text is None:
            continue
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            signed = ""
            if words and words[0].startswith("["):
                options = []
                while words:
                    options.append(words.pop(0))
                    if options[-1].endswith("]"):
                        break
                for option in " ".join(options).strip("[]").split():
                    if option.startswith("signed-by="):
                        signed = option.split("=", 1)[1]
            if len(words) >= 2:
                entries.append((words[0], [words[1]], signed))
    return entries


def deb822_entries(paths: list[str]) -> list[Entry]:
    """``Types: deb`` / ``URIs:`` / ``Suites:`` / ``Signed-By:`` stanzas."""
    entries = []
    for path in paths:
        text = _read(path)
        if text is None:
            continue
        for stanza in text.split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
                continue
            for uri in fields.get("uris", "").split():
                entries.append((uri, fields.get("suites", "").split(),
                                fields.get("signed-by", "")))
    return entries


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: apt_source.py SUITE", file=sys.stderr)
        return 2
    suite = argv[1]
    entries = one_line_entries(["/etc/apt/sources.list",
                                *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))])
    entries += deb822_entries(sorted(glob.glob("/etc/apt/sources.list.d/*.sources")))
    for uri, suites, signed in entries:
        if suite in suites:
            print(uri, signed or "-")
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
