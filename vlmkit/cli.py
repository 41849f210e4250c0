"""The `vlmkit` command: list components, validate configs, check the environment."""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

from omegaconf import OmegaConf

from vlmkit.errors import ConfigError, RegistryError
from vlmkit.openmp_env import quiet_openmp_workers


def cmd_list(args: argparse.Namespace) -> int:
    from vlmkit.registry import ALL, registry

    if args.kind == "presets":
        return list_presets()
    kinds = [registry(args.kind).kind] if args.kind else list(ALL)
    for kind in kinds:
        entries = registry(kind).entries()
        print(f"{kind} ({len(entries)})")
        for entry in entries:
            aliases = f" [aka {', '.join(entry.aliases)}]" if entry.aliases else ""
            print(f"  {entry.name:<28} {entry.description}{aliases}")
    return 0


def list_presets() -> int:
    """The shipped model and dataset presets (what ``preset:`` takes under ``model`` and ``datasets``)."""
    from vlmkit.config import PRESET_DIRS, presets

    for section in PRESET_DIRS:
        found = presets(section)
        print(f"{section} presets ({len(found)})")
        for name, description in found:
            print(f"  {name:<34} {description}".rstrip())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from vlmkit.config import load_config

    start = time.perf_counter()
    try:
        cfg = load_config(args.cfg_path, [*args.overrides, *args.options], purpose=args.purpose,
                          check_files=not args.skip_files)
        evaluation = cfg.get("evaluation")
        if not args.skip_files and evaluation is not None and evaluation.get("checkpoint"):
            # an evaluated checkpoint against the model section, as evaluate.py will (torch only then)
            from vlmkit.runners.trained_model import check_before_build

            check_before_build(cfg)
    except (ConfigError, RegistryError) as err:
        print(f"INVALID {args.cfg_path}\n{err}", file=sys.stderr)
        return 2
    if args.show:
        print(OmegaConf.to_yaml(cfg))
    print(f"OK {args.cfg_path} ({time.perf_counter() - start:.2f} s)")
    return 0


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _java_version() -> str:
    java = shutil.which("java")
    if java is None:
        return "not found (pycocoevalcap's tokenizer, METEOR and SPICE need Java)"
    result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    return (result.stderr or result.stdout).splitlines()[0] if (result.stderr or result.stdout) else java


def doctor_report() -> list[tuple[str, str]]:
    """(item, finding) pairs: versions and which fallbacks are active."""
    import torch

    cuda = torch.cuda.is_available()
    rows = [
        ("python", sys.version.split()[0]),
        ("vlmkit", _version("vlmkit")),
        ("torch", torch.__version__),
        ("CUDA", f"{torch.version.cuda} ({torch.cuda.device_count()} device(s))" if cuda
         else f"not available (torch built with CUDA {torch.version.cuda})" if torch.version.cuda
         else "not available (CPU build of torch)"),
    ]
    for dist in ("transformers", "timm", "peft", "omegaconf", "webdataset", "decord", "av", "flash-attn",
                 "fairscale", "pycocoevalcap", "tensorboard"):
        rows.append((dist, _version(dist)))
    rows.append(("java", _java_version()))
    flash = _version("flash-attn") != "not installed" and cuda
    rows.append(("attention", "flash_attention_2" if flash else "sdpa (flash-attn needs a CUDA GPU and the 'gpu' extra)"))
    decord_ok = importlib.util.find_spec("decord") is not None
    av_ok = importlib.util.find_spec("av") is not None
    rows.append(("video decoding", "decord and PyAV (backend: auto picks per dataset)" if decord_ok and av_ok else
                 "PyAV only (decord missing)" if av_ok else "decord only (PyAV missing)" if decord_ok
                 else "NO video backend: pip install decord av"))
    rows.append(("distributed", "nccl" if cuda and torch.distributed.is_nccl_available() else "gloo (CPU)"))
    return rows


def cmd_doctor(args: argparse.Namespace) -> int:
    rows = doctor_report()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlmkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="registered components, by kind; 'vlmkit list presets': the presets")
    p_list.add_argument("kind", nargs="?", help="one kind, e.g. encoders, adapters, datasets; or presets")
    p_list.set_defaults(func=cmd_list)

    p_val = sub.add_parser("validate", help="load, merge and validate a config without building anything")
    p_val.add_argument("cfg_path")
    p_val.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p_val.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE")
    p_val.add_argument("--purpose", choices=["train", "eval"], default=None,
                       help="also require the sections a train or eval config needs")
    p_val.add_argument("--show", action="store_true", help="print the resolved config")
    p_val.add_argument("--skip-files", action="store_true",
                       help="do not check that the datasets' annotation files exist (data not fetched yet)")
    p_val.set_defaults(func=cmd_validate)

    p_doc = sub.add_parser("doctor", help="versions of the stack and which fallbacks are active")
    p_doc.set_defaults(func=cmd_doctor)
    sub.add_parser("sweep", help="run an experiment over a grid of overrides and tabulate the results "
                                 "(vlmkit sweep --help)")
    sub.add_parser("data", help="`vlmkit data validate CFG`: scan a config's datasets for missing or undecodable "
                                "media, placeholder mismatches and over-long samples")
    sub.add_parser("cache-features", help="precompute a frozen vision tower's features of a config's videos, read "
                                          "by training and evaluation instead (vlmkit cache-features --help)")
    sub.add_parser("convert-features", help="rewrite pickled feature files (<video>.pkl) as .npy, which load "
                                            "without running code (vlmkit convert-features --help)")
    sub.add_parser("estimate", help="parameters, tokens and per-GPU training memory of configs, on the meta device "
                                    "(vlmkit estimate --help)")
    sub.add_parser("infer", help="answer questions about videos with a trained run, as evaluation would "
                                 "(vlmkit infer --help)")
    sub.add_parser("chat", help="a multi-turn terminal chat about a video with a trained run (vlmkit chat --help)")
    sub.add_parser("export", help="a trained run as a self-contained folder, its LLM or a LLaVA folder for "
                                  "transformers, LoRA merged (vlmkit export --help)")
    sub.add_parser("api", help="serve a trained run as an OpenAI-compatible /v1/chat/completions endpoint "
                               "(vlmkit api --help)")
    sub.add_parser("webchat", help="a Gradio page for chatting with a trained run about a video "
                                   "(vlmkit webchat --help)")
    sub.add_parser("plot", help="loss, lr, grad-norm and throughput curves of one or more runs to a PNG "
                                "(vlmkit plot --help)")
    return parser


# Subcommands with their own argument parsers, handed the rest of the command line.
DELEGATED = {("sweep",): "vlmkit.sweep", ("data", "validate"): "vlmkit.data_validate_cmd",
             ("convert-features",): "vlmkit.tools.pkl_to_npy", ("estimate",): "vlmkit.estimate.command",
             ("cache-features",): "vlmkit.feature_cache_cmd",
             ("infer",): "vlmkit.inference.infer_cmd", ("chat",): "vlmkit.inference.chat_cmd",
             ("export",): "vlmkit.export.command",
             ("api",): "vlmkit.inference.api_cmd",
             ("webchat",): "vlmkit.inference.webchat.command",
             ("plot",): "vlmkit.plot"}


def main(argv: Sequence[str] | None = None) -> int:
    quiet_openmp_workers()  # before any command loads torch (vlmkit/openmp_env.py)
    argv = list(sys.argv[1:] if argv is None else argv)
    for words, module in DELEGATED.items():
        if tuple(argv[:len(words)]) == words:
            try:
                return importlib.import_module(module).main(argv[len(words):])
            except (ConfigError, RegistryError) as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
    if argv[:1] == ["data"]:
        print("usage: vlmkit data validate CFG [key=value ...] (the only data subcommand)", file=sys.stderr)
        return 2
    parser = build_parser()
    # overrides may follow options (validate cfg.yaml --purpose train run.lr=0.1), which argparse's
    # positional matching does not allow; collect the leftovers that look like overrides
    args, extra = parser.parse_known_args(argv)
    strays = [e for e in extra if "=" not in e and not e.startswith("~")]
    if strays or (extra and args.command != "validate"):
        parser.error(f"unrecognized arguments: {' '.join(strays or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        return args.func(args)
    except (ConfigError, RegistryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
