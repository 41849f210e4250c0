"""Score a model: `python evaluate.py --cfg-path eval_configs/Y.yaml [key=value ...]` (torchrun works too)."""
from vlmkit.openmp_env import quiet_openmp_workers

quiet_openmp_workers()  # before torch loads: idle OpenMP threads sleep (vlmkit/openmp_env.py)
from vlmkit.assemble import assemble  # noqa: E402
from vlmkit.entry import config_errors_exit, load_experiment  # noqa: E402
from vlmkit.runners import distributed  # noqa: E402


def main(argv=None) -> int:
    cfg, dry_run = load_experiment(argv, purpose="eval", description=__doc__)
    if dry_run:
        return 0
    try:
        with config_errors_exit():
            experiment = assemble(cfg, section="evaluation")
        experiment.runner.evaluate()
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
