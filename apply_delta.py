"""Rebuild fine-tuned weights from a base model and a delta, shard by shard.

  python apply_delta.py --base llama-7b-hf --delta vicuna-7b-delta-v1.1 --target vicuna-7b-v1.1 [--checksum]
  python apply_delta.py --make-delta --base llama-7b-hf --target my-finetune --delta my-finetune-delta

Both safetensors and .bin checkpoints work (sharded with an index json, or a single file); the result is sharded
safetensors with an index, plus the tokenizer and config.json of the delta (or, with --make-delta, of the target).
Existing files in the output folder are never replaced without --overwrite, and a failed run leaves it untouched.
"""
import argparse

from vlmkit.tools.apply_delta import DTYPES, apply_delta, make_delta


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the base model (folder or weight file)")
    parser.add_argument("--delta", required=True, help="the delta: read when applying, written with --make-delta")
    parser.add_argument("--target", required=True, help="the merged model: written when applying, read with "
                                                        "--make-delta")
    parser.add_argument("--make-delta", action="store_true", help="write delta = target - base instead")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="dtype of the written floating tensors (default: the delta config's dtype when "
                             "applying, the target's own dtypes when making a delta); float64 is for deltas: "
                             "a float64 delta of a float32 model round-trips exactly")
    parser.add_argument("--max-shard-size", default="5GB", help="largest output shard, e.g. 5GB or 500MB")
    parser.add_argument("--checksum", action="store_true", help="write SHA256SUMS of every output file")
    parser.add_argument("--verify-checksums", metavar="SHA256SUMS", default=None,
                        help="after applying, check the result against a published checksum file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files already in the output folder (refused by default, listing them)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    common = dict(dtype=args.dtype, max_shard_size=args.max_shard_size, checksum=args.checksum,
                  progress=not args.no_progress, overwrite=args.overwrite)
    if args.make_delta:
        if args.verify_checksums:
            raise SystemExit("--verify-checksums checks an applied result; it does not go with --make-delta")
        report = make_delta(args.base, args.target, args.delta, **common)
    else:
        report = apply_delta(args.base, args.delta, args.target, expected_checksums=args.verify_checksums, **common)
    print(report.format())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
