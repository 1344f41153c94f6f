"""Offline stand-in for the pip bootstrap script that ansible-test downloads.

ansible-test makes its sanity venvs without pip and fetches ``get-pip.py`` from
ci-files.testing.ansible.com, which this project's machines cannot reach. ansible-test
runs the cached script with pip's install arguments (``pip==24.2`` and options);
this does the same from the interpreter's bundled ``ensurepip`` and PyPI.
tests/sanity/run.sh copies it to ~/.ansible/test/cache/get_pip_<version>.py.
"""

from __future__ import annotations

import subprocess
import sys

# tests/sanity/run.sh recognises (and refreshes) its own copy in the cache by this string.
MARKER = "hardened.vllm offline get-pip"


def main() -> None:
    flags = {"--no-setuptools", "--no-wheel"}
    args = [arg for arg in sys.argv[1:] if arg not in flags]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
    subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
    unwanted = [name for name in ("setuptools", "wheel") if f"--no-{name}" in sys.argv]
    if unwanted:
        subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "--yes", *unwanted])


if __name__ == "__main__":
    main()
