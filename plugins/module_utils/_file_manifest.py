# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A directory's files with their sha256, and what another copy lacks (stdlib only).

The same code runs on the controller (the manifest of vllm_model_source) and on every node
(which files of the manifest the node's copy lacks): one definition of which files count,
how they are named and when a digest is trusted without reading the file again.

Names are paths relative to the directory, with "/" between segments; every segment starts
with a letter or digit and holds only letters, digits and ``_.+-`` (what the stage server
serves). Entries whose name starts with a dot (.gitattributes, a hub download's .cache/) are
not part of the copy. A record keeps, per name, the digest the code computed and the file's
(size, mtime_ns, ctime_ns, inode); a file whose lstat still matches is not read again. The
ctime cannot be set from user space, so any write to the file invalidates its record entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
CHUNK = 1 << 20
RECORD_VERSION = 1


class ManifestError(Exception):
    pass


def valid_name(name):
    """Whether a relative name is one the manifest may hold (no .., no hidden segment)."""
    return isinstance(name, str) and all(SEGMENT.fullmatch(seg) for seg in name.split("/"))


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def stamp(st):
    """What must stay the same for a recorded digest to be trusted."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def read_record(path):
    """{name: {"stamp": [...], "sha256": hex}} from a record file; {} when absent or unreadable."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def record_text(root, files):
    return json.dumps({"version": RECORD_VERSION, "root": root, "files": files}, sort_keys=True)


def digest(path, name, st, record, fresh, read):
    """The file's sha256, from the record when its stamp still matches; notes it in fresh.

    The names of the files it had to read are appended to read.
    """
    entry = record.get(name)
    if isinstance(entry, dict) and entry.get("stamp") == stamp(st) and entry.get("sha256"):
        sha = entry["sha256"]
    else:
        sha = sha256_of(path)
        read.append(name)
    fresh[name] = {"stamp": stamp(st), "sha256": sha}
    return sha


def walk(root, follow):
    """(name, path, is_dir) under root, hidden entries left out, sorted by name."""
    found = []
    for top, dirs, files in os.walk(root, followlinks=follow):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(top, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        found += [(prefix + d, os.path.join(top, d), True) for d in dirs]
        found += [(prefix + f, os.path.join(top, f), False) for f in files if not f.startswith(".")]
    return sorted(found)


def describe(root, record):
    """The manifest of root (links followed, as a copy of it would): (manifest, record, read).

    read: the names of the files whose digest was not in the record.
    """
    if not os.path.isdir(root):
        raise ManifestError(f"{root} is not a directory")
    files, fresh, read = [], {}, []
    for name, path, is_dir in walk(root, follow=True):
        if is_dir:
            continue
        if not valid_name(name):
            raise ManifestError(
                f"{path}: a name the stage server cannot serve (each part of the path must "
                "start with a letter or digit and hold only letters, digits and _.+-)"
            )
        st = os.stat(path)
        if not os.path.isfile(path):
            raise ManifestError(f"{path} is not a regular file")
        sha = digest(path, name, st, record, fresh, read)
        files.append({"path": name, "size": st.st_size, "sha256": sha})
    if not files:
        raise ManifestError(f"{root} holds no files")
    return manifest_of(files), fresh, read


def manifest_of(files):
    """The manifest of a list of {path, size, sha256}: bytes in all and a digest of the whole."""
    canonical = json.dumps(
        [[f["path"], f["size"], f["sha256"]] for f in files], separators=(",", ":")
    )
    return {
        "files": files,
        "bytes": sum(f["size"] for f in files),
        "digest": hashlib.sha256(canonical.encode()).hexdigest(),
    }


def check_manifest(manifest):
    """The manifest's files, or ManifestError naming what is wrong with it."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not files:
        raise ManifestError(
            "the manifest holds no files (expected {files: [{path, size, sha256}]})"
        )
    for entry in files:
        if (
            not isinstance(entry, dict)
            or not valid_name(entry.get("path"))
            or not isinstance(entry.get("size"), int)
            or not re.fullmatch(r"[0-9a-f]{64}", str(entry.get("sha256")))
        ):
            raise ManifestError(f"bad manifest entry {entry!r} (expected path, size, sha256)")
    return files


def directories(files):
    """Every directory the manifest's names need, parents first (names relative to the root)."""
    dirs = set()
    for entry in files:
        parts = entry["path"].split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def compare(root, files, record):
    """What root lacks against the manifest's files, and what it holds beyond them.

    Returns (lacking, extra, matched, read): the manifest entries whose file is missing, not a
    regular file or has another size or sha256; the names under root that the manifest does not
    hold (files, links and directories; hidden ones left out, a directory once and not its
    contents); the record of the files that match; the names of the files that were read.
    """
    wanted = {entry["path"]: entry for entry in files}
    needed_dirs = set(directories(files))
    extra, skip = [], ()
    for name, path, is_dir in walk(root, follow=False) if os.path.isdir(root) else []:
        if skip and name.startswith(skip):
            continue
        real_dir = is_dir and not os.path.islink(path)
        if (name in needed_dirs and real_dir) or (name in wanted and not is_dir):
            continue
        extra.append(name)
        if is_dir:
            skip = name + "/"
    lacking, fresh, matched, read = [], {}, {}, []
    for name, entry in wanted.items():
        path = os.path.join(root, *name.split("/"))
        try:
            st = os.lstat(path)
        except OSError:
            lacking.append(entry)
            continue
        if (
            not os.path.isfile(path)
            or os.path.islink(path)
            or st.st_size != entry["size"]
            or digest(path, name, st, record, fresh, read) != entry["sha256"]
        ):
            lacking.append(entry)
        else:
            matched[name] = fresh[name]
    return lacking, extra, matched, read
