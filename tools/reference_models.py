"""Lists, adds or checks the reference models shipped in savedmodels/.

    python tools/reference_models.py check
    python tools/reference_models.py add baseline-g2p-small \
        --command "tfaccel baseline --task g2p --preset small"

`add` writes the folder's file SHA-256s, the command, the library versions
and the test scores into savedmodels/manifest.json; `check` exits 1 when a
listed file is missing or changed (tests/test_reference_models.py also
decodes the test split with each model and compares its WER).
"""

import argparse
import sys

from tfaccel import reference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["check", "add", "list"])
    parser.add_argument("folder", nargs="?", help="model folder under --root (add)")
    parser.add_argument("--command", help="the command that made the folder (add)")
    parser.add_argument("--root", default="savedmodels")
    args = parser.parse_args(argv)
    if args.action == "add":
        if not args.folder or not args.command:
            parser.error("add needs FOLDER and --command")
        entry = reference.add(args.root, args.folder, args.command)
        print(f"{entry['folder']}: test WER {100 * entry['test']['wer']:.2f}%")
        return 0
    if args.action == "list":
        for entry in reference.load_manifest(args.root)["models"]:
            print(f"{entry['folder']}: {entry['command']}")
        return 0
    problems = reference.check(args.root)
    print("\n".join(problems) or "every shipped file matches its sha256")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
