# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Staged file trees: manifests, what a node lacks, resumable checksummed fetches.

Shared by the file_manifest and stage_files modules (and, for the path rules, by the role's
stage server). Python 3 standard library only. A manifest is a list of
``{"path": relative, "size": bytes, "sha256": hex}``, sorted by path; its digest names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.parse

from ansible.module_utils.urls import open_url

CHUNK = 1 << 20
MARKER_FORMAT = 1


class StageError(Exception):
    """A manifest, a file or a transfer that is not what it must be."""


def check_relpath(path):
    """A manifest path: relative, normalised, inside its tree, no dot files of the stager."""
    if not isinstance(path, str) or not path or "\0" in path or "\\" in path:
        raise StageError(f"manifest path {path!r} is not a relative file name")
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StageError(f"manifest path {path!r} must be relative, without '.', '..' or '//'")
    if parts[-1].endswith(".part"):
        raise StageError(f"manifest path {path!r}: '.part' names are the stager's own")
    return path


def check_manifest(files):
    """Validate a manifest given as module input; return it sorted by path."""
    if not isinstance(files, list):
        raise StageError(f"the manifest must be a list of files, got {type(files).__name__}")
    seen, out = set(), []
    for entry in files:
        if not isinstance(entry, dict) or set(entry) != {"path", "size", "sha256"}:
            raise StageError(f"manifest entry {entry!r} must hold exactly path, size, sha256")
        path = check_relpath(entry.get("path"))
        size, digest = entry.get("size"), entry.get("sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise StageError(f"manifest entry {path}: size {size!r} is not a byte count")
        if (
            not isinstance(digest, str)
            or len(digest) != 64
            or set(digest) - set("0123456789abcdef")
        ):
            raise StageError(f"manifest entry {path}: sha256 {digest!r} is not 64 hex digits")
        if path in seen:
            raise StageError(f"manifest path {path} appears twice")
        seen.add(path)
        out.append({"path": path, "size": size, "sha256": digest})
    return sorted(out, key=lambda e: e["path"])


def digest_of(files):
    """The manifest's name: sha256 of its canonical JSON."""
    text = json.dumps(sorted(files, key=lambda e: e["path"]), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_file(path, start=None):
    """sha256 of a file; ``start`` continues a hash object (the resumed part's prefix)."""
    h = start or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h


def walk(root):
    """Relative paths of the regular files under root (links followed to files), sorted."""
    if not os.path.isdir(root):
        raise StageError(f"{root} is not a directory")
    found = []
    for top, dirs, names in os.walk(root, followlinks=True):
        dirs.sort()
        for name in names:
            full = os.path.join(top, name)
            if name.endswith(".part") or not os.path.isfile(full):
                continue
            found.append(os.path.relpath(full, root).replace(os.sep, "/"))
    return sorted(found)


def _stat_key(st):
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def manifest_of(root, cache=None):
    """The manifest of a tree, hashing only files whose (size, mtime, inode) the cache lacks.

    ``cache`` is a dict as returned in the second item (path -> [size, mtime_ns, ino, sha256]);
    returns (files, new_cache, hashed_bytes).
    """
    cache = cache or {}
    files, new_cache, hashed = [], {}, 0
    for rel in walk(root):
        full = os.path.join(root, rel)
        st = os.stat(full)
        known = cache.get(rel)
        if isinstance(known, list) and len(known) == 4 and known[:3] == _stat_key(st):
            digest = known[3]
        else:
            digest = sha256_file(full).hexdigest()
            hashed += st.st_size
        files.append({"path": rel, "size": st.st_size, "sha256": digest})
        new_cache[rel] = [*_stat_key(st), digest]
    return files, new_cache, hashed


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def marker_state(dest, files):
    """What a marker records for dest: the manifest digest and each file's stat key."""
    state = {}
    for entry in files:
        st = os.stat(os.path.join(dest, entry["path"]))
        state[entry["path"]] = _stat_key(st)
    return {"format": MARKER_FORMAT, "digest": digest_of(files), "files": state}


def marked_ready(dest, files, marker):
    """True when the marker names this manifest and no file changed since it was written."""
    if not marker or marker.get("format") != MARKER_FORMAT:
        return False
    if marker.get("digest") != digest_of(files):
        return False
    recorded = marker.get("files") or {}
    for entry in files:
        try:
            st = os.stat(os.path.join(dest, entry["path"]))
        except OSError:
            return False
        if recorded.get(entry["path"]) != _stat_key(st) or st.st_size != entry["size"]:
            return False
    return True


def lacking(dest, files):
    """Manifest entries that dest does not hold byte for byte (sizes first, then sha256)."""
    missing = []
    for entry in files:
        full = os.path.join(dest, entry["path"])
        try:
            st = os.stat(full)
        except OSError:
            missing.append(entry)
            continue
        if st.st_size != entry["size"] or sha256_file(full).hexdigest() != entry["sha256"]:
            missing.append(entry)
    return missing


def find_reusable(entry, reuse_dirs, dest):
    """A file with the same name, size and sha256 in another staged tree (an older version)."""
    base = os.path.basename(entry["path"])
    for top in reuse_dirs:
        try:
            candidates = sorted(os.listdir(top))
        except OSError:
            continue
        for sub in candidates:
            full = os.path.join(top, sub, base)
            if os.path.realpath(os.path.join(top, sub)) == os.path.realpath(dest):
                continue
            try:
                if os.path.getsize(full) != entry["size"]:
                    continue
            except OSError:
                continue
            if sha256_file(full).hexdigest() == entry["sha256"]:
                return full
    return None


def source_url(base, path):
    return base.rstrip("/") + "/" + urllib.parse.quote(path)


def fetch(url, part, entry, timeout):
    """Fetch url into part, resuming after the bytes part holds; verify size and sha256.

    Returns the bytes transferred. A part that already holds everything is only verified;
    one whose content turns out wrong is removed, so the next attempt starts from zero.
    """
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if have > entry["size"]:
        os.unlink(part)
        have = 0
    h = sha256_file(part) if have else hashlib.sha256()
    got = 0
    if have < entry["size"]:
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            # Peer to peer on the cluster network: never through a proxy from the environment.
            with open_url(url, headers=headers, timeout=timeout, use_proxy=False) as answer:
                status = answer.getcode()
                if have and status != 206:
                    # The server sent the whole file: start over.
                    h, have = hashlib.sha256(), 0
                    mode = "wb"
                else:
                    mode = "ab" if have else "wb"
                with open(part, mode) as out:
                    for block in iter(lambda: answer.read(CHUNK), b""):
                        out.write(block)
                        h.update(block)
                        got += len(block)
                        if have + got > entry["size"]:
                            break
                    out.flush()
                    os.fsync(out.fileno())
        except (urllib.error.URLError, OSError) as exc:
            raise StageError(f"fetching {url} failed after {have + got} bytes: {exc}") from None
    size = os.path.getsize(part)
    if size != entry["size"] or h.hexdigest() != entry["sha256"]:
        os.unlink(part)
        raise StageError(
            f"{url}: got {size} bytes with sha256 {h.hexdigest()}, the manifest says "
            f"{entry['size']} bytes with sha256 {entry['sha256']}; the part was removed"
        )
    return got
