"""Runs inside every rank before the boot file when the code dir has a requirements.txt.

Standard library only: it is copied next to the version's state and run by the rank's
own interpreter (in a container or on the host). It installs the requirements into a
per-version folder, logging pip's output to the job log, then execs the real command.
Usage: `python bootstrap.py PKG_DIR -- ARGV...`
"""

import os
import subprocess
import sys


def main() -> int:
    """Install requirements.txt (if present in the cwd), then exec the command."""
    pkg_dir, sep, *argv = sys.argv[1:]
    if sep != "--" or not argv:
        print("[traindeck] bootstrap: bad arguments", file=sys.stderr)
        return 2
    if os.path.isfile("requirements.txt"):
        print("[traindeck] installing requirements.txt into " + pkg_dir, flush=True)
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
             "--no-input", "--target", pkg_dir, "-r", "requirements.txt"],
            check=False,
        )
        if done.returncode != 0:
            print(f"[traindeck] pip install failed with exit code {done.returncode}",
                  file=sys.stderr, flush=True)
            return 97
        print("[traindeck] requirements installed", flush=True)
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = pkg_dir + (os.pathsep + path if path else "")
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 127


if __name__ == "__main__":
    sys.exit(main())
