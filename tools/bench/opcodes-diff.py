"""Where two checkouts' bytecodes per message differ, from two files that
``tools/bench/inproc.py --opcodes FILE`` wrote.

    python3 tools/bench/opcodes-diff.py BEFORE AFTER [--by-package] [--top N]

Prints both totals, then the functions (or packages) whose counts differ
most, largest difference first: difference, before, after, name.
"""
import argparse
import collections


def load(path: str, by_package: bool) -> collections.Counter:
    counts = collections.Counter()
    for line in open(path):
        per_message, where, name = line.rstrip("\n").split("\t")
        module = where.rsplit(":", 1)[0]
        module = module.split("/relayd/")[-1] if "/relayd/" in module \
            else module.split("site-packages/")[-1]
        counts[module.rsplit("/", 1)[0] if by_package else f"{module} {name}"] += float(per_message)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--by-package", action="store_true")
    parser.add_argument("--top", type=int, default=50)
    args = parser.parse_args()
    before, after = load(args.before, args.by_package), load(args.after, args.by_package)
    print(f"total {sum(before.values()):.0f} -> {sum(after.values()):.0f} bytecodes per message")
    for name in sorted(before.keys() | after.keys(),
                       key=lambda k: -abs(after[k] - before[k]))[:args.top]:
        print(f"{after[name] - before[name]:+8.1f} {before[name]:8.1f} {after[name]:8.1f}  {name}")


if __name__ == "__main__":
    main()
