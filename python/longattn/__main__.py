"""``python -m longattn report|bench|run|golden|selftest ...``: the command line installed with
the package (``python -m longattn --help`` lists its jobs)."""

import os
import pathlib
import sys


def main():
    program = pathlib.Path(__file__).resolve().parent / "bin" / "longattn"
    if not program.exists():
        sys.exit(f"longattn: the command line is not installed at {program}; reinstall the package")
    os.execv(program, [str(program), *sys.argv[1:]])


if __name__ == "__main__":
    main()
