"""``edgerec data``: write the built-in datasets, check a dataset, make a split."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main"]

_EPILOG = """examples:
  edgerec data digits digits/                       # 1797 handwritten digits, 32 px PNG, 10 classes
  edgerec data synth shapes/ --classes 6 --per-class 200 --size 64 --seed 1
  edgerec data check shapes/                        # table on the terminal; exit 1 if unusable
  edgerec data check labels.csv --json report.json  # also write the report as JSON
  edgerec data check shapes/ --montage shapes.png   # and a picture: a row of samples per class
  edgerec data split digits/ --out split.json --ratios 0.7 0.2 0.1 --seed 0
  edgerec data pull pi@kitchen.local field/         # new frames the board's --collect saved, into field/<board>/
  edgerec data pull --inventory hosts.yaml field/   # from every board (4 at once), duplicates kept once
  edgerec data review field/                        # contact sheets + review.csv of edgerec run --collect frames
  edgerec data review field/ --into data/           # copy the rows whose label you filled in into data/<label>/
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgerec data", description="Built-in datasets and dataset checks.",
                                epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", metavar="{digits,synth,check,split,pull,review}")
    sub.required = True

    d = sub.add_parser("digits", help="write scikit-learn's handwritten digits as an ImageFolder")
    d.add_argument("out", type=Path)
    d.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    d.add_argument("--per-class", type=int, default=None, help="seeded subset of N images per digit (default all)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--force", action="store_true", help="write into a non-empty folder")

    s = sub.add_parser("synth", help="write a generated shapes dataset as an ImageFolder")
    s.add_argument("out", type=Path)
    s.add_argument("--classes", type=int, default=4)
    s.add_argument("--per-class", type=int, default=50)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--force", action="store_true", help="write into a non-empty folder")

    c = sub.add_parser("check", help="report counts, broken files, duplicates, imbalance and sizes")
    c.add_argument("path", type=Path, help="ImageFolder, pre-split folder or CSV")
    c.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the report as JSON")
    c.add_argument("--format", choices=("table", "json"), default="table", help="what to print (default table)")
    c.add_argument("--multi-label", action="store_true", help="CSV labels are ';'-separated lists")
    c.add_argument("--min-images", type=int, default=None, help="warn for classes under N images (default 200)")
    c.add_argument("--montage", type=Path, default=None, metavar="PNG",
                   help="also write a PNG with a few random images of every class")

    sp = sub.add_parser("split", help="write a stratified, seeded train/val/test split as JSON")
    sp.add_argument("path", type=Path)
    sp.add_argument("--out", type=Path, required=True, help="split JSON to write")
    sp.add_argument("--ratios", type=float, nargs=3, default=(0.7, 0.2, 0.1), metavar=("TRAIN", "VAL", "TEST"))
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--multi-label", action="store_true")

    pl = sub.add_parser("pull", help="copy new collected/captured frames from boards over SSH (verified, resumable)")
    pl.add_argument("target", nargs="?", help="user@host[:port] (or --inventory)")
    pl.add_argument("out", type=Path, help="local folder; each board's files go to OUT/<board>/")
    pl.add_argument("--inventory", help="hosts.yaml: pull from every board")
    pl.add_argument("--name", help="the board's folder name under OUT (default: its address)")
    pl.add_argument("--remote", default=None, metavar="FOLDER",
                    help="folder on the board (default ROOT/collect, where device setup --collect saves doubtful frames)")
    pl.add_argument("--merge", action="store_true",
                    help="into OUT/ itself, not OUT/<board>/ (class folders of edgerec capture from many boards -> one ImageFolder)")
    pl.add_argument("--settle", type=float, default=5.0, metavar="S",
                    help="copy only files unchanged for S seconds (default 5): a frame being written waits for the next pull")
    pl.add_argument("--concurrency", "-j", type=int, default=4, help="boards at once with --inventory (default 4)")
    pl.add_argument("--json", action="store_true", help="print the result(s) as JSON")
    from ..devices._cli import _ssh_flags

    _ssh_flags(pl)

    r = sub.add_parser("review", help="contact sheets + a CSV to label frames from edgerec run --collect; merge them")
    r.add_argument("path", type=Path, help="the folder edgerec run --collect wrote")
    r.add_argument("--into", type=Path, default=None, metavar="TRAINING_DIR",
                   help="copy the frames whose label column is filled in into TRAINING_DIR/<label>/ (never overwriting)")
    return p


def _count(out: Path) -> str:
    dirs = sorted(d for d in out.iterdir() if d.is_dir())
    return f"{sum(1 for d in dirs for _ in d.iterdir())} images in {len(dirs)} classes"


def _pull(args) -> int:
    from ..devices.frames import pull_frames, pull_frames_inventory

    if args.inventory:
        if args.target:
            raise SystemExit("edgerec data pull: give a target or --inventory, not both")
        from ..devices.inventory import load_inventory

        hosts = load_inventory(args.inventory, identity=args.identity, known_hosts=args.known_hosts,
                               insecure_accept_new=args.insecure_accept_new, root=args.root)
        bar = None
        if not args.json:
            from tqdm import tqdm

            bar = tqdm(total=len(hosts), unit="board", desc="pull", leave=False, file=sys.stderr)
        try:
            results = pull_frames_inventory(hosts, args.out, remote=args.remote, merge=args.merge, settle=args.settle,
                                            concurrency=args.concurrency, on_done=bar and (lambda r: bar.update(1)))
        finally:
            if bar is not None:
                bar.close()
    else:
        if not args.target:
            raise SystemExit("edgerec data pull: give a target (user@host[:port]) or --inventory hosts.yaml")
        from ..devices._cli import _connect, _progress_bar

        bar, update = (None, None) if args.json else _progress_bar("pull")
        try:
            with _connect(args, args.target) as conn:
                results = [pull_frames(conn, args.out, board=args.name, remote=args.remote, root=args.root,
                                       merge=args.merge, settle=args.settle, progress=update)]
        finally:
            if bar is not None:
                bar.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=1))
    else:
        for r in results:
            print(r.line())
        copied = sum(r.copied for r in results)
        if copied:
            print(f"next: edgerec data review {args.out}")
    return 0 if all(r.ok for r in results) else 1


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "digits":
        from .builtin import write_digits

        out = write_digits(args.out, size=args.size, seed=args.seed, per_class=args.per_class, exist_ok=args.force)
        print(f"wrote {_count(out)} to {out}")
        return 0
    if args.cmd == "synth":
        from .builtin import write_synth

        out = write_synth(args.out, classes=args.classes, per_class=args.per_class, size=args.size, seed=args.seed,
                          exist_ok=args.force)
        print(f"wrote {_count(out)} to {out}")
        return 0
    if args.cmd == "check":
        from .check import MIN_IMAGES_PER_CLASS, check_dataset

        min_images = MIN_IMAGES_PER_CLASS if args.min_images is None else args.min_images
        report = check_dataset(args.path, multi_label=args.multi_label, min_images=min_images)
        text = json.dumps(report.to_dict(), indent=1)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(text + "\n")
        if args.format == "json":
            print(text)
        else:
            from rich.console import Console

            report.render(Console(highlight=False))
        if args.montage and report.usable:
            from .dataset import load_dataset
            from .montage import write_montage

            ds = load_dataset(args.path, multi_label=args.multi_label, verify="none")
            write_montage(ds, args.montage)
            print(f"wrote {args.montage}", file=sys.stderr)
        elif args.montage:
            print("no montage: the dataset is not usable", file=sys.stderr)
        return 0 if report.usable else 1
    if args.cmd == "split":
        from .dataset import load_dataset
        from .split import stratified_split

        split = stratified_split(load_dataset(args.path, multi_label=args.multi_label), args.ratios, seed=args.seed)
        split.save(args.out)
        for w in split.warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(f"wrote {args.out}: train {len(split.train)}, val {len(split.val)}, test {len(split.test)}")
        return 0
    if args.cmd == "pull":
        return _pull(args)
    if args.cmd == "review":
        from .review import merge_review, write_review

        if args.into is not None:
            merged = merge_review(args.path, args.into)
            print(f"copied {len(merged.copied)} frames into {args.into} ({merged.already_there} were there already)")
            return 0
        res = write_review(args.path)
        if res.kept_labels:
            from .review import field_accuracy

            acc = field_accuracy(args.path)
            for board, f in {**acc["boards"], "all boards": acc["all"]}.items():
                if f["labelled"]:
                    rand = (f", random share {f['random_accuracy']:.1%} of {f['random_labelled']}"
                            if f["random_labelled"] else "")
                    print(f"field accuracy {board or args.path}: {f['accuracy']:.1%} of {f['labelled']} labelled frames{rand}")
        print(f"wrote {res.csv} ({res.frames} frames, {res.kept_labels} labels kept from before) and "
              f"{len(res.sheets)} contact sheets in {res.csv.parent / 'review'}; fill in the label column, then "
              f"edgerec data review {args.path} --into TRAINING_DIR")
        return 0
    return 2  # pragma: no cover - argparse requires a sub-command
