"""`rankstack experiment`: run the pipelines of a JSON config, compare them, write a report."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("experiment", help="run the pipelines of a JSON config, compare them, write a report")
    p.add_argument("config", help="JSON file: queries, qrels, indexes, stages, pipelines, measures, baseline, "
                                  "cache, report (see README)")
    p.set_defaults(func=run)


def run(args) -> None:
    """Run the experiment a JSON config file describes (see rankstack.experiment.run_config)."""
    from rankstack.experiment import run_config

    experiment, report = run_config(args.config)
    print(experiment.table())
    if report:
        print(f"report written to {report}")
